/**
 * Background work that instances sharing a database must not do twice at the same time: `work`
 * runs in a transaction holding a transaction-scoped advisory lock named after the job (and the
 * schema, so services in other schemas of the same database do not exclude each other). The
 * lock goes with the transaction, whatever happens to the instance; when another instance holds
 * it, nothing runs and the result is undefined.
 */
import { sql } from 'kysely'
import type { Db } from './database.ts'

export async function exclusively<T>(
  db: Db,
  job: string,
  work: (trx: Db) => Promise<T>,
): Promise<{ value: T } | undefined> {
  return db.transaction().execute(async (trx) => {
    const locked = await sql<{ locked: boolean }>`
      select pg_try_advisory_xact_lock(hashtext(current_schema() || ':' || ${job})) as locked`.execute(
      trx,
    )
    if (!locked.rows[0]?.locked) return undefined
    return { value: await work(trx) }
  })
}
