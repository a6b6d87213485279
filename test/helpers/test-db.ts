/**
 * A fresh database per test file: a new schema on TEST_DATABASE_URL (real PostgreSQL, as in CI),
 * or embedded PGlite in memory. Either way runs never see each other's rows.
 */
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { migrateToLatest, openDatabase, type DatabaseHandle } from '../../src/db/database.ts'

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined

export interface TestDatabase extends DatabaseHandle {
  /** Where the data lives, for a second handle or a child process. */
  readonly target: { kind: 'postgres'; url: string; schema: string } | { kind: 'pglite' }
}

export async function createTestDatabase(
  options: { migrate?: boolean } = {},
): Promise<TestDatabase> {
  let handle: DatabaseHandle
  let target: TestDatabase['target']
  let drop = async () => {}
  if (TEST_DATABASE_URL) {
    const schema = `t_${randomBytes(6).toString('hex')}`
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL })
    await admin.connect()
    await admin.query(`create schema ${schema}`)
    await admin.end()
    handle = openDatabase({ kind: 'postgres', url: TEST_DATABASE_URL, schema, poolSize: 5 })
    target = { kind: 'postgres', url: TEST_DATABASE_URL, schema }
    drop = async () => {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL })
      await client.connect()
      await client.query(`drop schema ${schema} cascade`)
      await client.end()
    }
  } else {
    handle = openDatabase({ kind: 'pglite', dataDir: 'memory://' })
    target = { kind: 'pglite' }
  }
  if (options.migrate !== false) await migrateToLatest(handle.db)
  return {
    ...handle,
    target,
    async close() {
      await handle.close()
      await drop()
    },
  }
}
