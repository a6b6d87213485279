import { type Kysely, sql } from 'kysely'

// A status change is never a HOT update (the status is in index predicates), but the callback's
// claim of the code exchange changes only exchange_claimed_at and updated_at. Two indexes made
// it write an entry into every index all the same:
// - auth_sessions_claimed_idx (exchange_claimed_at) served only the sweep of exchanges claimed by
//   an instance that died, every 5 s; that sweep now reads the open sessions through
//   auth_sessions_open_expiry_idx, whose partial predicate `status = 'OPENED'` implies;
// - auth_sessions_integration_open_idx (integration_id) served only the cancellation of an
//   integration's open sessions when it is deleted or its callback changes; that statement has
//   `expires_at > now` and reads the same index of open sessions.
// Open sessions are the ones in flight, a small part of the table. Without the two, the claim
// touches no indexed column and, where its page has room, is a HOT update: no index entries at
// all. A fillfactor of 80 keeps that room on the pages new sessions are written to.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function up(db: Kysely<any>): Promise<void> {
  await sql`drop index auth_sessions_claimed_idx`.execute(db)
  await sql`drop index auth_sessions_integration_open_idx`.execute(db)
  await sql`alter table auth_sessions set (fillfactor = 80)`.execute(db)
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table auth_sessions reset (fillfactor)`.execute(db)
  await sql`create index auth_sessions_integration_open_idx on auth_sessions (integration_id) where status in ('PENDING', 'OPENED', 'AWAITING_CONFIRMATION')`.execute(
    db,
  )
  await sql`create index auth_sessions_claimed_idx on auth_sessions (exchange_claimed_at)
    where status = 'OPENED' and exchange_claimed_at is not null`.execute(db)
}
