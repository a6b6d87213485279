import { type Kysely, sql } from 'kysely'

// Frozen in time: never imports from src/.
//
// Rate limits shared by the instances on one database. Each instance counts requests in memory
// and adds its counts here in one statement about once a second (and sooner when a bucket is
// near its limit); the sums tell every instance how much of a limit the others used.
// - rate_limit_counters: requests per bucket (e.g. `key:<api key id>`) and fixed window (its
//   start, in milliseconds since the epoch); rows of past windows are deleted.
// - rate_limit_instances: when each instance last added its counts, so each knows how many share
//   a limit.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('rate_limit_counters')
    .addColumn('bucket', 'text', (c) => c.notNull())
    .addColumn('window_start', 'bigint', (c) => c.notNull())
    .addColumn('hits', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('rate_limit_counters_pkey', ['bucket', 'window_start'])
    .execute()
  await sql`create index rate_limit_counters_window_idx on rate_limit_counters (window_start)`.execute(
    db,
  )
  await db.schema
    .createTable('rate_limit_instances')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('seen_at', 'timestamptz', (c) => c.notNull())
    .execute()
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('rate_limit_instances').execute()
  await db.schema.dropTable('rate_limit_counters').execute()
}
