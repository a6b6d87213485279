/**
 * The floor: the least database work the job needs, behind the thinnest possible HTTP handler.
 * A plain node:http handler with a pg.Pool of 10 (as the service's) and a table of its own,
 * `floor_sessions`, created here if missing; no GraphQL, no authentication, no validation:
 *
 *   POST /start  {"conversationId"}  ONE insert of a session row; answers the row and a link
 *   POST /status {"id"}              ONE read of that row by primary key
 *
 * It is a lower bound, not a competitor: the service's ratio to it is what the service costs as a
 * whole, its SQL included (the integration lookup, the supersede of an earlier session, the wider
 * rows, the triggers). Until this version the floor ran the service's own statements (and refused
 * to start when they differed from what src/db compiled), so the comparison left the service's SQL
 * out: a change that added statements or made them heavier moved both sides alike. Ratios from
 * before that change are against that floor and are not comparable with these. The same idea as
 * /work/shared/bench-kit/floor.mjs (whose status read is by id alone; this one also checks the
 * tenant, which the primary key read answers just the same).
 *
 * Env: FLOOR_DATABASE_URL (PostgreSQL; FLOOR_TENANT_ID, the tenant its rows carry; PGAPPNAME names
 * its connections) or
 * FLOOR_DATA_DIR (its own embedded PGlite directory, since only one process may own one).
 * Started by bench/run.ts with `fork`; reports `{ port, tenantId, integrationId: null }` over IPC
 * once listening (the floor has no integrations: run.ts then uses the seeded one's id, which the
 * floor ignores).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'

const CREATE_TABLE = `create table if not exists floor_sessions (
  id uuid primary key,
  tenant_id uuid not null,
  state_hash bytea not null,
  status text not null,
  conversation_id text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
)`
const INSERT = `insert into floor_sessions (id, tenant_id, state_hash, status, conversation_id, expires_at)
  values ($1, $2, $3, 'PENDING', $4, now() + interval '15 minutes')
  returning id, status, conversation_id, created_at, expires_at`
const SELECT = `select id, status, conversation_id, created_at, expires_at
  from floor_sessions where id = $1 and tenant_id = $2`

type Row = Record<string, unknown>
interface Store {
  query(text: string, values?: unknown[]): Promise<{ rows: Row[] }>
}

async function openStore(): Promise<{ store: Store; tenantId: string }> {
  const url = process.env.FLOOR_DATABASE_URL
  let store: Store
  if (url) {
    const pool = new pg.Pool({
      connectionString: url,
      max: 10,
      connectionTimeoutMillis: 5_000,
      // application_name comes from PGAPPNAME (run.ts sets it), so run.ts can tell the floor's
      // backends from the service's in pg_stat_activity.
    })
    pool.on('error', () => {})
    store = { query: (text, values) => pool.query<Row>(text, values) }
  } else {
    const dir = process.env.FLOOR_DATA_DIR
    if (!dir) throw new Error('FLOOR_DATABASE_URL or FLOOR_DATA_DIR is required')
    const db = new PGlite(dir)
    store = { query: (text, values) => db.query<Row>(text, values) }
  }
  await store.query(CREATE_TABLE)
  return { store, tenantId: process.env.FLOOR_TENANT_ID ?? randomUUID() }
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
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  }
}

const { store, tenantId } = await openStore()

async function start(body: Record<string, string>): Promise<Record<string, unknown>> {
  // The link carries a random token; only its hash is stored, as the service does.
  const token = randomBytes(32).toString('base64url')
  const hash = createHash('sha256').update(token).digest()
  const { rows } = await store.query(INSERT, [
    randomUUID(),
    tenantId,
    hash,
    body.conversationId ?? '',
  ])
  return { session: sessionJson(rows[0]!), authorizationLink: `http://127.0.0.1/l/${token}` }
}

async function status(body: Record<string, string>): Promise<Record<string, unknown>> {
  const row = (await store.query(SELECT, [body.id, tenantId])).rows[0]
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
  process.send?.({ port, tenantId, integrationId: null })
})
process.on('disconnect', () => process.exit(0))
