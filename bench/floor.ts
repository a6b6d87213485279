/**
 * The floor: what creating and reading a sign-in session costs with nothing but HTTP and the
 * database. A plain node:http handler that runs the same SQL statements the service runs (the
 * text Kysely generates for src/db/integrations.ts findIntegrationRow and src/db/auth-sessions.ts
 * insertSessionSuperseding / findSession, with the same driver and pool size), with
 * no GraphQL, no authentication and no validation.
 *
 *   POST /start  {"integrationId","conversationId"}  integration lookup, then the supersede
 *                                                     UPDATE and the INSERT (one statement)
 *   POST /status {"id"}                               the session read
 *
 * Env: FLOOR_DATABASE_URL (PostgreSQL; FLOOR_TENANT_ID names the seeded tenant) or
 * FLOOR_DATA_DIR (its own embedded database, migrated and seeded here, since only one process may
 * own a PGlite directory). Started by bench/run.ts with `fork`; reports `{ port, tenantId,
 * integrationId }` over IPC once listening.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { PGlite } from '@electric-sql/pglite'
import {
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type CompiledQuery,
} from 'kysely'
import { PGliteDialect } from 'kysely-pglite-dialect'
import pg from 'pg'
import { findSession, insertSessionSuperseding } from '../src/db/auth-sessions.ts'
import { migrateToLatest, type Db } from '../src/db/database.ts'
import { findIntegrationRow } from '../src/db/integrations.ts'
import type { Database } from '../src/db/schema.ts'

const SELECT_INTEGRATION =
  'select * from "oauth_integrations" where "tenant_id" = $1 and "id" = $2 and "deleted_at" is null'
// src/db/auth-sessions.ts insertSessionSuperseding: the supersede UPDATE and the INSERT in one
// statement, as Kysely compiles it.
const START =
  'with "superseded" as (update "auth_sessions" set "status" = $1, "updated_at" = $2, "completed_at" = $3, "code_verifier_sealed" = $4, "confirmation_code_sealed" = $5, "confirmation_code_hash" = $6 where "tenant_id" = $7 and "conversation_id" = $8 and "integration_id" = $9 and "status" in ($10, $11, $12) and "expires_at" > $13 returning *), "inserted" as (insert into "auth_sessions" ("id", "tenant_id", "integration_id", "conversation_id", "contact_id", "redirect_route", "redirect_uri", "status", "link_hash", "expires_at", "prompt", "max_age_seconds", "login_hint", "acr_values", "created_at", "updated_at") values ($14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29) returning *) select *, true as "is_new" from "inserted" union all select *, false as "is_new" from "superseded"'
const SELECT_SESSION = 'select * from "auth_sessions" where "id" = $1 and "tenant_id" = $2'

/**
 * The statements the service's own functions compile to, captured without a database. The floor
 * refuses to start when its copies differ, so the comparison cannot drift from the service.
 */
async function serviceStatements(): Promise<string[]> {
  const seen: string[] = []
  const connection = {
    executeQuery: async (query: CompiledQuery) => {
      seen.push(query.sql)
      return { rows: [] }
    },
    streamQuery: async function* () {},
  }
  const db: Db = new Kysely<Database>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createQueryCompiler: () => new PostgresQueryCompiler(),
      createIntrospector: (k) => new PostgresIntrospector(k),
      createDriver: () => ({
        init: async () => {},
        acquireConnection: async () => connection,
        beginTransaction: async () => {},
        commitTransaction: async () => {},
        rollbackTransaction: async () => {},
        releaseConnection: async () => {},
        destroy: async () => {},
      }),
    },
  })
  const id = '00000000-0000-0000-0000-000000000000'
  const now = new Date()
  await findIntegrationRow(db, id, id)
  await insertSessionSuperseding(db, {
    id,
    tenantId: id,
    integrationId: id,
    conversationId: 'c',
    contactId: 'c',
    redirectRoute: 'IDP',
    redirectUri: 'http://127.0.0.1/idp/eu/oauth/callback/k',
    linkHash: new Uint8Array(32),
    expiresAt: now,
    prompt: null,
    maxAgeSeconds: null,
    loginHint: null,
    acrValues: null,
    now,
  }).catch(() => undefined) // no row comes back from nowhere
  await findSession(db, id, id)
  return seen
}

const expected = [SELECT_INTEGRATION, START, SELECT_SESSION]
const actual = await serviceStatements()
if (actual.join('\n') !== expected.join('\n')) {
  throw new Error(
    `bench/floor.ts no longer runs the service's statements; update it.\nservice:\n${actual.join('\n')}\nfloor:\n${expected.join('\n')}`,
  )
}

