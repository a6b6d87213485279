/**
 * The session indexes of migrations 0021 and 0022 (migrations/2026_12_03_0021_lean_session_indexes.ts,
 * 2026_12_06_0022_hot_claim.ts): the state index skips sessions without a state yet and still
 * keeps states unique; the cancellation of an integration's sessions reads the index of its open
 * sessions and the sweep of abandoned exchanges the index of OPENED ones; and the callback's
 * claim, which changes no indexed column, is a HOT update (no index entries).
 */
import { createHash, randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as sessions from '../../src/db/auth-sessions.ts'
import { seedTenantRow, sessionValues, type SessionInsert } from '../helpers/session-rows.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/test-db.ts'

const NOW = new Date('2026-11-27T10:05:00.000Z')
const hash = (value: string) => createHash('sha256').update(value).digest()

describe('the session indexes', () => {
  let t: TestDatabase
  let tenantId: string

  beforeAll(async () => {
    t = await createTestDatabase()
    tenantId = await seedTenantRow(t.db, 'indexes')
  })
  afterAll(async () => t?.close())

  async function insert(overrides: Partial<SessionInsert> = {}) {
    return t.db
      .insertInto('auth_sessions')
      .values(
        sessionValues(tenantId, {
          expires_at: new Date(NOW.getTime() + 600_000),
          created_at: NOW,
          updated_at: NOW,
          ...overrides,
        }),
      )
      .returning('id')
      .executeTakeFirstOrThrow()
  }

  /** The plan of `query` with sequential scans discouraged, as one text. */
  async function plan(query: ReturnType<typeof sql>): Promise<string> {
    return t.db.transaction().execute(async (trx) => {
      await sql`set local enable_seqscan = off`.execute(trx)
      const { rows } = await sql<Record<string, string>>`explain ${query}`.execute(trx)
      return rows.map((row) => Object.values(row).join(' ')).join('\n')
    })
  }

  it('lets any number of sessions wait without a state, and refuses a state twice', async () => {
    await insert()
    await insert()
    const state = hash(`state-${randomUUID()}`)
    await insert({ status: 'OPENED', state_hash: state, binding_hash: hash('b'), opened_at: NOW })
    const twice = await insert({ status: 'OPENED', state_hash: state, opened_at: NOW }).then(
      () => null,
      (error: { code?: string; message?: string }) => error,
    )
    expect(twice?.code ?? twice?.message).toMatch(/23505|duplicate key/)
  })

  it('finds a session by its state through the state index', async () => {
    const text = await plan(sql`select * from auth_sessions where state_hash = ${hash('x')}`)
    expect(text).toContain('auth_sessions_state_hash_key')
  })

  it("cancels an integration's open sessions through the index of open sessions", async () => {
    const integrationId = randomUUID()
    const open = await insert({ integration_id: integrationId })
    const ended = await insert({
      integration_id: integrationId,
      status: 'AUTHENTICATED',
      completed_at: NOW,
    })
    const text = await plan(
      sql`update auth_sessions set status = 'CANCELLED' where tenant_id = ${tenantId}
        and integration_id = ${integrationId}
        and status in ('PENDING', 'OPENED', 'AWAITING_CONFIRMATION')`,
    )
    expect(text).toContain('auth_sessions_integration_open_idx')
    expect(await sessions.cancelOpenSessionsOf(t.db, tenantId, integrationId, NOW)).toEqual([
      open.id,
    ])
    const statuses = await t.db
      .selectFrom('auth_sessions')
      .select(['id', 'status'])
      .where('id', 'in', [open.id, ended.id])
      .orderBy('status')
      .execute()
    expect(statuses).toEqual([
      { id: ended.id, status: 'AUTHENTICATED' },
      { id: open.id, status: 'CANCELLED' },
    ])
  })

  it('sweeps abandoned exchanges through the index of OPENED sessions', async () => {
    const claimedAt = new Date(NOW.getTime() - 60_000)
    const abandoned = await insert({
      status: 'OPENED',
      state_hash: hash(`state-${randomUUID()}`),
      binding_hash: hash('b'),
      opened_at: claimedAt,
      exchange_claimed_at: claimedAt,
    })
    const text = await plan(
      sql`select id from auth_sessions where status = ${'OPENED'}
        and exchange_claimed_at is not null and exchange_claimed_at <= ${NOW}`,
    )
    expect(text).toContain('auth_sessions_opened_idx')
    const failed = await sessions.failAbandonedExchanges(
      t.db,
      NOW,
      { code: 'internal_error', message: 'the sign-in was interrupted' },
      NOW,
    )
    expect(failed.map((session) => session.id)).toContain(abandoned.id)
  })

  it('keeps no index of the claim time, and the integration index for open sessions only', async () => {
    const { rows } = await sql<{ indexname: string }>`select indexname from pg_indexes
      where tablename = 'auth_sessions' order by indexname`.execute(t.db)
    expect(rows.map((row) => row.indexname)).toEqual([
      'auth_sessions_finished_idx',
      'auth_sessions_integration_open_idx',
      'auth_sessions_link_hash_key',
      'auth_sessions_open_expiry_idx',
      'auth_sessions_opened_idx',
      'auth_sessions_pkey',
      'auth_sessions_state_hash_key',
      'auth_sessions_tenant_conversation_idx',
    ])
  })

  it("claims a callback's code exchange with a HOT update", async () => {
    const state = `state-${randomUUID()}`
    const binding = `binding-${randomUUID()}`
    await insert({
      status: 'OPENED',
      state_hash: hash(state),
      binding_hash: hash(binding),
      opened_at: NOW,
    })
    const hot = await t.db.transaction().execute(async (trx) => {
      // This connection's counts not yet in the cumulative statistics (earlier statements of it
      // included, hence the difference).
      const counts = async () => {
        const { rows } = await sql<{ updates: number; hot: number }>`select
          n_tup_upd::int as updates, n_tup_hot_upd::int as hot from pg_stat_xact_user_tables
          where relname = 'auth_sessions'`.execute(trx)
        return rows[0] ?? { updates: 0, hot: 0 }
      }
      const before = await counts()
      const claim = await sessions.claimByState(trx, {
        stateHash: hash(state),
        bindingHashes: [hash(binding).toString('hex')],
        callbackPath: '/idp/eu/oauth/callback/0123456789abcdef',
        now: NOW,
      })
      expect(claim?.claimed).toBe(true)
      const after = await counts()
      return { updates: after.updates - before.updates, hot: after.hot - before.hot }
    })
    expect(hot).toEqual({ updates: 1, hot: 1 })
  })

  it('holds in the integration index only sessions that are open', async () => {
    const { rows } = await sql<{ indexdef: string }>`select pg_get_indexdef(indexrelid) as indexdef
      from pg_index where indexrelid = 'auth_sessions_integration_open_idx'::regclass`.execute(t.db)
    expect(rows[0]?.indexdef).toMatch(
      /WHERE \(status = ANY \(ARRAY\['PENDING'::text, 'OPENED'::text, 'AWAITING_CONFIRMATION'::text\]\)\)/,
    )
  })
})
