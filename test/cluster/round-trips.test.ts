/**
 * What one sign-in costs the database, counted by pg_stat_statements on a server of the test's
 * own: statements (each one round trip with `pg`), statements that write, rows written and WAL,
 * for the whole flow: startEndUserAuth, the link page and its POST, the callback, the result
 * page and one status read, one sign-in at a time (so each notice to other instances goes out on
 * its own; under load they share statements). The maintenance round and the listener's pings run
 * meanwhile and are told apart by their statements. The figures are printed and held to the README's round-trip
 * budget, so that a change that adds round trips to a sign-in is noticed.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  arrive,
  at,
  gql,
  openSignIn,
  PUBLIC_BASE_URL,
  seedIntegration,
  seedTenant,
  startHoldingProvider,
  startInstance,
  STATUS,
  type HoldingProvider,
  type Seeded,
} from '../helpers/cluster.ts'
import {
  ownPostgresUnavailable,
  startOwnPostgres,
  type OwnPostgres,
} from '../helpers/own-postgres.ts'
import { killLeftovers, type ServiceProcess } from '../helpers/spawn.ts'
import { TEST_DATABASE_URL } from '../helpers/test-db.ts'

const unavailable = TEST_DATABASE_URL
  ? ownPostgresUnavailable()
  : 'PostgreSQL only (set TEST_DATABASE_URL)'
const TITLE = 'database work per sign-in'
const SIGN_INS = 40
/** Sessions the tenant gets before the second test's sign-ins: a hundred pages and more of them. */
const BULK_SESSIONS = 5_000
/**
 * Buffers one statement of a sign-in may read: a lookup by a unique key and, for a write, its
 * index entries. Reading the tenant's sessions would be hundreds.
 */
const MAX_BUFFERS_PER_STATEMENT = 60

interface Statement {
  readonly query: string
  readonly calls: number
  readonly rows: number
  readonly wal_bytes: number
}

