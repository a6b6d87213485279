import { sql } from 'kysely'
import type { Db } from './database.ts'
import type { ContactUpdate } from '../core/auth-session.ts'
import {
  planContactUpdate,
  type ContactPlan,
  type ContactPolicy,
  type ContactState,
} from '../core/contact.ts'
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
 * A contact as the callback's first statement saw it (auth-sessions.ts claimByState), before the
 * provider was called: `version` is the row's version (PostgreSQL's `xmin`, which every write of
 * the row changes, whoever makes it), null when there was no row.
 */
export interface ContactSnapshot {
  readonly version: string | null
  /** What core/contact.ts looks at; null when no sign-in verified the contact yet. */
  readonly state: ContactState | null
}

/** The contact columns claimByState selects beside the session (the contact as `c`). */
export const CONTACT_SNAPSHOT_COLUMNS = [
  sql<string | null>`c.xmin::text`.as('contact_version'),
  sql<string | null>`c.email`.as('contact_email'),
  sql<string | null>`c.user_name`.as('contact_user_name'),
  sql<string | null>`c.full_name`.as('contact_full_name'),
  sql<string | null>`c.first_name`.as('contact_first_name'),
  sql<string | null>`c.last_name`.as('contact_last_name'),
  sql<string | null>`c.verified_subject`.as('contact_verified_subject'),
  sql<string | null>`c.verified_issuer`.as('contact_verified_issuer'),
  sql<string | null>`c.verified_integration_id`.as('contact_verified_integration_id'),
  sql<Date | null>`c.verified_at`.as('contact_verified_at'),
] as const

export function contactSnapshotOf(row: {
  readonly contact_version: string | null
  readonly contact_email: string | null
  readonly contact_user_name: string | null
  readonly contact_full_name: string | null
  readonly contact_first_name: string | null
  readonly contact_last_name: string | null
  readonly contact_verified_subject: string | null
  readonly contact_verified_issuer: string | null
  readonly contact_verified_integration_id: string | null
  readonly contact_verified_at: Date | null
}): ContactSnapshot {
  if (row.contact_version === null) return { version: null, state: null }
  return {
    version: row.contact_version,
    // Contacts are made by sign-ins only: one never verified is a row a sign-in just created.
    state:
      row.contact_verified_at === null
        ? null
        : {
            email: row.contact_email,
            userName: row.contact_user_name,
            fullName: row.contact_full_name,
            firstName: row.contact_first_name,
            lastName: row.contact_last_name,
            verifiedSubject: row.contact_verified_subject,
            verifiedIssuer: row.contact_verified_issuer,
            verifiedIntegrationId: row.contact_verified_integration_id,
            verifiedAt: row.contact_verified_at,
          },
  }
}

/** A sign-in's write to its contact: what the plan says, and who verified it when. */
export interface ContactWrite {
  readonly tenantId: string
  readonly contactId: string
  readonly plan: Exclude<ContactPlan, { outcome: 'CONFLICT' }>
  readonly integrationId: string
  readonly sessionId: string
  readonly now: Date
}

export function contactColumns(w: ContactWrite) {
  const v = w.plan.values
  return {
    email: v.email,
    user_name: v.userName,
    full_name: v.fullName,
    first_name: v.firstName,
    last_name: v.lastName,
    verified_session_id: w.sessionId,
    verified_integration_id: w.integrationId,
    verified_subject: w.plan.verifiedSubject,
    verified_issuer: w.plan.verifiedIssuer,
    verified_at: w.now,
    verified_until: w.plan.verifiedUntil,
    updated_at: w.now,
  }
}

/**
 * Applies a sign-in's identity to its contact, inside the caller's transaction (the session's
 * own): the row is created if missing and locked, so concurrent sign-ins into one contact take
 * turns; core/contact.ts decides; a CONFLICT writes nothing. Returns what happened. The path of
 * a callback whose one-statement end (authenticateWithContact) could not be taken, and of a
 * confirmed code.
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
  await db
    .updateTable('contacts')
    .set(
      contactColumns({
        tenantId: c.tenantId,
        contactId: c.contactId,
        plan,
        integrationId: c.policy.integrationId,
        sessionId: c.sessionId,
        now: c.now,
      }),
    )
    .where('tenant_id', '=', c.tenantId)
    .where('contact_id', '=', c.contactId)
    .execute()
  return plan.outcome
}
