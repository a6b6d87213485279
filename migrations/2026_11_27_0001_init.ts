import { type Kysely, sql } from 'kysely'

// Frozen in time: migrations never import from src/, so they keep working as the app changes.
// The same statements run on PostgreSQL (pg) and on embedded PGlite.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('tenants')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('slug', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()

  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    // The public half of the key, used to find the row; the secret half is only stored hashed.
    .addColumn('key_id', 'text', (c) => c.notNull().unique())
    .addColumn('secret_hash', 'bytea', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('ADMIN', 'AGENT')`))
    .addColumn('label', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .execute()

  await db.schema
    .createTable('oauth_integrations')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('client_secret_sealed', 'text')
    .addColumn('scope', 'text')
    .addColumn('authorization_url', 'text', (c) => c.notNull())
    // Lower-cased host of authorization_url: the mix-up rule (RFC 9700 §4.4) compares it.
    .addColumn('authorization_host', 'text', (c) => c.notNull())
    .addColumn('token_url', 'text', (c) => c.notNull())
    .addColumn('whoami_url', 'text')
    .addColumn('whoami_mapping', 'text')
    .addColumn('token_endpoint_auth_method', 'text', (c) =>
      c
        .notNull()
        .defaultTo('CLIENT_SECRET_POST')
        .check(sql`token_endpoint_auth_method in ('CLIENT_SECRET_POST', 'CLIENT_SECRET_BASIC')`),
    )
    .addColumn('pkce', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('issuer', 'text')
    .addColumn('split_full_name', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('overwrite_contact', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('session_ttl_seconds', 'integer', (c) => c.notNull().defaultTo(600))
    .addColumn('message_text', 'text')
    .addColumn('message_button_label', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  // Names are unique within a tenant, ignoring case.
  await sql`create unique index oauth_integrations_tenant_name_idx on oauth_integrations (tenant_id, lower(name))`.execute(
    db,
  )
  await db.schema
    .createIndex('oauth_integrations_host_client_idx')
    .on('oauth_integrations')
    .columns(['authorization_host', 'client_id'])
    .execute()

  await db.schema
    .createTable('auth_sessions')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    // Kept when the integration is deleted so completed sessions stay readable.
    .addColumn('integration_id', 'uuid', (c) => c.notNull())
    .addColumn('conversation_id', 'text', (c) => c.notNull())
    .addColumn('contact_id', 'text', (c) => c.notNull())
    .addColumn('redirect_route', 'text', (c) =>
      c.notNull().check(sql`redirect_route in ('IDP', 'ABC', 'ABC_AUTH2')`),
    )
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .check(
          sql`status in ('PENDING', 'OPENED', 'AUTHENTICATED', 'FAILED', 'EXPIRED', 'CANCELLED')`,
        ),
    )
    .addColumn('link_hash', 'bytea', (c) => c.notNull().unique())
    .addColumn('binding_hash', 'bytea')
    .addColumn('state_hash', 'bytea', (c) => c.unique())
    .addColumn('code_verifier_sealed', 'text')
    .addColumn('identity', 'jsonb')
    .addColumn('failure', 'jsonb')
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('opened_at', 'timestamptz')
    // Set by compare-and-set before the token request: exactly one callback may redeem the code.
    .addColumn('exchange_claimed_at', 'timestamptz')
    .addColumn('completed_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema
    .createIndex('auth_sessions_tenant_conversation_idx')
    .on('auth_sessions')
    .columns(['tenant_id', 'conversation_id', 'created_at'])
    .execute()
  await db.schema
    .createIndex('auth_sessions_integration_status_idx')
    .on('auth_sessions')
    .columns(['integration_id', 'status'])
    .execute()

  await db.schema
    .createTable('contacts')
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('contact_id', 'text', (c) => c.notNull())
    .addColumn('email', 'text')
    .addColumn('user_name', 'text')
    .addColumn('full_name', 'text')
    .addColumn('first_name', 'text')
    .addColumn('last_name', 'text')
    .addColumn('verified_session_id', 'uuid')
    .addColumn('verified_integration_id', 'uuid')
    .addColumn('verified_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('contacts_pk', ['tenant_id', 'contact_id'])
    .execute()

  await db.schema
    .createTable('audit_events')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('tenant_id', 'uuid', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
    .addColumn('actor_key_id', 'uuid')
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target_type', 'text', (c) => c.notNull())
    .addColumn('target_id', 'text', (c) => c.notNull())
    .addColumn('details', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema
    .createIndex('audit_events_tenant_created_idx')
    .on('audit_events')
    .columns(['tenant_id', 'created_at'])
    .execute()
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'audit_events',
    'contacts',
    'auth_sessions',
    'oauth_integrations',
    'api_keys',
    'tenants',
  ]) {
    await db.schema.dropTable(table).execute()
  }
}
