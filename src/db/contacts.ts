import { sql } from 'kysely'
import type { Db } from './database.ts'
import type { ContactRow } from './schema.ts'

export interface Contact {
  readonly contactId: string
  readonly email: string | null
  readonly userName: string | null
  readonly fullName: string | null
  readonly firstName: string | null
  readonly lastName: string | null
  readonly verifiedSessionId: string | null
  readonly verifiedIntegrationId: string | null
  readonly verifiedAt: Date | null
  readonly updatedAt: Date
}

export function rowToContact(row: ContactRow): Contact {
  return {
    contactId: row.contact_id,
    email: row.email,
    userName: row.user_name,
    fullName: row.full_name,
    firstName: row.first_name,
    lastName: row.last_name,
    verifiedSessionId: row.verified_session_id,
    verifiedIntegrationId: row.verified_integration_id,
    verifiedAt: row.verified_at,
    updatedAt: row.updated_at,
  }
}

export async function findContact(
  db: Db,
  tenantId: string,
  contactId: string,
): Promise<Contact | undefined> {
  const row = await db
    .selectFrom('contacts')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('contact_id', '=', contactId)
    .executeTakeFirst()
  return row && rowToContact(row)
}

export interface ContactFields {
  readonly email: string | null
  readonly userName: string | null
  readonly fullName: string | null
  readonly firstName: string | null
  readonly lastName: string | null
}

/**
 * Fills the contact from a verified identity in one statement (so concurrent sign-ins cannot
 * interleave a read and a write): a field gets the identity's value where the contact has none
 * yet, or always when `overwrite` is set; a null in the identity never erases a value.
 */
export async function fillContact(
  db: Db,
  c: {
    tenantId: string
    contactId: string
    fields: ContactFields
    overwrite: boolean
    sessionId: string
    integrationId: string
    now: Date
  },
): Promise<Contact> {
  const column = (name: 'email' | 'user_name' | 'full_name' | 'first_name' | 'last_name') =>
    c.overwrite
      ? sql<string | null>`coalesce(excluded.${sql.ref(name)}, contacts.${sql.ref(name)})`
      : sql<string | null>`coalesce(contacts.${sql.ref(name)}, excluded.${sql.ref(name)})`
  const f = c.fields
  const row = await db
    .insertInto('contacts')
    .values({
      tenant_id: c.tenantId,
      contact_id: c.contactId,
      email: f.email,
      user_name: f.userName,
      full_name: f.fullName,
      first_name: f.firstName,
      last_name: f.lastName,
      verified_session_id: c.sessionId,
      verified_integration_id: c.integrationId,
      verified_at: c.now,
      created_at: c.now,
      updated_at: c.now,
    })
    .onConflict((oc) =>
      oc.columns(['tenant_id', 'contact_id']).doUpdateSet({
        email: column('email'),
        user_name: column('user_name'),
        full_name: column('full_name'),
        first_name: column('first_name'),
        last_name: column('last_name'),
        verified_session_id: c.sessionId,
        verified_integration_id: c.integrationId,
        verified_at: c.now,
        updated_at: c.now,
      }),
    )
    .returningAll()
    .executeTakeFirstOrThrow()
  return rowToContact(row)
}
