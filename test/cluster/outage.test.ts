/**
 * The database stops and starts again under two instances and a steady load of requests, on a
 * PostgreSQL server of the test's own: while it is down both instances answer /readyz 503 and
 * requests fail at once with SERVICE_UNAVAILABLE, neither process exits, a subscription stays
 * open; once it is back both become ready again by themselves, sign-ins succeed, and the
 * subscription on B hears of a sign-in completed through A.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  arrive,
  at,
  gql,
  openSignIn,
  pollUntil,
  seedIntegration,
  seedTenant,
  startHoldingProvider,
  startInstance,
  STATUS,
  Subscription,
  waitFor,
  type HoldingProvider,
  type Seeded,
} from '../helpers/cluster.ts'
import {
  ownPostgresUnavailable,
  startOwnPostgres,
  type OwnPostgres,
} from '../helpers/own-postgres.ts'
import { START, type Started } from '../helpers/flow.ts'
import { killLeftovers, type ServiceProcess } from '../helpers/spawn.ts'
import { TEST_DATABASE_URL } from '../helpers/test-db.ts'

const unavailable = TEST_DATABASE_URL
  ? ownPostgresUnavailable()
  : 'PostgreSQL only (set TEST_DATABASE_URL)'

const TITLE = 'a database restart under load'

describe.skipIf(unavailable !== null)(
  unavailable ? `${TITLE} (skipped: ${unavailable})` : TITLE,
  () => {
    let server: OwnPostgres
    let a: ServiceProcess
    let b: ServiceProcess
    let provider: HoldingProvider
    let tenant: Seeded
    let integrationId: string

    beforeAll(async () => {
      server = await startOwnPostgres()
      provider = await startHoldingProvider()
      // Started together: both migrate, and the migrator's lock lets one of them do it.
      ;[a, b] = await Promise.all([startInstance(server.url), startInstance(server.url)])
      tenant = await seedTenant(server.url, 'outage', a)
      integrationId = await seedIntegration(a, tenant.adminKey, provider)
    }, 120_000)

    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()])
      killLeftovers()
      await provider?.close()
      await server?.destroy()
    })

    const ready = async (instance: ServiceProcess) => (await fetch(`${instance.url}/readyz`)).status

    it('answers 503 and fails fast while it is down, and recovers by itself', async () => {
      const opened = await openSignIn(a, a, tenant.agentKey, integrationId)
      // A second sign-in whose link is first opened during the outage.
      const unopened = await gql<Started>(a, tenant.agentKey, START, {
        input: { integrationId, conversationId: `outage-link-${process.pid}` },
      })
      const link = unopened.data!.startEndUserAuth.authorizationLink
      const subscription = await Subscription.open(b, tenant.agentKey, opened.sessionId)
      expect(await subscription.next(5_000)).toBe('OPENED')

      // A steady load on both instances throughout: each answer, and how long it took.
      const answers: Array<{ ok: boolean; code: string | undefined; ms: number }> = []
      let loading = true
      const load = (async () => {
        while (loading) {
          for (const instance of [a, b]) {
            const started = Date.now()
            try {
              const answer = await gql<unknown>(instance, tenant.agentKey, STATUS, {
                id: opened.sessionId,
              })
              answers.push({
                ok: answer.errors === undefined,
                code: answer.errors?.[0]?.extensions?.code,
                ms: Date.now() - started,
              })
            } catch {
              answers.push({ ok: false, code: 'no answer', ms: Date.now() - started })
            }
          }
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
      })()

      try {
        await waitFor('load answered', () => answers.some((x) => x.ok), 5_000)
        await server.stop()
        const stopped = answers.length
        for (const instance of [a, b]) {
          await waitFor('readyz 503', async () => (await ready(instance)) === 503, 5_000)
        }
        // Requests during the outage: a clear error, at once.
        const during = await gql<unknown>(b, tenant.agentKey, STATUS, { id: opened.sessionId })
        expect(during.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE')
        expect(during.errors?.[0]?.message).toMatch(/cannot reach its database/)
        // End users' pages say the service is briefly unavailable (503, Retry-After), not that
        // something broke: the link page, and the callback (its code is not exchanged, so the
        // same callback works after the outage, below).
        for (const [what, answer] of [
          ['link', await fetch(at(b, link))],
          [
            'callback',
            await fetch(at(a, opened.callback), {
              headers: { cookie: opened.cookie },
              redirect: 'manual',
            }),
          ],
        ] as const) {
          expect(answer.status, what).toBe(503)
          expect(answer.headers.get('retry-after'), what).toBe('5')
          expect(await answer.text(), what).toContain('Sign-in is unavailable for a moment')
        }
        await new Promise((resolve) => setTimeout(resolve, 2_000))
        const outage = answers.slice(stopped + 2)
        expect(outage.length).toBeGreaterThan(10)
        for (const answer of outage) {
          expect(answer.code).toBe('SERVICE_UNAVAILABLE')
          expect(answer.ms).toBeLessThan(1_000)
        }
        expect(a.child.exitCode).toBeNull()
        expect(b.child.exitCode).toBeNull()

        await server.start()
        const back = Date.now()
        for (const instance of [a, b]) {
          await waitFor('readyz 200', async () => (await ready(instance)) === 200, 20_000)
        }
        const recoveredIn = Date.now() - back
        await waitFor('requests succeed again', () => answers.at(-1)?.ok === true, 5_000)
        loading = false
        await load
        expect(recoveredIn).toBeLessThan(20_000)

        // The subscription on B, open through the outage, hears of the sign-in completed on A
        // (through the callback that was answered 503 during the outage).
        expect(await arrive(a, opened)).toBe(303)
        expect(await subscription.next(2_000)).toBe('AUTHENTICATED')
        // And new sign-ins work on both.
        for (const [startOn, callbackOn] of [
          [a, b],
          [b, a],
        ] as const) {
          const next = await openSignIn(startOn, callbackOn, tenant.agentKey, integrationId)
          expect(await arrive(callbackOn, next)).toBe(303)
          const session = await pollUntil(startOn, tenant.agentKey, next.sessionId, () => true, 0)
          expect(session.status).toBe('AUTHENTICATED')
        }
        expect(a.child.exitCode).toBeNull()
        expect(b.child.exitCode).toBeNull()
        // The link opened during the outage works now.
        expect((await fetch(at(b, link))).status).toBe(200)
        for (const instance of [a, b]) expect(instance.stderr()).toBe('')
      } finally {
        loading = false
        await load
        await subscription.close()
      }
    }, 90_000)
  },
)
