/**
 * Migrations on both engines: running them again applies nothing, and a failing migration leaves
 * the database exactly as it was (all pending migrations run in one transaction) while the error
 * names the migration and the reason. PGlite always; PostgreSQL when TEST_DATABASE_URL is set.
 */
import { sql, type Kysely, type Migration } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrations } from '../../migrations/index.ts'
import { migrateToLatest, openDatabase, type DatabaseHandle } from '../../src/db/database.ts'
import { killLeftovers, runScript, tempDataDir } from '../helpers/spawn.ts'
import { createTestDatabase, TEST_DATABASE_URL } from '../helpers/test-db.ts'

const ENGINES: Array<[string, () => Promise<DatabaseHandle>]> = [
  ['PGlite', async () => openDatabase({ kind: 'pglite', dataDir: 'memory://' })],
]
if (TEST_DATABASE_URL) ENGINES.push(['PostgreSQL', () => createTestDatabase({ migrate: false })])

const FAILING = '9999_99_99_failing'

/** The migration that fails: it creates a table and alters one, then hits an SQL error. */
const failing: Migration = {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's migration signature
  async up(db: Kysely<any>) {
    await db.schema.createTable('half_done').addColumn('id', 'integer').execute()
    await db.schema.alterTable('tenants').addColumn('half_done_column', 'text').execute()
    await sql`select no_such_column from tenants`.execute(db)
  },
}

/** Runs `body` with the failing migration appended to the real list (which the app reads). */
async function withFailingMigration<T>(body: () => Promise<T>): Promise<T> {
  migrations[FAILING] = failing
  try {
    return await body()
  } finally {
    delete migrations[FAILING]
  }
}

async function currentSchema(database: DatabaseHandle): Promise<string> {
  const result = await sql<{ s: string }>`select current_schema() as s`.execute(database.db)
  return result.rows[0]!.s
}

/** Table name → column names, in the database's current schema only (PostgreSQL has others). */
async function tablesOf(database: DatabaseHandle): Promise<Map<string, string[]>> {
  const schema = await currentSchema(database)
  const tables = await database.db.introspection.getTables()
  return new Map(
    tables
      .filter((t) => t.schema === schema)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((t) => [t.name, t.columns.map((c) => c.name)]),
  )
}

async function appliedMigrations(database: DatabaseHandle): Promise<string[]> {
  const rows = await sql<{
    name: string
  }>`select name from kysely_migration order by name`.execute(database.db)
  return rows.rows.map((r) => r.name)
}

function failingRun(database: DatabaseHandle): Promise<Error | null> {
  return withFailingMigration(() =>
    migrateToLatest(database.db).then(
      () => null,
      (e: Error) => e,
    ),
  )
}

const APP_TABLES = [
  'api_keys',
  'audit_events',
  'auth_sessions',
  'contacts',
  'oauth_integrations',
  'tenants',
]

// One database per engine, taken through the steps in order (opening PGlite is the slow part).
describe.each(ENGINES)('migrations on %s', (_engine, open) => {
  let database: DatabaseHandle
  beforeAll(async () => {
    database = await open()
  })
  afterAll(() => database.close())

  it('leave a fresh database empty when one of them fails, and say which and why', async () => {
    const error = await failingRun(database)
    expect(error?.message).toMatch(new RegExp(`^migration ${FAILING} failed: .*no_such_column`))
    // Nothing of the earlier (successful) migrations survives either: one transaction.
    expect([...(await tablesOf(database)).keys()]).toEqual([])
    // Kysely keeps its bookkeeping tables outside the transaction, but records nothing.
    expect(await appliedMigrations(database)).toEqual([])
  })

  it('apply every migration once; a second run applies nothing', async () => {
    const first = await migrateToLatest(database.db)
    expect(first.results?.map((r) => [r.migrationName, r.status])).toEqual(
      Object.keys(migrations).map((name) => [name, 'Success']),
    )
    const second = await migrateToLatest(database.db)
    expect(second.error).toBeUndefined()
    expect(second.results).toEqual([])
    expect(await appliedMigrations(database)).toEqual(Object.keys(migrations).sort())
    expect([...(await tablesOf(database)).keys()]).toEqual(expect.arrayContaining(APP_TABLES))
  })

  it('leave an up-to-date database and its rows untouched when a new one fails', async () => {
    await database.db.insertInto('tenants').values({ slug: 'acme', name: 'Acme' }).execute()
    const before = await tablesOf(database)
    const error = await failingRun(database)
    expect(error?.message).toMatch(new RegExp(`^migration ${FAILING} failed: `))
    const after = await tablesOf(database)
    expect(after).toEqual(before)
    expect(after.has('half_done')).toBe(false)
    expect(after.get('tenants')).not.toContain('half_done_column')
    expect(await database.db.selectFrom('tenants').select(['slug', 'name']).execute()).toEqual([
      { slug: 'acme', name: 'Acme' },
    ])
    expect(await appliedMigrations(database)).toEqual(Object.keys(migrations).sort())
    expect((await migrateToLatest(database.db)).results).toEqual([])
  })
})

describe('npm run migrate', () => {
  afterAll(killLeftovers)

  it('migrates DATA_DIR, and exits 1 with the reason when it cannot', async () => {
    const data = tempDataDir()
    try {
      const [first, unreachable] = await Promise.all([
        runScript('src/migrate.ts', [], { DATA_DIR: data.dir }),
        runScript('src/migrate.ts', [], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' }),
      ])
      expect(first.code, first.stderr).toBe(0)
      // Log lines (JSON, e.g. the development-key warning) may precede the result line.
      expect(first.stdout).toMatch(/(^|\n)migrations applied\n$/)
      expect(unreachable.code).toBe(1)
      expect(unreachable.stdout).toBe('')
      expect(unreachable.stderr).toMatch(/^migration failed: .*ECONNREFUSED.*\n$/)
    } finally {
      data.remove()
    }
  })
})
