/**
 * One Kysely type over two engines: real PostgreSQL through `pg` when DATABASE_URL is set, and
 * embedded PGlite in DATA_DIR otherwise. The same migrations run on both.
 */
import { mkdirSync } from 'node:fs'
import type { PGlite } from '@electric-sql/pglite'
import {
  Kysely,
  Migrator,
  PostgresDialect,
  sql,
  type DatabaseIntrospector,
  type Dialect,
  type Driver,
  type MigrationResultSet,
  type PostgresPool,
  type PostgresPoolClient,
} from 'kysely'
import { PGliteDialect } from 'kysely-pglite-dialect'
import pg from 'pg'
import { migrations } from '../../migrations/index.ts'
import { CurrentSchemaIntrospector } from './introspector.ts'
import { statementName } from './prepared.ts'
import { queryNamed } from './row-shapes.ts'
import type { Database } from './schema.ts'

export type Db = Kysely<Database>

export type DatabaseTarget =
  | {
      readonly kind: 'postgres'
      readonly url: string
      readonly schema?: string
      readonly poolSize?: number
    }
  /** `dataDir` is a folder, or `memory://` for a throw-away database (tests). */
  | { readonly kind: 'pglite'; readonly dataDir: string }

export interface DatabaseHandle {
  readonly db: Db
  readonly kind: DatabaseTarget['kind']
  /** Resolves when the database answers a trivial query within `timeoutMs`; rejects otherwise. */
  ping(timeoutMs?: number): Promise<void>
  close(): Promise<void>
}

export function openDatabase(target: DatabaseTarget): DatabaseHandle {
  let db: Db
  if (target.kind === 'postgres') {
    const pool = new pg.Pool({
      connectionString: target.url,
      max: target.poolSize ?? 10,
      connectionTimeoutMillis: 5_000,
      keepAlive: true,
      // A per-schema search path isolates test files (and lets operators pick a schema).
      ...(target.schema ? { options: `-c search_path=${target.schema}` } : {}),
    })
    // An idle client losing its connection must not crash the process; the pool replaces it.
    pool.on('error', () => {})
    // Nor one checked out of the pool (the pool listens only to idle ones): between two queries
    // it would emit 'error' with nobody listening. Its next query fails and the pool drops it.
    pool.on('connect', (client) => client.on('error', () => {}))
    db = new Kysely<Database>({ dialect: new CurrentSchemaPostgresDialect({ pool: named(pool) }) })
  } else {
    if (!target.dataDir.startsWith('memory://')) mkdirSync(target.dataDir, { recursive: true })
    db = new Kysely<Database>({ dialect: lazyPGliteDialect(target.dataDir) })
  }
  let closed: Promise<void> | undefined
  return {
    db,
    kind: target.kind,
    async ping(timeoutMs = 2_000) {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('database did not answer in time')), timeoutMs)
      })
      try {
        await Promise.race([sql`select 1`.execute(db), timeout])
      } finally {
        clearTimeout(timer)
      }
    },
    close() {
      closed ??= db.destroy()
      return closed
    },
  }
}

/**
 * The pool as Kysely sees it, where the statements of prepared.ts go out as named prepared
 * statements: `pg` parses each once per connection and then sends only Bind and Execute.
 *
 * A named statement whose result columns changed under it (a migration run by another instance
 * while this one serves) fails with "cached plan must not change result type"; the call is then
 * made again unnamed, and that connection sends its statements unnamed from then on.
 */
function named(pool: pg.Pool): PostgresPool {
  const unnamedOnly = new WeakSet<pg.PoolClient>()
  // One wrapper per pooled client, not per checkout: Kysely keys its connection objects by what
  // connect() returns, and would make a new one (and a WeakMap entry) for every statement.
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>()
  return {
    async connect(): Promise<PostgresPoolClient> {
      const client = await pool.connect()
      const known = wrappers.get(client)
      if (known) return known
      // Typed loosely because `query` is overloaded: a cursor (Kysely's streaming) goes through as it is.
      const query = ((text: unknown, values?: unknown[]) => {
        if (typeof text !== 'string') return client.query(text as pg.Submittable)
        const name = statementName(text)
        if (name === undefined || unnamedOnly.has(client)) return client.query(text, values)
        return queryNamed(client, name, text, values ?? []).catch((error: unknown) => {
          if (!isStalePlan(error)) throw error
          unnamedOnly.add(client)
          return client.query(text, values)
        })
      }) as unknown as PostgresPoolClient['query']
      // pg-pool gives the client a new release function at each checkout: look it up each time.
      const wrapper: PostgresPoolClient = { query, release: (destroy) => client.release(destroy) }
      wrappers.set(client, wrapper)
      return wrapper
    },
    end: () => pool.end(),
  }
}

function isStalePlan(error: unknown): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { code?: unknown }).code === '0A000' &&
    /cached plan/.test(String((error as { message?: unknown }).message))
  )
}

/** PostgresDialect whose introspection sees the current schema only (see introspector.ts). */
class CurrentSchemaPostgresDialect extends PostgresDialect {
  override createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new CurrentSchemaIntrospector(db)
  }
}

/**
 * PGliteDialect over a PGlite that is imported and opened on first use. Loading PGlite costs the
 * process about 50 MB of resident memory (measured under tsx), which a service on PostgreSQL
 * should not carry; `new PGlite()` starts asynchronously anyway, so nothing changes for the
 * embedded database but the moment the module is loaded.
 */
function lazyPGliteDialect(dataDir: string): Dialect {
  // Adapter, compiler and introspector do not need the database.
  const shape = new PGliteDialect(null as unknown as PGlite)
  return {
    createAdapter: () => shape.createAdapter(),
    createQueryCompiler: () => shape.createQueryCompiler(),
    createIntrospector: (db) => new CurrentSchemaIntrospector(db),
    createDriver(): Driver {
      let inner: Driver | undefined
      const driver = (): Driver => {
        if (!inner) throw new Error('the embedded database was used before it was initialised')
        return inner
      }
      return {
        async init() {
          const { PGlite } = await import('@electric-sql/pglite')
          inner = new PGliteDialect(new PGlite(dataDir)).createDriver()
          await inner.init()
        },
        acquireConnection: () => driver().acquireConnection(),
        beginTransaction: (connection, settings) => driver().beginTransaction(connection, settings),
        commitTransaction: (connection) => driver().commitTransaction(connection),
        rollbackTransaction: (connection) => driver().rollbackTransaction(connection),
        releaseConnection: (connection) => driver().releaseConnection(connection),
        destroy: async () => {
          await inner?.destroy()
        },
      }
    },
  }
}

/**
 * Applies pending migrations. On PostgreSQL (and PGlite) Kysely runs them in one transaction, so
 * a failing migration leaves the database as it was; the error is rethrown with its name.
 */
export async function migrateToLatest(db: Db): Promise<MigrationResultSet> {
  // Kysely looks for its bookkeeping table in every schema unless told which one; name the
  // current schema so another schema's table (another app, a test run) is never mistaken for ours.
  const current = await sql<{ schema: string }>`select current_schema() as schema`.execute(db)
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableSchema: current.rows[0]?.schema ?? 'public',
  })
  const result = await migrator.migrateToLatest()
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName
    const reason = result.error instanceof Error ? result.error.message : String(result.error)
    throw new Error(`migration ${failed ?? '(unknown)'} failed: ${reason}`, { cause: result.error })
  }
  return result
}