describe.skipIf(unavailable !== null)(
  unavailable ? `${TITLE} (skipped: ${unavailable})` : TITLE,
  () => {
    let server: OwnPostgres
    let service: ServiceProcess
    let provider: HoldingProvider
    let tenant: Seeded
    let integrationId: string

    beforeAll(async () => {
      // No autovacuum: the second test needs a table PostgreSQL has never analyzed, as a new
      // database's is until autovacuum's first ANALYZE.
      server = await startOwnPostgres([
        'shared_preload_libraries=pg_stat_statements',
        'autovacuum=off',
      ])
      await query(server.url, 'create extension pg_stat_statements')
      provider = await startHoldingProvider()
      service = await startInstance(server.url)
      tenant = await seedTenant(server.url, 'trips', service)
      integrationId = await seedIntegration(service, tenant.adminKey, provider)
    }, 120_000)

    afterAll(async () => {
      await service?.stop()
      killLeftovers()
      await provider?.close()
      await server?.destroy()
    })

    it('counts statements, writes and WAL per sign-in', async () => {
      await signIn() // warm: the key cache and prepared statements
      await query(server.url, 'select pg_stat_statements_reset()')
      const began = Date.now()
      for (let i = 0; i < SIGN_INS; i += 1) await signIn()
      const seconds = (Date.now() - began) / 1000
      const all = (
        await query<Statement>(
          server.url,
          `select query, calls::int, rows::int, wal_bytes::float8 as wal_bytes
           from pg_stat_statements where dbid = (select oid from pg_database where datname = 'postgres')`,
        )
      ).filter((s) => !/pg_stat_statements/.test(s.query))
      // Background work: each maintenance job is BEGIN, the advisory lock, its statement, COMMIT;
      // the listener pings with `select $1` (as does /readyz, which nothing calls here).
      const jobs = sum(
        all.filter((s) => /pg_try_advisory_xact_lock/.test(s.query)),
        'calls',
      )
      // So is the count of listening instances (runtime/cluster.ts), and the webhook worker's
      // timer: once a second it looks whether any
      // endpoint is enabled and claims due deliveries. With no endpoint, session changes must
      // not make it claim (checked below against the time the sign-ins took).
      const webhookClaims = sum(
        all.filter((s) => /update "webhook_deliveries"/i.test(s.query)),
        'calls',
      )
      const background = (s: Statement) =>
        /pg_try_advisory_xact_lock|^select \$1$|exchange_claimed_at" <=|"expires_at" <=|delete from "auth_sessions"|from "webhook_endpoints" where "enabled"|update "webhook_deliveries"|from pg_stat_activity/i.test(
          s.query,
        )
      const flow = all.filter((s) => !background(s))
      const transactionEnds = (s: Statement) => /^(begin|commit|rollback)$/i.test(s.query.trim())
      let statements = sum(flow, 'calls') - 2 * jobs // each job's BEGIN and COMMIT
      const writes = flow.filter((s) => /^\s*(insert|update|delete|with)/i.test(s.query))
      const writing = writes.filter((s) => s.rows > 0 || /insert/i.test(s.query))
      const perSignIn = {
        statements: statements / SIGN_INS,
        transactions:
          (sum(
            flow.filter((s) => /^begin$/i.test(s.query.trim())),
            'calls',
          ) -
            jobs) /
          SIGN_INS,
        writeStatements: sum(writing, 'calls') / SIGN_INS,
        rowsWritten: sum(writing, 'rows') / SIGN_INS,
        walBytes: Math.round(sum(flow, 'wal_bytes') / SIGN_INS),
      }
      statements = perSignIn.statements
      const table = flow
        .filter((s) => !transactionEnds(s))
        .map(
          (s) =>
            `${(s.calls / SIGN_INS).toFixed(2).padStart(6)}  ${s.query.replace(/\s+/g, ' ').slice(0, 110)}`,
        )
      console.log(
        `per sign-in over ${SIGN_INS} (background jobs meanwhile: ${jobs}):\n${JSON.stringify(perSignIn)}\n${table.join('\n')}`,
      )
      // The budget (README, "Database round trips"): start 1, link page 1, Continue 1, callback 2,
      // result page 1, poll 1. Notices to other instances (one per OPENED and AUTHENTICATED) go
      // out only while another instance listens, and this one is alone.
      const calls = (pattern: RegExp) =>
        sum(
          flow.filter((s) => pattern.test(s.query)),
          'calls',
        ) / SIGN_INS
      expect(calls(/pg_notify/)).toBe(0)
      expect(webhookClaims).toBeLessThanOrEqual(Math.ceil(seconds) + 1)
      expect(statements).toBeLessThanOrEqual(7.1)
      expect(perSignIn.transactions).toBe(0)
      expect(perSignIn.writeStatements).toBeLessThanOrEqual(4)
    }, 60_000)

    it('reads a few buffers per statement on a grown table that was never analyzed', async () => {
      // The sign-ins above left their generic plans cached on the service's connections, planned
      // on a table of a few rows without statistics. The tenant now gets many more sessions, all
      // of one tenant and integration, as a busy tenant's are; no ANALYZE runs.
      const [table] = await query<{ never: boolean }>(
        server.url,
        `select reltuples < 0 as never from pg_class where relname = 'auth_sessions'`,
      )
      expect(table?.never).toBe(true)
      await query(
        server.url,
        `insert into auth_sessions (tenant_id, integration_id, conversation_id, contact_id,
           redirect_route, status, link_hash, expires_at, completed_at)
         select s.tenant_id, s.integration_id, 'bulk-' || i, 'bulk-' || i, 'IDP', 'CANCELLED',
           decode(md5('bulk-' || i), 'hex'), now() + interval '10 minutes', now()
         from generate_series(1, ${BULK_SESSIONS}) i,
           (select tenant_id, integration_id from auth_sessions limit 1) s`,
      )
      await query(server.url, 'select pg_stat_statements_reset()')
      for (let i = 0; i < 10; i += 1) await signIn()
      const statements = (
        await query<{ query: string; calls: number; buffers: number }>(
          server.url,
          `select query, calls::int, (shared_blks_hit + shared_blks_read)::float8 / calls as buffers
           from pg_stat_statements
           where dbid = (select oid from pg_database where datname = 'postgres')
             and query ~* 'auth_sessions' and calls >= 10`,
        )
      ).filter(
        (s) =>
          !/"expires_at" <=|exchange_claimed_at" <=|delete from "auth_sessions"/i.test(s.query),
      )
      console.log(
        statements
          .map(
            (s) =>
              `${s.buffers.toFixed(1).padStart(7)}  ${s.query.replace(/\s+/g, ' ').slice(0, 100)}`,
          )
          .join('\n'),
      )
      // Every statement of a sign-in, the poll among them, finds its row by a unique key.
      expect(statements.length).toBeGreaterThanOrEqual(6)
      for (const s of statements) {
        expect(s.buffers, s.query.slice(0, 160)).toBeLessThan(MAX_BUFFERS_PER_STATEMENT)
      }
    }, 60_000)

    async function signIn(): Promise<void> {
      const opened = await openSignIn(service, service, tenant.agentKey, integrationId)
      expect(await arrive(service, opened)).toBe(303)
      const result = await fetch(at(service, `${PUBLIC_BASE_URL}/r/${opened.sessionId}`), {
        headers: { cookie: opened.cookie },
      })
      await result.arrayBuffer()
      const status = await gql<{ authSession: { status: string } }>(
        service,
        tenant.agentKey,
        STATUS,
        { id: opened.sessionId },
      )
      expect(status.data?.authSession.status).toBe('AUTHENTICATED')
    }
  },
)

function sum<K extends 'calls' | 'rows' | 'wal_bytes'>(rows: readonly Statement[], key: K): number {
  return rows.reduce((total, row) => total + Number(row[key]), 0)
}

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<T>(text)).rows
  } finally {
    await client.end()
  }
}
