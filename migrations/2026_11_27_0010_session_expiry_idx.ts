import { type Kysely, sql } from 'kysely'

// The sweeper looks for open sessions past their expiry; only open ones are indexed, so the
// index stays small however many finished sessions the table holds.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index auth_sessions_open_expiry_idx on auth_sessions (expires_at) where status in ('PENDING', 'OPENED')`.execute(
    db,
  )
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index auth_sessions_open_expiry_idx`.execute(db)
}
