import { sql } from 'kysely'
import type { Db } from './database.ts'
import type { ContactUpdate } from '../core/auth-session.ts'
import { planContactUpdate, type ContactPolicy } from '../core/contact.ts'
import type { Identity } from '../core/identity.ts'
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
  readonly verifiedSubject: string | null
  readonly verifiedIssuer: string | null
  readonly verifiedUntil: Date | null
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
    verifiedSubject: row.verified_subject,
    verifiedIssuer: row.verified_issuer,
    verifiedUntil: row.verified_until,
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

/**
 * Applies a sign-in's identity to its contact, inside the caller's transaction (the session's
 * own): the row is created if missing and locked, so concurrent sign-ins into one contact take
 * turns; core/contact.ts decides; a CONFLICT writes nothing. Returns what happened.
 */
export async function applyIdentityToContact(
  db: Db,
  c: {
    tenantId: string
    contactId: string
    identity: Identity
    policy: ContactPolicy
    sessionId: string
    now: Date
  },
): Promise<ContactUpdate> {
  // Creates the row or, when it exists, locks it (DO UPDATE takes the row lock) and returns it.
  const row = await db
    .insertInto('contacts')
    .values({
      tenant_id: c.tenantId,
      contact_id: c.contactId,
      created_at: c.now,
      updated_at: c.now,
    })
    .onConflict((oc) =>
      oc.columns(['tenant_id', 'contact_id']).doUpdateSet({ updated_at: sql`contacts.updated_at` }),
    )
    .returningAll()
    .executeTakeFirstOrThrow()
  // Contacts are made by sign-ins only: one never verified is the row just created.
  const existing = row.verified_at === null ? null : row
  const plan = planContactUpdate(
    existing && {
      email: existing.email,
      userName: existing.user_name,
      fullName: existing.full_name,
      firstName: existing.first_name,
      lastName: existing.last_name,
      verifiedSubject: existing.verified_subject,
      verifiedIssuer: existing.verified_issuer,
      verifiedIntegrationId: existing.verified_integration_id,
      verifiedAt: existing.verified_at,
    },
    c.identity,
    c.policy,
    c.now,
  )
  if (plan.outcome === 'CONFLICT') return 'CONFLICT'
  const v = plan.values
  await db
    .updateTable('contacts')
    .set({
      email: v.email,
      user_name: v.userName,
      full_name: v.fullName,
      first_name: v.firstName,
      last_name: v.lastName,
      verified_session_id: c.sessionId,
      verified_integration_id: c.policy.integrationId,
      verified_subject: plan.verifiedSubject,
      verified_issuer: plan.verifiedIssuer,
      verified_at: c.now,
      verified_until: plan.verifiedUntil,
      updated_at: c.now,
    })
    .where('tenant_id', '=', c.tenantId)
    .where('contact_id', '=', c.contactId)
    .execute()
  return plan.outcome
}
