/**
 * One limit shared by several instances: two apps in this process on one PostgreSQL database
 * (each with its own in-memory counters, added to the shared counts in the database), and with
 * REDIS_URL (TEST_REDIS_URL) counted in Redis. PostgreSQL may overshoot by at most half of the
 * limit; Redis is exact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/test-db.ts'
import { createTestApp, requestOverSocket } from '../helpers/test-app.ts'
import { cli, createPgDatabase, killLeftovers, startServiceProcess } from '../helpers/spawn.ts'

const TEST_REDIS_URL = process.env.TEST_REDIS_URL || undefined

async function viewer(base: string, key: string): Promise<number> {
  const response = await requestOverSocket(
    base,
    new Request(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: '{ viewer { role } }' }),
    }),
  )
  await response.arrayBuffer()
  return response.status
}

/** Two apps on one database with the given limit variables; requests alternate between them. */
async function twoInstances(database: TestDatabase, env: Record<string, string>) {
  const a = await createTestApp({ database, env: { RATE_LIMITS: 'on', ...env } })
  const b = await createTestApp({ database, env: { RATE_LIMITS: 'on', ...env } })
  const bases = [await a.listen(), await b.listen()]
  return {
    apps: [a, b] as const,
    bases,
    close: async () => {
      await a.close()
      await b.close()
    },
  }
}

describe.skipIf(!TEST_DATABASE_URL)('two instances on one PostgreSQL', () => {
  let database: TestDatabase
  beforeAll(async () => {
    database = await createTestDatabase()
  })
  afterAll(() => database.close())

  it('share a key limit, overshooting by at most half, one after the other and in bursts', async () => {
    const { apps, bases, close } = await twoInstances(database, { RATE_LIMIT_KEY_PER_MINUTE: '40' })
    try {
      const tenant = await apps[0].seedTenant()
      const statuses: number[] = []
      for (let i = 0; i < 120; i++) statuses.push(await viewer(bases[i % 2]!, tenant.agentKey))
      const admitted = statuses.filter((s) => s === 200).length
      expect(admitted).toBeGreaterThanOrEqual(40)
      expect(admitted).toBeLessThanOrEqual(60)
      expect(statuses.filter((s) => s !== 200).every((s) => s === 429)).toBe(true)

      const burst = await apps[0].seedTenant()
      const all = await Promise.all(
        Array.from({ length: 200 }, (_, i) => viewer(bases[i % 2]!, burst.agentKey)),
      )
      const burstAdmitted = all.filter((s) => s === 200).length
      expect(burstAdmitted).toBeGreaterThanOrEqual(40)
      expect(burstAdmitted).toBeLessThanOrEqual(60)
    } finally {
      await close()
    }
  })

  it('know of each other after a second and a tenant over its limit leaves another alone', async () => {
    const { apps, bases, close } = await twoInstances(database, {
      RATE_LIMIT_TENANT_PER_MINUTE: '30',
    })
    try {
      const first = await apps[0].seedTenant()
      const second = await apps[0].seedTenant()
      await new Promise((resolve) => setTimeout(resolve, 1500))
      for (let i = 0; i < 60; i++) await viewer(bases[i % 2]!, first.agentKey)
      expect(await viewer(bases[0]!, first.agentKey)).toBe(429)
      expect(await viewer(bases[1]!, first.adminKey)).toBe(429)
      expect(await viewer(bases[0]!, second.agentKey)).toBe(200)
      expect(await viewer(bases[1]!, second.agentKey)).toBe(200)
      const rows = await database.db.selectFrom('rate_limit_instances').select('id').execute()
      expect(rows.length).toBeGreaterThanOrEqual(2)
    } finally {
      await close()
    }
  })
})

describe.skipIf(!TEST_DATABASE_URL || !TEST_REDIS_URL)('two instances with REDIS_URL', () => {
  it('share a key limit exactly', async () => {
    const database = await createTestDatabase()
    const { apps, bases, close } = await twoInstances(database, {
      RATE_LIMIT_KEY_PER_MINUTE: '40',
      REDIS_URL: TEST_REDIS_URL!,
    })
    try {
      const tenant = await apps[0].seedTenant()
      const all = await Promise.all(
        Array.from({ length: 120 }, (_, i) => viewer(bases[i % 2]!, tenant.agentKey)),
      )
      expect(all.filter((s) => s === 200).length).toBe(40)
      expect(all.filter((s) => s === 429).length).toBe(80)
    } finally {
      await close()
      await database.close()
    }
  })
})

describe.skipIf(!TEST_DATABASE_URL)('two service processes on one PostgreSQL database', () => {
  afterAll(killLeftovers)

  it('share a key limit, overshooting by at most half', async () => {
    const database = await createPgDatabase(TEST_DATABASE_URL!)
    const env = {
      DATABASE_URL: database.url,
      ENCRYPTION_KEY: 'k'.repeat(40),
      RATE_LIMIT_KEY_PER_MINUTE: '40',
    }
    const services = await Promise.all([startServiceProcess(env), startServiceProcess(env)])
    try {
      const created = await cli(['tenant', 'create', 'shared'], env)
      expect(created.code, created.stderr).toBe(0)
      const key = (JSON.parse(created.stdout) as { apiKey: string }).apiKey
      // Each has added its counts at least once, so each knows the other is there.
      await new Promise((resolve) => setTimeout(resolve, 1500))
      const statuses: number[] = []
      for (let i = 0; i < 120; i++) statuses.push(await viewer(services[i % 2]!.url, key))
      const admitted = statuses.filter((s) => s === 200).length
      expect(admitted).toBeGreaterThanOrEqual(40)
      expect(admitted).toBeLessThanOrEqual(60)
      expect(statuses.filter((s) => s !== 200).every((s) => s === 429)).toBe(true)
    } finally {
      await Promise.all(services.map((service) => service.stop()))
      await database.drop()
    }
  }, 120_000)
})
