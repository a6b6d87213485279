import { type Kysely, sql } from 'kysely'

// Frozen in time: never imports from src/.
//
// Signed webhooks with a transactional outbox:
// - webhook_endpoints: a tenant's receivers, the events each wants, its secret (sealed) and, for a
//   day after a rotation, the previous one, and since when it has been failing;
// - webhook_events: one row per reported session change, with the session as it was then (every
//   column but the hashes and sealed values);
// - webhook_deliveries: one row per event and subscribed endpoint, the retry state;
// - webhook_attempts: one row per HTTP attempt (status code, short error, duration).
// A trigger on auth_sessions writes the event and its deliveries for every status change to a
// reported status, inside the statement that makes the change: whichever statement or
// transaction changes a session, its event commits or rolls back with it, and no writer can
// forget it. Events and deliveries go with their session (ON DELETE CASCADE), so deleting old
// sessions removes them.

const EVENT_TYPES = `('AUTH_SESSION_AUTHENTICATED', 'AUTH_SESSION_FAILED', 'AUTH_SESSION_EXPIRED',
  'AUTH_SESSION_CANCELLED', 'AUTH_SESSION_AWAITING_CONFIRMATION')`

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('webhook_endpoints')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('url', 'text', (c) => c.notNull())
    // A JSON array of event type names.
    .addColumn('events', 'jsonb', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('enabled', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('secret_sealed', 'text', (c) => c.notNull())
    .addColumn('previous_secret_sealed', 'text')
    .addColumn('previous_secret_until', 'timestamptz')
    // The first failed attempt since the last success; null while deliveries succeed.
    .addColumn('failing_since', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await sql`create index webhook_endpoints_tenant_idx on webhook_endpoints (tenant_id, created_at)`.execute(
    db,
  )

  await db.schema
    .createTable('webhook_events')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('session_id', 'uuid', (c) =>
      c.notNull().references('auth_sessions.id').onDelete('cascade'),
    )
    .addColumn('type', 'text', (c) => c.notNull().check(sql`type in ${sql.raw(EVENT_TYPES)}`))
    .addColumn('session', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .execute()
  await sql`create index webhook_events_session_idx on webhook_events (session_id)`.execute(db)

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('event_id', 'uuid', (c) =>
      c.notNull().references('webhook_events.id').onDelete('cascade'),
    )
    .addColumn('endpoint_id', 'uuid', (c) =>
      c.notNull().references('webhook_endpoints.id').onDelete('cascade'),
    )
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .defaultTo('PENDING')
        .check(sql`status in ('PENDING', 'DELIVERED', 'FAILED')`),
    )
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    // When the next attempt is due; while an attempt is in flight, when its claim lapses.
    .addColumn('next_attempt_at', 'timestamptz')
    // The claim of the attempt in flight: only its holder records the outcome.
    .addColumn('claim_id', 'uuid')
    .addColumn('last_status_code', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('last_attempt_at', 'timestamptz')
    .addColumn('delivered_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addCheckConstraint(
      'webhook_deliveries_pending_check',
      sql`(status = 'PENDING') = (next_attempt_at is not null)`,
    )
    .execute()
  await sql`create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at)
    where status = 'PENDING'`.execute(db)
  await sql`create index webhook_deliveries_endpoint_idx on webhook_deliveries (endpoint_id, created_at)`.execute(
    db,
  )
  await sql`create index webhook_deliveries_event_idx on webhook_deliveries (event_id)`.execute(db)

  await db.schema
    .createTable('webhook_attempts')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('delivery_id', 'uuid', (c) =>
      c.notNull().references('webhook_deliveries.id').onDelete('cascade'),
    )
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .addColumn('status_code', 'integer')
    .addColumn('error', 'text')
    .execute()
  await sql`create index webhook_attempts_delivery_idx on webhook_attempts (delivery_id)`.execute(
    db,
  )

  // The outbox writer. An event is recorded only when some enabled endpoint of the tenant wants
  // it (tenants without webhooks pay one index lookup); its time is the session's updated_at, the
  // time the service wrote the change.
  await sql
    .raw(
      `create function webhook_record_session_event() returns trigger language plpgsql as $$
declare
  event_type text := 'AUTH_SESSION_' || new.status;
  new_event uuid;
begin
  if not exists (select 1 from webhook_endpoints e
      where e.tenant_id = new.tenant_id and e.enabled and e.events ? event_type) then
    return null;
  end if;
  insert into webhook_events (tenant_id, session_id, type, session, created_at)
    values (new.tenant_id, new.id, event_type,
      to_jsonb(new) - array['link_hash', 'binding_hash', 'state_hash', 'code_verifier_sealed',
        'confirmation_code_sealed', 'confirmation_code_hash'],
      new.updated_at)
    returning id into new_event;
  insert into webhook_deliveries (tenant_id, event_id, endpoint_id, next_attempt_at, created_at)
    select new.tenant_id, new_event, e.id, new.updated_at, new.updated_at
    from webhook_endpoints e
    where e.tenant_id = new.tenant_id and e.enabled and e.events ? event_type;
  return null;
end
$$`,
    )
    .execute(db)
  await sql
    .raw(
      `create trigger auth_sessions_webhook_event after update of status on auth_sessions
  for each row
  when (new.status is distinct from old.status and new.status in
    ('AUTHENTICATED', 'FAILED', 'EXPIRED', 'CANCELLED', 'AWAITING_CONFIRMATION'))
  execute function webhook_record_session_event()`,
    )
    .execute(db)
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger auth_sessions_webhook_event on auth_sessions`.execute(db)
  await sql`drop function webhook_record_session_event()`.execute(db)
  await db.schema.dropTable('webhook_attempts').execute()
  await db.schema.dropTable('webhook_deliveries').execute()
  await db.schema.dropTable('webhook_events').execute()
  await db.schema.dropTable('webhook_endpoints').execute()
}
