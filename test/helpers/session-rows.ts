/**
 * Rows for tests of the session statements (test/db/*): a tenant, and the columns every session
 * row needs, which each test completes with the status and columns its case is about.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import type { Insertable, Kysely } from 'kysely'
import type { Database } from '../../src/db/schema.ts'

export type SessionInsert = Insertable<Database['auth_sessions']>

/** A tenant of its own; its id. */
export async function seedTenantRow(db: Kysely<Database>, slug: string): Promise<string> {
  const tenant = await db
    .insertInto('tenants')
    .values({ slug, name: slug })
    .returning('id')
    .executeTakeFirstOrThrow()
  return tenant.id
}

/** A PENDING session of `tenantId` for a conversation, contact and integration of its own. */
export function sessionValues(
  tenantId: string,
  overrides: Partial<SessionInsert> & Pick<SessionInsert, 'expires_at'>,
): SessionInsert {
  return {
    id: randomUUID(),
    tenant_id: tenantId,
    integration_id: randomUUID(),
    conversation_id: `conversation-${randomUUID()}`,
    contact_id: `contact-${randomUUID()}`,
    redirect_route: 'IDP',
    redirect_uri: 'https://acme.example.com/idp/eu/oauth/callback/0123456789abcdef',
    status: 'PENDING',
    link_hash: randomBytes(32),
    ...overrides,
  }
}
