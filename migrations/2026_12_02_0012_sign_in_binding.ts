import { type Kysely, sql } from 'kysely'

// Frozen in time: never imports from src/.
//
// The sign-in can no longer be turned against the end user, and its identity says how much it
// proves:
// - each integration gets its own callback URLs (the three routes plus `/<callback_key>`); the
//   bare routes stay for integrations with shared_redirect_urls, which need an issuer;
// - a session stores the redirect_uri it was started with (null: started before this version,
//   on the bare routes), the `iss` its callback carried, its step-up parameters, and, when the
//   integration asks for it, a confirmation code (sealed until shown, then only its hash);
// - a new open status, AWAITING_CONFIRMATION, between the provider's answer and the code;
// - integrations keep what OpenID Connect needs (the issuer's keys, whether it sends `iss`), and
//   how far an unverified email and a verification are trusted;
// - a contact remembers who verified it, and until when.
// The cross-tenant "one authorization host and client id per tenant" rule is retired (the
// per-integration URLs are the mix-up defence now): its index goes, and authorization_host is
// no longer written (nullable here, for instances of the previous version during an upgrade).

const OPEN = `('PENDING', 'OPENED')`

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('oauth_integrations')
    .addColumn('callback_key', 'text')
    .addColumn('shared_redirect_urls', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('require_confirmation_code', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('trust_unverified_email', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('verification_ttl_seconds', 'integer')
    // The issuer's metadata (RFC 8414 / OpenID Connect Discovery) as read when it was saved.
    .addColumn('provider_metadata', 'jsonb')
    .addColumn('metadata_fetched_at', 'timestamptz')
    .execute()
  // Existing integrations get a key of their own: 16 hex characters, unique.
  await sql`update oauth_integrations
    set callback_key = substr(md5(id::text || random()::text || clock_timestamp()::text), 1, 16)`.execute(
    db,
  )
  await sql`alter table oauth_integrations alter column callback_key set not null`.execute(db)
  await sql`create unique index oauth_integrations_callback_key_idx on oauth_integrations (callback_key)`.execute(
    db,
  )
  await sql`drop index oauth_integrations_host_client_idx`.execute(db)
  await sql`alter table oauth_integrations alter column authorization_host drop not null`.execute(
    db,
  )

  await db.schema
    .alterTable('auth_sessions')
    .addColumn('redirect_uri', 'text')
    // Whether the authorization request was OpenID Connect (a nonce sent, an ID token due).
    .addColumn('openid', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('callback_issuer', 'text')
    .addColumn('prompt', 'text')
    .addColumn('max_age_seconds', 'integer')
    .addColumn('login_hint', 'text')
    .addColumn('acr_values', 'jsonb')
    .addColumn('confirmation_code_sealed', 'text')
    .addColumn('confirmation_code_hash', 'bytea')
    .addColumn('confirmation_shown_at', 'timestamptz')
    .addColumn('confirmation_attempts_left', 'integer')
    .addColumn('contact_update', 'text', (c) =>
      c.check(sql`contact_update in ('FILLED', 'UNCHANGED', 'CONFLICT')`),
    )
    .execute()
  // The status list gains AWAITING_CONFIRMATION. The constraint created with the table has the
  // name PostgreSQL gave it.
  await sql`alter table auth_sessions drop constraint auth_sessions_status_check`.execute(db)
  await sql`alter table auth_sessions add constraint auth_sessions_status_check check (status in
    ('PENDING', 'OPENED', 'AWAITING_CONFIRMATION', 'AUTHENTICATED', 'FAILED', 'EXPIRED', 'CANCELLED'))`.execute(
    db,
  )
  // Open sessions have no completion time; past the code exchange no verifier is kept; a session
  // waiting for its code has one (sealed or hashed) and its attempts; a finished one keeps none
  // of the sealed values and has its completion time.
  await sql`alter table auth_sessions drop constraint auth_sessions_finished_check`.execute(db)
  await sql
    .raw(
      `alter table auth_sessions add constraint auth_sessions_finished_check check (
    case
      when status in ${OPEN} then completed_at is null
        and confirmation_code_sealed is null and confirmation_code_hash is null
      when status = 'AWAITING_CONFIRMATION' then completed_at is null
        and code_verifier_sealed is null and confirmation_attempts_left is not null
        and (confirmation_code_sealed is not null or confirmation_code_hash is not null)
      else completed_at is not null and code_verifier_sealed is null
        and confirmation_code_sealed is null and confirmation_code_hash is null
    end)`,
    )
    .execute(db)
  await sql`drop index auth_sessions_open_expiry_idx`.execute(db)
  await sql`create index auth_sessions_open_expiry_idx on auth_sessions (expires_at)
    where status in ('PENDING', 'OPENED', 'AWAITING_CONFIRMATION')`.execute(db)

  await db.schema
    .alterTable('contacts')
    .addColumn('verified_subject', 'text')
    .addColumn('verified_issuer', 'text')
    .addColumn('verified_until', 'timestamptz')
    .execute()
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('contacts')
    .dropColumn('verified_subject')
    .dropColumn('verified_issuer')
    .dropColumn('verified_until')
    .execute()
  await sql`drop index auth_sessions_open_expiry_idx`.execute(db)
  await sql`create index auth_sessions_open_expiry_idx on auth_sessions (expires_at) where status in ${sql.raw(OPEN)}`.execute(
    db,
  )
  await sql`alter table auth_sessions drop constraint auth_sessions_finished_check`.execute(db)
  await sql`alter table auth_sessions drop constraint auth_sessions_status_check`.execute(db)
  await db.schema
    .alterTable('auth_sessions')
    .dropColumn('redirect_uri')
    .dropColumn('openid')
    .dropColumn('callback_issuer')
    .dropColumn('prompt')
    .dropColumn('max_age_seconds')
    .dropColumn('login_hint')
    .dropColumn('acr_values')
    .dropColumn('confirmation_code_sealed')
    .dropColumn('confirmation_code_hash')
    .dropColumn('confirmation_shown_at')
    .dropColumn('confirmation_attempts_left')
    .dropColumn('contact_update')
    .execute()
  await sql`alter table auth_sessions add constraint auth_sessions_status_check check (status in
    ('PENDING', 'OPENED', 'AUTHENTICATED', 'FAILED', 'EXPIRED', 'CANCELLED'))`.execute(db)
  await sql
    .raw(
      `alter table auth_sessions add constraint auth_sessions_finished_check check (
    case when status in ${OPEN} then completed_at is null
         else completed_at is not null and code_verifier_sealed is null end)`,
    )
    .execute(db)
  await sql`update oauth_integrations set authorization_host = lower(split_part(split_part(authorization_url, '://', 2), '/', 1)) where authorization_host is null`.execute(
    db,
  )
  await sql`alter table oauth_integrations alter column authorization_host set not null`.execute(db)
  await sql`create index oauth_integrations_host_client_idx on oauth_integrations (authorization_host, client_id) where deleted_at is null`.execute(
    db,
  )
  await sql`drop index oauth_integrations_callback_key_idx`.execute(db)
  await db.schema
    .alterTable('oauth_integrations')
    .dropColumn('callback_key')
    .dropColumn('shared_redirect_urls')
    .dropColumn('require_confirmation_code')
    .dropColumn('trust_unverified_email')
    .dropColumn('verification_ttl_seconds')
    .dropColumn('provider_metadata')
    .dropColumn('metadata_fetched_at')
    .execute()
}
