/**
 * `kill -9` of one of two instances while 50 sign-ins are in flight: 25 whose callbacks reached
 * A, which claimed their code exchanges and is waiting for the provider's token answer (the test
 * provider holds it, so the moment is exact), and 25 whose browsers have not come back yet. After
 * the kill, B serves all 50: the 25 come back to B and sign in; the 25 A abandoned end FAILED
 * (`internal_error`) within the outbound deadline plus 30 s, and B's subscribers hear of it. None
 * is lost, none stays open.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  arrive,
  openSignIn,
  pollUntil,
  seedIntegration,
  seedTenant,
  startHoldingProvider,
  startInstance,
  Subscription,
  waitFor,
  type HoldingProvider,
  type Seeded,
} from '../helpers/cluster.ts'
import { createPgDatabase, killLeftovers, type ServiceProcess } from '../helpers/spawn.ts'
import { TEST_DATABASE_URL } from '../helpers/test-db.ts'

/** The outbound deadline of a callback (oauth/outbound.ts), which a spawned service keeps. */
const OUTBOUND_DEADLINE_MS = 10_000
const TERMINAL = ['AUTHENTICATED', 'FAILED', 'EXPIRED', 'CANCELLED']

describe.skipIf(!TEST_DATABASE_URL)(
  'an instance killed with sign-ins in flight (needs TEST_DATABASE_URL)',
  () => {
    let database: { url: string; drop(): Promise<void> }
    let a: ServiceProcess
    let b: ServiceProcess
    let provider: HoldingProvider
    let tenant: Seeded
    let integrationId: string

    beforeAll(async () => {
      database = await createPgDatabase(TEST_DATABASE_URL!)
      provider = await startHoldingProvider()
      // Started together: both migrate, and the migrator's lock lets one of them do it.
      ;[a, b] = await Promise.all([startInstance(database.url), startInstance(database.url)])
      tenant = await seedTenant(database.url, 'crash', b)
      integrationId = await seedIntegration(b, tenant.adminKey, provider)
    }, 120_000)

    afterAll(async () => {
      await b?.stop()
      killLeftovers()
      await provider?.close()
      await database?.drop()
    })

    it('leaves every session to the survivor: signed in, or FAILED within the deadline plus 30 s', async () => {
      const opened = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          openSignIn(i % 2 ? a : b, i % 3 ? a : b, tenant.agentKey, integrationId),
        ),
      )
      const toA = opened.slice(0, 25)
      const later = opened.slice(25)
      const watched = await Subscription.open(b, tenant.agentKey, toA[0]!.sessionId)
      expect(await watched.next(5_000)).toBe('OPENED')

      provider.holding = true
      const onA = toA.map((o) => arrive(a, o).then(String, (error: Error) => error.message))
      // Every one of them claimed by A and waiting at the token endpoint.
      await waitFor('A holds 25 token requests', () => provider.held() === 25, 15_000)
      a.child.kill('SIGKILL')
      const killedAt = Date.now()
      const exit = await new Promise<NodeJS.Signals | null>((resolve) =>
        a.child.once('exit', (_code, signal) => resolve(signal)),
      )
      expect(exit).toBe('SIGKILL')
      // The browsers waiting on A lose their connection; none got an answer.
      for (const answer of await Promise.all(onA)) expect(answer).not.toBe('303')
      provider.holding = false
      provider.release() // answers to a dead process: nobody reads them

      // The 25 others come back, to B, and sign in there.
      const statuses = await Promise.all(later.map((o) => arrive(b, o)))
      expect(statuses).toEqual(later.map(() => 303))
      for (const o of later) {
        const session = await pollUntil(b, tenant.agentKey, o.sessionId, () => true, 0)
        expect(session.status).toBe('AUTHENTICATED')
      }

      // The 25 A abandoned end FAILED, told to B's subscriber, within the deadline plus 30 s.
      const limit = OUTBOUND_DEADLINE_MS + 30_000
      for (const o of toA) {
        const session = await pollUntil(
          b,
          tenant.agentKey,
          o.sessionId,
          (s) => TERMINAL.includes(s?.status ?? ''),
          limit - (Date.now() - killedAt),
        )
        expect(session.status).toBe('FAILED')
        expect(session.failure?.code).toBe('internal_error')
      }
      expect(Date.now() - killedAt).toBeLessThan(limit)
      expect(await watched.next(1_000)).toBe('FAILED')
      await watched.close()

      // None lost: B reads all 50, every one final.
      for (const o of opened) {
        const session = await pollUntil(b, tenant.agentKey, o.sessionId, () => true, 0)
        expect(TERMINAL).toContain(session.status)
      }
      // The abandoned sessions' browsers, coming back to B, are told the sign-in is over.
      expect(await arrive(b, toA[1]!)).not.toBe(303)
    }, 90_000)
  },
)
