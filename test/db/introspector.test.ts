/**
 * The introspector the Migrator relies on looks at the current schema only. Kysely's own reads
 * every schema and fails when another client drops one mid-query (CI saw `migration (unknown)
 * failed: schema "t_…" does not exist` while another test file dropped its schema). PGlite always;
 * PostgreSQL when TEST_DATABASE_URL is set, where the race with a concurrent DROP SCHEMA is real.
 */
import { PostgresIntrospector, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrateToLatest, openDatabase, type DatabaseHandle } from '../../src/db/database.ts'
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/test-db.ts'

const ENGINES: Array<[string, () => Promise<DatabaseHandle>]> = [
  [
    'PGlite',
    async () => {
      const handle = openDatabase({ kind: 'pglite', dataDir: 'memory://' })
      await migrateToLatest(handle.db)
      return handle
    },
  ],
]
if (TEST_DATABASE_URL) ENGINES.push(['PostgreSQL', () => createTestDatabase()])

describe.each(ENGINES)('introspection on %s', (_engine, open) => {
  let database: DatabaseHandle
  let schema: string
  beforeAll(async () => {
    database = await open()
    schema = (await sql<{ s: string }>`select current_schema() as s`.execute(database.db)).rows[0]!
      .s
    // A table in another schema, with a serial column, that must not show up.
    await sql`create schema if not exists introspector_other`.execute(database.db)
    await sql`create table if not exists introspector_other.elsewhere (id serial primary key, note text)`.execute(
      database.db,
    )
  })
  afterAll(async () => {
    await sql`drop schema if exists introspector_other cascade`.execute(database.db)
    await database.close()
  })

  it("reports exactly what Kysely's own introspector reports for the current schema, and nothing else", async () => {
    const ours = await database.db.introspection.getTables({ withInternalKyselyTables: true })
    const kysely = await new PostgresIntrospector(database.db).getTables({
      withInternalKyselyTables: true,
    })
    expect(ours.length).toBeGreaterThan(3)
    expect(ours.every((t) => t.schema === schema)).toBe(true)
    expect(kysely.some((t) => t.schema === 'introspector_other')).toBe(true)
    const normalise = (tables: typeof ours) =>
      JSON.parse(
        JSON.stringify(
          tables.filter((t) => t.schema === schema).sort((a, b) => a.name.localeCompare(b.name)),
        ),
      )
    expect(normalise(ours)).toEqual(normalise(kysely))
  })

  it('leaves out the migration bookkeeping tables unless asked for them, as Kysely does', async () => {
    const names = (await database.db.introspection.getTables()).map((t) => t.name)
    const all = (await database.db.introspection.getTables({ withInternalKyselyTables: true })).map(
      (t) => t.name,
    )
    expect(names).not.toContain('kysely_migration')
    expect(all).toContain('kysely_migration')
    expect(all).toContain('kysely_migration_lock')
    expect(all.filter((n) => !n.startsWith('kysely_'))).toEqual(names)
  })
})

describe.skipIf(!TEST_DATABASE_URL)(
  'migrations on PostgreSQL while other schemas are dropped',
  () => {
    let dropper: pg.Client
    beforeAll(async () => {
      dropper = new pg.Client({ connectionString: TEST_DATABASE_URL })
      await dropper.connect()
    })
    afterAll(() => dropper.end())

    it('never fail because another client dropped its own schema meanwhile', async () => {
      // Another client creates and drops schemas with tables in a loop, as other test files do.
      let running = true
      let churned = 0
      const churn = (async () => {
        while (running) {
          const name = `introspector_churn_${churned % 4}`
          await dropper.query(`create schema ${name}`)
          await dropper.query(`create table ${name}.a (id serial, x int, y text, z int)`)
          await dropper.query(`create table ${name}.b (id serial, x int, y text, z int)`)
          await dropper.query(`drop schema ${name} cascade`)
          churned++
        }
      })()
      const failures: string[] = []
      let migrated = 0
      const deadline = Date.now() + 3_000
      try {
        while (Date.now() < deadline || migrated < 5) {
          let database: TestDatabase | undefined
          try {
            database = await createTestDatabase()
            // Repeated introspection widens the window a concurrent DROP has to hit.
            for (let i = 0; i < 5; i++)
              await database.db.introspection.getTables({ withInternalKyselyTables: true })
            migrated++
          } catch (error) {
            failures.push(error instanceof Error ? error.message : String(error))
          } finally {
            await database?.close()
          }
        }
      } finally {
        running = false
        await churn
      }
      expect(churned).toBeGreaterThan(10)
      expect(failures).toEqual([])
    }, 30_000)
  },
)