type Row = Record<string, unknown>
interface Store {
  query(text: string, values: unknown[]): Promise<{ rows: Row[] }>
}

function postgresStore(url: string): Store {
  // As src/db/database.ts: pg.Pool, max 10.
  const pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5_000 })
  pool.on('error', () => {})
  return {
    query: (text, values) => pool.query<Row>(text, values),
  }
}

function pgliteStore(db: PGlite): Store {
  return {
    query: (text, values) => db.query<Row>(text, values),
  }
}

async function openStore(): Promise<{
  store: Store
  tenantId: string
  integrationId: string | null
}> {
  const url = process.env.FLOOR_DATABASE_URL
  if (url) {
    const tenantId = process.env.FLOOR_TENANT_ID
    if (!tenantId) throw new Error('FLOOR_TENANT_ID is required with FLOOR_DATABASE_URL')
    return {
      store: postgresStore(url),
      tenantId,
      integrationId: process.env.FLOOR_INTEGRATION_ID ?? null,
    }
  }
  const dir = process.env.FLOOR_DATA_DIR
  if (!dir) throw new Error('FLOOR_DATABASE_URL or FLOOR_DATA_DIR is required')
  const pglite = new PGlite(dir)
  // Set-up only: the same migrations as the service, then one tenant and one integration.
  await migrateToLatest(new Kysely<Database>({ dialect: new PGliteDialect(pglite) }))
  const tenant = await pglite.query<{ id: string }>(
    `insert into tenants (slug, name) values ('floor', 'Floor') returning id`,
  )
  const tenantId = tenant.rows[0]!.id
  const integration = await pglite.query<{ id: string }>(
    `insert into oauth_integrations (tenant_id, name, client_id, authorization_url, authorization_host, token_url)
     values ($1, 'floor', 'floor-client', 'http://127.0.0.1:9/authorize', '127.0.0.1', 'http://127.0.0.1:9/token')
     returning id`,
    [tenantId],
  )
  return { store: pgliteStore(pglite), tenantId, integrationId: integration.rows[0]!.id }
}

function readJson(req: IncomingMessage): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (body += chunk))
    req.on('end', () => {
      try {
        resolve(JSON.parse(body) as Record<string, string>)
      } catch (error) {
        reject(error as Error)
      }
    })
    req.on('error', reject)
  })
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  })
  res.end(text)
}

function sessionJson(row: Row): Record<string, unknown> {
  return {
    id: row.id,
    status: row.status,
    conversationId: row.conversation_id,
    contactId: row.contact_id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    completedAt: row.completed_at,
    identity: row.identity,
    failure: row.failure,
  }
}

const { store, tenantId, integrationId } = await openStore()

async function start(body: Record<string, string>): Promise<Record<string, unknown>> {
  const integration = (await store.query(SELECT_INTEGRATION, [tenantId, body.integrationId]))
    .rows[0]
  if (!integration) return { error: 'no such integration' }
  const now = new Date()
  const token = randomBytes(32).toString('base64url')
  const conversationId = body.conversationId ?? ''
  const rows = await store.query(START, [
    'CANCELLED',
    now,
    now,
    null,
    null,
    null,
    tenantId,
    conversationId,
    integration.id,
    'PENDING',
    'OPENED',
    'AWAITING_CONFIRMATION',
    now,
    randomUUID(),
    tenantId,
    integration.id,
    conversationId,
    conversationId,
    'IDP',
    `http://127.0.0.1/idp/eu/oauth/callback/${integration.callback_key}`,
    'PENDING',
    createHash('sha256').update(token).digest(),
    new Date(now.getTime() + Number(integration.session_ttl_seconds) * 1000),
    null,
    null,
    null,
    null,
    now,
    now,
  ])
  const row = rows.rows.find((r) => r.is_new === true)
  if (!row) return { error: 'no row inserted' }
  return { session: sessionJson(row), authorizationLink: `http://127.0.0.1/l/${token}` }
}

async function status(body: Record<string, string>): Promise<Record<string, unknown>> {
  const row = (await store.query(SELECT_SESSION, [body.id, tenantId])).rows[0]
  return { session: row ? sessionJson(row) : null }
}

const server = createServer((req, res) => {
  const handler =
    req.method === 'POST'
      ? req.url === '/start'
        ? start
        : req.url === '/status'
          ? status
          : null
      : null
  if (!handler) {
    send(res, 404, { error: 'not found' })
    return
  }
  readJson(req)
    .then(handler)
    .then(
      (body) => send(res, 200, body),
      (error: unknown) => send(res, 500, { error: String(error) }),
    )
})
server.keepAliveTimeout = 30_000

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.send?.({ port, tenantId, integrationId })
})
process.on('disconnect', () => process.exit(0))
