/**
 * Two service processes on one PostgreSQL database, started as the README says (the same
 * DATABASE_URL and ENCRYPTION_KEY, different ports), behave as one service: a subscriber on B
 * hears of a sign-in completed through A, a key revoked on A is refused by B, an integration
 * changed on A is used so by B, each within a second; and the maintenance rounds of both expire
 * each session once.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  arrive,
  gql,
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

const WITHIN_A_SECOND = 1_000

describe.skipIf(!TEST_DATABASE_URL)(
  'two instances on one PostgreSQL database (needs TEST_DATABASE_URL)',
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
      // The first instance migrates; the second finds the database migrated.
      a = await startInstance(database.url)
      b = await startInstance(database.url)
      tenant = await seedTenant(database.url, 'cluster', a)
      integrationId = await seedIntegration(a, tenant.adminKey, provider)
    }, 120_000)

    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()])
      killLeftovers()
      await provider?.close()
      await database?.drop()
    })

    it('tells a subscriber on B of a sign-in completed through A within a second', async () => {
      const opened = await openSignIn(a, a, tenant.agentKey, integrationId)
      const subscription = await Subscription.open(b, tenant.agentKey, opened.sessionId)
      try {
        expect(await subscription.next(5_000)).toBe('OPENED')
        expect(await arrive(a, opened)).toBe(303)
        const answered = Date.now()
        expect(await subscription.next(WITHIN_A_SECOND)).toBe('AUTHENTICATED')
        expect(Date.now() - answered).toBeLessThan(WITHIN_A_SECOND)
        expect(await subscription.next(WITHIN_A_SECOND)).toBeNull() // final: the stream ends
      } finally {
        await subscription.close()
      }
    })

    it('has B refuse a key revoked on A within a second, although B had it cached', async () => {
      const key = await seedTenantKey()
      const viewer = '{ viewer { role } }'
      // Twice on B: the second answer comes from B's cache of verified keys.
      for (let i = 0; i < 2; i += 1) {
        expect((await gql(b, key.apiKey, viewer)).data).toEqual({ viewer: { role: 'AGENT' } })
      }
      const revoked = await gql(
        a,
        tenant.adminKey,
        `mutation ($keyId: String!) {
      revokeApiKey(keyId: $keyId) { keyId }
    }`,
        { keyId: key.keyId },
      )
      expect(revoked.errors).toBeUndefined()
      const took = await waitFor(
        'B refuses the revoked key',
        async () =>
          (await gql(b, key.apiKey, viewer)).errors?.[0]?.extensions?.code === 'UNAUTHENTICATED',
        WITHIN_A_SECOND,
      )
      expect(took).toBeLessThan(WITHIN_A_SECOND)
      // And it stays refused (no cache brings it back).
      expect((await gql(b, key.apiKey, viewer)).errors?.[0]?.extensions?.code).toBe(
        'UNAUTHENTICATED',
      )
    })

    it('has B use an integration as A changed it within a second', async () => {
      const id = await seedIntegration(a, tenant.adminKey, provider, { name: 'to change' })
      const scopeOnB = async () =>
        (await openSignIn(b, b, tenant.agentKey, id)).authorizationUrl.searchParams.get('scope')
      expect(await scopeOnB()).toBe('profile email')
      const updated = await gql(
        a,
        tenant.adminKey,
        `mutation ($input: UpdateOAuthIntegrationInput!) {
      updateOAuthIntegration(input: $input) { integration { id scope } }
    }`,
        { input: { id, scope: 'profile email phone' } },
      )
      expect(updated.errors).toBeUndefined()
      const changed = Date.now()
      // B caches integrations (it read this one above): the database's notice of the change
      // drops it there, which may come a moment after A's answer.
      let scope = await scopeOnB()
      while (scope !== 'profile email phone' && Date.now() - changed < WITHIN_A_SECOND) {
        await new Promise((resolve) => setTimeout(resolve, 20))
        scope = await scopeOnB()
      }
      expect(scope).toBe('profile email phone')
      expect(Date.now() - changed).toBeLessThan(WITHIN_A_SECOND)
    })

    it('expires each session once although both instances sweep', async () => {
      const opened = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          openSignIn(i % 2 ? a : b, i % 2 ? b : a, tenant.agentKey, integrationId),
        ),
      )
      const ids = opened.map((o) => o.sessionId)
      const expiredBefore = expiredIn(a) + expiredIn(b)
      // Past their expiry as the database sees it (a TTL is at least a minute).
      await withClient(database.url, (client) =>
        client.query(
          `update auth_sessions set expires_at = now() - interval '1 second' where id = any($1)`,
          [ids],
        ),
      )
      const subscription = await Subscription.open(a, tenant.agentKey, ids[0]!)
      try {
        await waitFor(
          'both sweeps ran',
          async () => {
            const rows = await withClient(database.url, (client) =>
              client.query<{ n: string }>(
                `select count(*) as n from auth_sessions where id = any($1) and status = 'EXPIRED'`,
                [ids],
              ),
            )
            return Number(rows.rows[0]!.n) === ids.length
          },
          15_000,
        )
        // Each was written EXPIRED by exactly one instance: the two reported 20 in all.
        await new Promise((resolve) => setTimeout(resolve, 500)) // the log line follows the commit
        expect(expiredIn(a) + expiredIn(b) - expiredBefore).toBe(ids.length)
        // The subscriber (on A, whichever instance swept the session) heard of it.
        const seen: Array<string | null> = []
        for (let s = await subscription.next(5_000); s !== null; s = await subscription.next(5_000))
          seen.push(s)
        expect(seen.at(-1)).toBe('EXPIRED')
        // And B serves the outcome too.
        const read = await pollUntil(
          b,
          tenant.agentKey,
          ids[1]!,
          (s) => s?.status === 'EXPIRED',
          1_000,
        )
        expect(read.status).toBe('EXPIRED')
      } finally {
        await subscription.close()
      }
    }, 30_000)

    async function seedTenantKey(): Promise<{ apiKey: string; keyId: string }> {
      const created = await gql<{ createApiKey: { apiKey: string; keyId: string } }>(
        a,
        tenant.adminKey,
        `mutation { createApiKey(role: AGENT, label: "to revoke") { apiKey keyId } }`,
      )
      expect(created.errors).toBeUndefined()
      return created.data!.createApiKey
    }
  },
)

/** Sessions an instance reports it wrote EXPIRED, from its "maintenance" log lines. */
function expiredIn(instance: ServiceProcess): number {
  return instance
    .logs()
    .filter((line) => line.msg === 'maintenance')
    .reduce((sum, line) => sum + Number(line.expired ?? 0), 0)
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end()
  }
}
