import { type Kysely, sql } from 'kysely'

// Frozen in time: never imports from src/.
//
// A finished session holds no sealed PKCE verifier and has a completion time; an open one has no
// completion time. Until now every UPDATE that ends a session said so for itself, and one of them
// forgot the verifier for a while: rows cancelled by a newer link in that time kept it. Those are
// cleared first, then the database refuses any row that breaks the rule.

const OPEN = sql`status in ('PENDING', 'OPENED')`

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function up(db: Kysely<any>): Promise<void> {
  await sql`update auth_sessions set code_verifier_sealed = null
    where not (${OPEN}) and code_verifier_sealed is not null`.execute(db)
  // No row is known to lack it, but a constraint must not fail the upgrade of one that does.
  await sql`update auth_sessions set completed_at = updated_at
    where not (${OPEN}) and completed_at is null`.execute(db)
  await sql`update auth_sessions set completed_at = null where ${OPEN} and completed_at is not null`.execute(
    db,
  )
  await sql`alter table auth_sessions add constraint auth_sessions_finished_check check (
    case when ${OPEN} then completed_at is null
         else completed_at is not null and code_verifier_sealed is null end)`.execute(db)
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function down(db: Kysely<any>): Promise<void> {
  await sql`alter table auth_sessions drop constraint auth_sessions_finished_check`.execute(db)
}
