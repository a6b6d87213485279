/**
 * Two instances' buses in one process, against a schema of the test database: a session change
 * published on one wakes the other's subscribers (and its own once), in batches however many;
 * what the triggers announce reaches caches; when the listening connections are killed, caches
 * are not trusted until they are back, then dropped, and every subscription is woken to read its
 * session again, so a change announced meanwhile is not missed.
 */
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LISTENER_APPLICATION_NAME } from '../../src/db/listener.ts'
import { CATCH_UP_MS, listenToDatabase, type Cluster } from '../../src/runtime/cluster.ts'
import { InvalidatedCache } from '../../src/services/cache.ts'
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/test-db.ts'

const logger = pino({ level: 'silent' })

describe.skipIf(!TEST_DATABASE_URL)(
  'the cluster bus over LISTEN/NOTIFY (PostgreSQL only: the embedded database stays in-process)',
  () => {
    let database: TestDatabase
    let here: Cluster
    let there: Cluster
    let tenantId: string

    beforeAll(async () => {
      database = await createTestDatabase()
      const target = database.target
      if (target.kind !== 'postgres') throw new Error('a PostgreSQL test database was expected')
      const instance = () =>
        listenToDatabase({
          db: database.db,
          url: target.url,
          schema: target.schema,
          logger,
          pingIntervalMs: 500,
        })
      here = await instance()
      there = await instance()
      const row = await sql<{ id: string }>`insert into tenants (slug, name)
        values ('bus', 'bus') returning id`.execute(database.db)
      tenantId = row.rows[0]!.id
    })
    afterAll(async () => {
      await there?.close()
      await here?.close()
      await database?.close()
    })

    function cacheOfTenants(): { cache: InvalidatedCache<string>; dropped: Array<string | null> } {
      const dropped: Array<string | null> = []
      here.invalidation.register(['tenant'], (id) => dropped.push(id))
      const cache = new InvalidatedCache<string>(here.invalidation, {
        topics: ['tenant'],
        ttlMs: 60_000,
        maxEntries: 10,
        affects: (value, id) => value === id,
      })
      return { cache, dropped }
    }

    it("wakes another instance's subscribers of a changed session, and its own once", async () => {
      const id = randomUUID()
      const far = here.events.subscribe(id)
      const near = there.events.subscribe(id)
      const wokenFar = far.next()
      const nearWakes: string[] = []
      void (async () => {
        for await (const woken of near) nearWakes.push(woken)
      })()
      there.events.publish(id)
      expect(await within(1_000, wokenFar)).toEqual({ done: false, value: id })
      await new Promise((resolve) => setTimeout(resolve, 300))
      // At once, and not again when its own notice comes back.
      expect(nearWakes).toEqual([id])
      await far.return?.()
      await near.return?.()
    })

    it('carries many changes in few notices', async () => {
      const ids = Array.from({ length: 400 }, () => randomUUID())
      const subscriptions = ids.map((id) => here.events.subscribe(id))
      const woken = Promise.all(subscriptions.map((s) => s.next()))
      for (const id of ids) there.events.publish(id)
      expect((await within(2_000, woken)).map((r) => r.value)).toEqual(ids)
      for (const s of subscriptions) await s.return?.()
    })

    it('drops the cached rows a change affects, and no others', async () => {
      const { cache, dropped } = cacheOfTenants()
      cache.set(tenantId, tenantId, Date.now(), cache.generation())
      cache.set('other', 'other', Date.now(), cache.generation())
      // Any writer, here SQL outside the service: the trigger announces it.
      await sql`update tenants set name = 'renamed' where id = ${tenantId}`.execute(database.db)
      await waitUntil(() => dropped.includes(tenantId), 1_000)
      expect(cache.get(tenantId, Date.now())).toBeUndefined()
      expect(cache.get('other', Date.now())).toBe('other')
    })

    it('does not store a value read before an invalidation that came in after the read', () => {
      const { cache } = cacheOfTenants()
      const generation = cache.generation()
      here.invalidation.changed('tenant', tenantId) // a change lands while the read is under way
      cache.set(tenantId, tenantId, Date.now(), generation)
      expect(cache.get(tenantId, Date.now())).toBeUndefined()
    })

    it('distrusts caches while the connection is gone, then drops them and wakes every subscriber', async () => {
      // Past the catch-up that follows the first connection, which wakes every subscriber too.
      await new Promise((resolve) => setTimeout(resolve, CATCH_UP_MS + 100))
      const { cache, dropped } = cacheOfTenants()
      cache.set('kept', 'kept', Date.now(), cache.generation())
      const id = randomUUID()
      const updates = here.events.subscribe(id)
      const woken = updates.next()
      expect(here.listening()).toBe(true)
      // The only in-process listeners on this database are this file's two (service processes
      // that the other tests start have databases of their own).
      const killed = await sql<{ n: number }>`select count(pg_terminate_backend(pid))::int as n
        from pg_stat_activity
        where application_name = ${LISTENER_APPLICATION_NAME} and datname = current_database()`.execute(
        database.db,
      )
      expect(killed.rows[0]!.n).toBe(2)
      await waitUntil(() => here.listening() === false, 2_000)
      expect(cache.get('kept', Date.now())).toBeUndefined()
      // Set meanwhile: not stored, nothing heard now can be trusted.
      cache.set('meanwhile', 'meanwhile', Date.now(), cache.generation())
      // A change announced while nobody listens is heard by no one...
      there.events.publish(id)
      // ...but once the connection is back the subscriber is woken to read its session again.
      expect(await within(5_000, woken)).toEqual({ done: false, value: id })
      expect(here.listening()).toBe(true)
      // Dropped at the loss and again at the return.
      expect(dropped.filter((d) => d === null).length).toBeGreaterThanOrEqual(2)
      expect(cache.get('meanwhile', Date.now())).toBeUndefined()
      cache.set('after', 'after', Date.now(), cache.generation())
      expect(cache.get('after', Date.now())).toBe('after')
      await updates.return?.()
    })
  },
)

async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`nothing within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

async function waitUntil(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
