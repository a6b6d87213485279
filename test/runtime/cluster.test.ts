/**
 * The listening connection and what hangs on it, in-process against a schema of the test
 * database: what the triggers announce reaches subscribers and caches; when the connection is
 * killed, caches are not trusted until it is back, then dropped, and every subscription is woken
 * to read its session again.
 */
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LISTENER_APPLICATION_NAME } from '../../src/db/listener.ts'
import { listenToDatabase, type Cluster } from '../../src/runtime/cluster.ts'
import { InvalidatedCache } from '../../src/services/cache.ts'
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/test-db.ts'

const logger = pino({ level: 'silent' })

describe.skipIf(!TEST_DATABASE_URL)(
  'the cluster bus over LISTEN/NOTIFY (PostgreSQL only: the embedded database stays in-process)',
  () => {
    let database: TestDatabase
    let cluster: Cluster
    let tenantId: string

    beforeAll(async () => {
      database = await createTestDatabase()
      if (database.target.kind !== 'postgres') throw new Error('unreachable')
      cluster = await listenToDatabase({
        url: database.target.url,
        schema: database.target.schema,
        logger,
        pingIntervalMs: 500,
      })
      const row = await sql<{ id: string }>`insert into tenants (slug, name)
      values ('bus', 'bus') returning id`.execute(database.db)
      tenantId = row.rows[0]!.id
    })
    afterAll(async () => {
      await cluster?.close()
      await database?.close()
    })

    async function newSession(): Promise<string> {
      const id = randomUUID()
      await sql`insert into auth_sessions (id, tenant_id, integration_id, conversation_id, contact_id,
      redirect_route, status, link_hash, expires_at)
      values (${id}, ${tenantId}, ${randomUUID()}, 'c', 'c', 'IDP', 'PENDING',
        ${Buffer.from(randomUUID())}, now() + interval '10 minutes')`.execute(database.db)
      return id
    }

    function cacheOfTenants(): { cache: InvalidatedCache<string>; dropped: Array<string | null> } {
      const dropped: Array<string | null> = []
      cluster.invalidation.register(['tenant'], (id) => dropped.push(id))
      const cache = new InvalidatedCache<string>(cluster.invalidation, {
        topics: ['tenant'],
        ttlMs: 60_000,
        maxEntries: 10,
        affects: (value, id) => value === id,
      })
      return { cache, dropped }
    }

    it('wakes the subscribers of a session whose status changed, and only then', async () => {
      const id = await newSession()
      const updates = cluster.events.subscribe(id)
      const woken = updates.next()
      let fired = false
      void woken.then(() => (fired = true))
      // Not a status change: no notice.
      await sql`update auth_sessions set updated_at = now() where id = ${id}`.execute(database.db)
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(fired).toBe(false)
      await sql`update auth_sessions set status = 'OPENED', opened_at = now() where id = ${id}`.execute(
        database.db,
      )
      expect(await within(1_000, woken)).toEqual({ done: false, value: id })
      await updates.return?.()
    })

    it('drops the cached rows a change affects, and no others', async () => {
      const { cache, dropped } = cacheOfTenants()
      cache.set(tenantId, tenantId, Date.now(), cache.generation())
      cache.set('other', 'other', Date.now(), cache.generation())
      await sql`update tenants set name = 'renamed' where id = ${tenantId}`.execute(database.db)
      await waitUntil(() => dropped.includes(tenantId), 1_000)
      expect(cache.get(tenantId, Date.now())).toBeUndefined()
      expect(cache.get('other', Date.now())).toBe('other')
    })

    it('does not store a value read before an invalidation that came in after the read', () => {
      const { cache } = cacheOfTenants()
      const generation = cache.generation()
      cluster.invalidation.changed('tenant', tenantId) // a change lands while the read is under way
      cache.set(tenantId, tenantId, Date.now(), generation)
      expect(cache.get(tenantId, Date.now())).toBeUndefined()
    })

    it('distrusts caches while the connection is gone, then drops them and wakes every subscriber', async () => {
      const { cache, dropped } = cacheOfTenants()
      cache.set('kept', 'kept', Date.now(), cache.generation())
      const id = await newSession()
      const updates = cluster.events.subscribe(id)
      const woken = updates.next()
      expect(cluster.listening()).toBe(true)
      // The only in-process listener on this database is this file's (service processes that the
      // other tests start have databases of their own).
      const killed = await sql<{ n: number }>`select count(pg_terminate_backend(pid))::int as n
      from pg_stat_activity
      where application_name = ${LISTENER_APPLICATION_NAME} and datname = current_database()`.execute(
        database.db,
      )
      expect(killed.rows[0]!.n).toBe(1)
      await waitUntil(() => cluster.listening() === false, 2_000)
      expect(cache.get('kept', Date.now())).toBeUndefined()
      // Set meanwhile: not stored, nothing heard now can be trusted.
      cache.set('meanwhile', 'meanwhile', Date.now(), cache.generation())
      // A change while nobody listens is heard by no one...
      await sql`update auth_sessions set status = 'CANCELLED', completed_at = now() where id = ${id}`.execute(
        database.db,
      )
      // ...but once the connection is back the subscriber is woken to read its session again.
      expect(await within(5_000, woken)).toEqual({ done: false, value: id })
      expect(cluster.listening()).toBe(true)
      expect(dropped.filter((d) => d === null).length).toBeGreaterThanOrEqual(2) // at the loss and the return
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
