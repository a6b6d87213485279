import { type Kysely, sql } from 'kysely'

// Frozen in time: never imports from src/.
//
// Several instances on one database:
// - Changes to rows that caches hold (api_keys, tenants, oauth_integrations) are announced by the
//   database itself, with pg_notify from triggers: the announcement is part of the transaction
//   that makes the change (sent at its commit, never for a rolled-back one) and covers every
//   writer (the service, the CLI working on the database directly, an operator's SQL). Such
//   changes are rare. Session changes are frequent and announced by the service right after its
//   commit instead: PostgreSQL serialises the commits of transactions that notify, which would cap
//   sign-ins far below what the database can otherwise write. The channel is `euo:<schema>`, so
//   services in other schemas of the same database hear nothing of each other; a trigger's payload
//   is JSON `{"t": <topic: api_key, tenant or integration>, "id": <row id>}`.
// - Retention deletes finished sessions by completion time, in batches: an index of finished
//   sessions only (open ones have no completed_at).
// - Sessions whose code exchange was claimed and that are still OPENED are few; an index of just
//   those finds the ones an instance abandoned by dying mid-exchange.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create function euo_notify() returns trigger language plpgsql as $$
    begin
      perform pg_notify('euo:' || tg_table_schema,
        json_build_object('t', tg_argv[0], 'id', (case when tg_op = 'DELETE' then old.id else new.id end))::text);
      return null;
    end
  $$`.execute(db)
  await sql`create trigger api_keys_notify after update or delete on api_keys
    for each row execute function euo_notify('api_key')`.execute(db)
  await sql`create trigger tenants_notify after update or delete on tenants
    for each row execute function euo_notify('tenant')`.execute(db)
  await sql`create trigger oauth_integrations_notify after update or delete on oauth_integrations
    for each row execute function euo_notify('integration')`.execute(db)

  await sql`create index auth_sessions_finished_idx on auth_sessions (completed_at)
    where completed_at is not null`.execute(db)
  await sql`create index auth_sessions_claimed_idx on auth_sessions (exchange_claimed_at)
    where status = 'OPENED' and exchange_claimed_at is not null`.execute(db)
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index auth_sessions_claimed_idx`.execute(db)
  await sql`drop index auth_sessions_finished_idx`.execute(db)
  await sql`drop trigger oauth_integrations_notify on oauth_integrations`.execute(db)
  await sql`drop trigger tenants_notify on tenants`.execute(db)
  await sql`drop trigger api_keys_notify on api_keys`.execute(db)
  await sql`drop function euo_notify()`.execute(db)
}
