/**
 * The maintenance round (services/maintenance.ts) on the test database, with a pinned clock:
 * retention deletes finished sessions past SESSION_RETENTION_DAYS in batches and nothing else,
 * an exchange claimed by an instance that never finished it ends FAILED after the outbound
 * deadline and the grace, and a job held by one instance is skipped by another.
 */
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { exclusively } from '../../src/db/exclusive.ts'
import { createDeps, type OwnedDeps } from '../../src/runtime/open.ts'
import { ABANDONED_GRACE_MS, runMaintenance } from '../../src/services/maintenance.ts'
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/test-db.ts'

const NOW = new Date('2026-12-02T12:00:00Z')
const DAY = 24 * 60 * 60 * 1000

describe('the maintenance round', () => {
  let database: TestDatabase
  let deps: OwnedDeps
  let tenantId: string

  beforeAll(async () => {
    database = await createTestDatabase()
    const config = loadConfig({ ENCRYPTION_KEY: 'k'.repeat(32), SESSION_RETENTION_DAYS: '30' })
    deps = createDeps(config, database.db, pino({ level: 'silent' }), { now: () => NOW })
    const row = await sql<{ id: string }>`insert into tenants (slug, name)
      values ('maintenance', 'm') returning id`.execute(database.db)
    tenantId = row.rows[0]!.id
  })
  afterAll(async () => {
    await deps?.provider.close()
    await database?.close()
  })

  /** A session row as the state machine leaves it: finished ones completed at `completedAt`. */
  async function insert(
    count: number,
    row: {
      status: string
      completedAt?: Date
      claimedAt?: Date
      expiresAt?: Date
      identity?: boolean
    },
  ): Promise<string[]> {
    const ids = Array.from({ length: count }, () => randomUUID())
    await sql`insert into auth_sessions (id, tenant_id, integration_id, conversation_id, contact_id,
        redirect_route, status, link_hash, expires_at, completed_at, exchange_claimed_at,
        opened_at, identity, created_at)
      select id, ${tenantId}, ${randomUUID()}, 'c', 'c', 'IDP', ${row.status},
        decode(md5(id::text), 'hex'), ${row.expiresAt ?? new Date(NOW.getTime() + 600_000)},
        ${row.completedAt ?? null}, ${row.claimedAt ?? null},
        ${row.status === 'PENDING' ? null : new Date(NOW.getTime() - 100 * DAY)},
        ${row.identity ? JSON.stringify({ subject: 'who' }) : null}::jsonb,
        ${new Date(NOW.getTime() - 100 * DAY)}
      from unnest(${ids}::uuid[]) as id`.execute(database.db)
    return ids
  }

  async function statuses(ids: string[]): Promise<Map<string, string>> {
    const rows = await sql<{ id: string; status: string }>`select id, status from auth_sessions
      where id = any(${ids}::uuid[])`.execute(database.db)
    return new Map(rows.rows.map((r) => [r.id, r.status]))
  }

  it('deletes finished sessions (and their identity) past the retention, in batches, and nothing else', async () => {
    const old = await insert(2_500, {
      status: 'AUTHENTICATED',
      completedAt: new Date(NOW.getTime() - 31 * DAY),
      identity: true,
    })
    const oldFailed = await insert(3, {
      status: 'FAILED',
      completedAt: new Date(NOW.getTime() - 30 * DAY - 1000),
    })
    const recent = await insert(3, {
      status: 'EXPIRED',
      completedAt: new Date(NOW.getTime() - 29 * DAY),
    })
    // Started long ago, still open: never deleted (it is not finished).
    const open = await insert(2, { status: 'PENDING' })
    const report = await runMaintenance(deps, { retention: true })
    expect(report.deleted).toBe(2_503)
    expect((await statuses([...old, ...oldFailed])).size).toBe(0)
    expect([...(await statuses(recent)).values()]).toEqual(['EXPIRED', 'EXPIRED', 'EXPIRED'])
    expect([...(await statuses(open)).values()]).toEqual(['PENDING', 'PENDING'])
    // Without retention in this round, nothing is deleted.
    await insert(1, { status: 'CANCELLED', completedAt: new Date(NOW.getTime() - 40 * DAY) })
    expect((await runMaintenance(deps, { retention: false })).deleted).toBe(0)
  })

  it('fails an exchange claimed longer ago than the outbound deadline and the grace', async () => {
    const deadline = deps.provider.deadlineMs
    const abandoned = await insert(2, {
      status: 'OPENED',
      claimedAt: new Date(NOW.getTime() - deadline - ABANDONED_GRACE_MS - 1),
    })
    // Also past its expiry: still FAILED, not EXPIRED (its callback may end after the expiry).
    const abandonedExpired = await insert(1, {
      status: 'OPENED',
      claimedAt: new Date(NOW.getTime() - deadline - ABANDONED_GRACE_MS - 1),
      expiresAt: new Date(NOW.getTime() - 1000),
    })
    const underWay = await insert(1, {
      status: 'OPENED',
      claimedAt: new Date(NOW.getTime() - deadline),
      expiresAt: new Date(NOW.getTime() - 1000),
    })
    const unclaimedExpired = await insert(1, {
      status: 'OPENED',
      expiresAt: new Date(NOW.getTime() - 1000),
    })
    const report = await runMaintenance(deps, { retention: false })
    expect(report).toMatchObject({ abandoned: 3, expired: 1 })
    const after = await statuses([
      ...abandoned,
      ...abandonedExpired,
      ...underWay,
      ...unclaimedExpired,
    ])
    for (const id of [...abandoned, ...abandonedExpired]) expect(after.get(id)).toBe('FAILED')
    expect(after.get(underWay[0]!)).toBe('OPENED')
    expect(after.get(unclaimedExpired[0]!)).toBe('EXPIRED')
    const failure = await sql<{ failure: { code: string; message: string } }>`select failure
      from auth_sessions where id = ${abandoned[0]}`.execute(database.db)
    expect(failure.rows[0]!.failure.code).toBe('internal_error')
    expect(await runMaintenance(deps, { retention: false })).toMatchObject({ abandoned: 0 })
  })

  // The embedded database has one connection: a second transaction waits for the first.
  it.skipIf(!TEST_DATABASE_URL)(
    'skips a job another connection holds (PostgreSQL only)',
    async () => {
      let release!: () => void
      const held = new Promise<void>((resolve) => (release = resolve))
      let entered!: () => void
      const inside = new Promise<void>((resolve) => (entered = resolve))
      const first = exclusively(database.db, 'expire', async () => {
        entered()
        await held
        return 'first'
      })
      await inside
      expect(await exclusively(database.db, 'expire', async () => 'second')).toBeUndefined()
      // Another job is not excluded.
      expect(await exclusively(database.db, 'retention', async () => 'other')).toEqual({
        value: 'other',
      })
      release()
      expect(await first).toEqual({ value: 'first' })
      expect(await exclusively(database.db, 'expire', async () => 'third')).toEqual({
        value: 'third',
      })
    },
  )
})
