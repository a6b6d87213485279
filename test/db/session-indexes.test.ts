/**
 * The session indexes of migration 0021 (migrations/2026_12_03_0021_lean_session_indexes.ts):
 * the state index skips sessions without a state yet and still keeps states unique, the
 * integration index holds open sessions only, and the queries that need them still use them.
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

  it('holds in the integration index only sessions that are open', async () => {
    const { rows } = await sql<{ indexdef: string }>`select pg_get_indexdef(indexrelid) as indexdef
      from pg_index where indexrelid = 'auth_sessions_integration_open_idx'::regclass`.execute(t.db)
    expect(rows[0]?.indexdef).toMatch(
      /WHERE \(status = ANY \(ARRAY\['PENDING'::text, 'OPENED'::text, 'AWAITING_CONFIRMATION'::text\]\)\)/,
    )
  })
})
