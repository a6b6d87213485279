import { type Kysely, sql } from 'kysely'

// Frozen in time: never imports from src/.
//
// Integrations are deleted softly: sign-in sessions keep their integration_id (no FK, on purpose)
// and a completed session must still show which integration it used. Every rule about live
// integrations (unique names per tenant, one tenant per authorization host and client id) now
// ignores deleted rows, so both indexes become partial.

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('oauth_integrations').addColumn('deleted_at', 'timestamptz').execute()
  await db.schema.dropIndex('oauth_integrations_tenant_name_idx').execute()
  await sql`create unique index oauth_integrations_tenant_name_idx on oauth_integrations (tenant_id, lower(name)) where deleted_at is null`.execute(
    db,
  )
  await db.schema.dropIndex('oauth_integrations_host_client_idx').execute()
  await sql`create index oauth_integrations_host_client_idx on oauth_integrations (authorization_host, client_id) where deleted_at is null`.execute(
    db,
  )
}

// Fails when a deleted integration shares its name with a live one of the same tenant: rename or
// purge such rows first.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's documented migration signature
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('oauth_integrations_host_client_idx').execute()
  await db.schema
    .createIndex('oauth_integrations_host_client_idx')
    .on('oauth_integrations')
    .columns(['authorization_host', 'client_id'])
    .execute()
  await db.schema.dropIndex('oauth_integrations_tenant_name_idx').execute()
  await sql`create unique index oauth_integrations_tenant_name_idx on oauth_integrations (tenant_id, lower(name))`.execute(
    db,
  )
  await db.schema.alterTable('oauth_integrations').dropColumn('deleted_at').execute()
}
