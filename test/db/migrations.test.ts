/**
 * Migrations on both engines: running them again applies nothing, and a failing migration leaves
 * the database exactly as it was (all pending migrations run in one transaction) while the error
 * names the migration and the reason. PGlite always; PostgreSQL when TEST_DATABASE_URL is set.
 */
import { sql, type Kysely, type Migration } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
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

async function tablesOf(database: DatabaseHandle): Promise<string[]> {
  const schema = await sql<{ s: string }>`select current_schema() as s`.execute(database.db)
  const tables = await database.db.introspection.getTables()
  return tables
    .filter((t) => t.schema === schema.rows[0]!.s)
    .map((t) => t.name)
    .sort()
}

async function appliedMigrations(database: DatabaseHandle): Promise<string[]> {
  const rows = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(
    database.db,
  )
  return rows.rows.map((r) => r.name)
}

const APP_TABLES = [
  'api_keys',
  'audit_events',
  'auth_sessions',
  'contacts',
  'oauth_integrations',
  'tenants',
]

describe.each(ENGINES)('migrations on %s', (_engine, open) => {
  it('apply every migration once; a second run applies nothing', async () => {
    const database = await open()
    try {
      const first = await migrateToLatest(database.db)
      expect(first.results?.map((r) => [r.migrationName, r.status])).toEqual(
        Object.keys(migrations).map((name) => [name, 'Success']),
      )
      const second = await migrateToLatest(database.db)
      expect(second.error).toBeUndefined()
      expect(second.results).toEqual([])
      expect(await appliedMigrations(database)).toEqual(Object.keys(migrations).sort())
      expect(await tablesOf(database)).toEqual(expect.arrayContaining(APP_TABLES))
    } finally {
      await database.close()
    }
  })

  it('leave a fresh database empty when one of them fails, and say which and why', async () => {
    const database = await open()
    try {
      const error = await withFailingMigration(() =>
        migrateToLatest(database.db).then(
          () => null,
          (e: Error) => e,
        ),
      )
      expect(error?.message).toMatch(new RegExp(`^migration ${FAILING} failed: .*no_such_column`))
      // Nothing of the earlier (successful) migrations survives either: one transaction.
      expect(await tablesOf(database)).toEqual([])
      // Kysely keeps its bookkeeping tables outside the transaction, but records nothing.
      expect(await appliedMigrations(database)).toEqual([])
      // Once the bad migration is gone, everything applies.
      expect((await migrateToLatest(database.db)).results).toHaveLength(
        Object.keys(migrations).length,
      )
    } finally {
      await database.close()
    }
  })

  it('leave an up-to-date database and its rows untouched when a new one fails', async () => {
    const database = await open()
    try {
      await migrateToLatest(database.db)
      await database.db.insertInto('tenants').values({ slug: 'acme', name: 'Acme' }).execute()
      const before = await tablesOf(database)
      const error = await withFailingMigration(() =>
        migrateToLatest(database.db).then(
          () => null,
          (e: Error) => e,
        ),
      )
      expect(error?.message).toMatch(new RegExp(`^migration ${FAILING} failed: `))
      expect(await tablesOf(database)).toEqual(before)
      expect(before).not.toContain('half_done')
      const columns = (await database.db.introspection.getTables()).find(
        (t) => t.name === 'tenants' && before.includes(t.name),
      )?.columns
      expect(columns?.map((c) => c.name)).not.toContain('half_done_column')
      expect(await database.db.selectFrom('tenants').select(['slug', 'name']).execute()).toEqual([
        { slug: 'acme', name: 'Acme' },
      ])
      expect(await appliedMigrations(database)).toEqual(Object.keys(migrations).sort())
      expect((await migrateToLatest(database.db)).results).toEqual([])
    } finally {
      await database.close()
    }
  })
})

describe('npm run migrate', () => {
  afterAll(killLeftovers)

  it('migrates DATA_DIR (again: nothing to do), and exits 1 with the reason when it cannot', async () => {
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
      const second = await runScript('src/migrate.ts', [], { DATA_DIR: data.dir })
      expect(second.code, second.stderr).toBe(0)
      expect(second.stdout).toMatch(/(^|\n)migrations applied\n$/)
    } finally {
      data.remove()
    }
  })
})
