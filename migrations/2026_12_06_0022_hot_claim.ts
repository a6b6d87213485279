import { type Kysely, sql } from 'kysely'

// A status change is never a HOT update (the status is in index predicates), but the callback's
// claim of the code exchange changes only exchange_claimed_at and updated_at, and it still wrote
// an entry into every index because auth_sessions_claimed_idx was on exchange_claimed_at. That
// index served only the sweep of exchanges claimed by an instance that died (every 5 s). The
// sweep now reads an index of the OPENED sessions instead, keyed by a column the claim leaves
// alone: the sessions whose link was opened and that have not ended, far fewer than the open
// ones (PENDING links nobody opened wait out their expiry in auth_sessions_open_expiry_idx).
// The claim then changes no indexed column and, where its page has room, is a HOT update: no
// index entries at all. A fillfactor of 80 keeps that room on the pages new sessions go to.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function up(db: Kysely<any>): Promise<void> {
  await sql`drop index auth_sessions_claimed_idx`.execute(db)
  await sql`create index auth_sessions_opened_idx on auth_sessions (expires_at)
    where status = 'OPENED'`.execute(db)
  await sql`alter table auth_sessions set (fillfactor = 80)`.execute(db)
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table auth_sessions reset (fillfactor)`.execute(db)
  await sql`drop index auth_sessions_opened_idx`.execute(db)
  await sql`create index auth_sessions_claimed_idx on auth_sessions (exchange_claimed_at)
    where status = 'OPENED' and exchange_claimed_at is not null`.execute(db)
}
