/**
 * What a sign-in does to its contact record. Pure: the database layer reads the contact (locked),
 * asks `planContactUpdate`, and writes what it says in the same transaction as the session.
 *
 * Rules:
 * - The person a sign-in proves is (issuer, or the integration where there is no issuer;
 *   subject). A contact remembers the person who verified it.
 * - A sign-in as another person than the contact's verified one leaves the contact exactly as it
 *   is: CONFLICT (the session still ends AUTHENTICATED with its identity; bots and rules decide).
 *   A sign-in without a subject cannot show it is the same person, so it is a CONFLICT too on a
 *   contact whose verifier had one.
 * - A contact verified before subjects were recorded, or by a sign-in without a subject, takes
 *   the first subject that arrives.
 * - The same person: fields are filled where the contact has none, or all of them when the
 *   integration says `overwriteContact`; an empty value never erases one. FILLED when something
 *   was written, UNCHANGED when the contact already held all of it; the verification time and
 *   `verifiedUntil` are refreshed either way.
 * - An email the provider marks unverified (`emailVerified: false`) never fills the contact
 *   unless the integration sets `trustUnverifiedEmail`; an email it says nothing about fills it.
 */
import type { ContactUpdate } from './auth-session.ts'
import type { Identity } from './identity.ts'

export const CONTACT_FIELDS = ['email', 'userName', 'fullName', 'firstName', 'lastName'] as const
export type ContactField = (typeof CONTACT_FIELDS)[number]

export type ContactValues = { readonly [F in ContactField]: string | null }

/** The part of a stored contact the rules look at. */
export interface ContactState extends ContactValues {
  readonly verifiedSubject: string | null
  readonly verifiedIssuer: string | null
  readonly verifiedIntegrationId: string | null
  /** Whether any sign-in verified it before (a contact can exist without, created by this one). */
  readonly verifiedAt: Date | null
}

export interface ContactPolicy {
  readonly integrationId: string
  readonly overwriteContact: boolean
  readonly trustUnverifiedEmail: boolean
  readonly verificationTtlSeconds: number | null
}

export type ContactPlan =
  | { readonly outcome: 'CONFLICT' }
  | {
      readonly outcome: Exclude<ContactUpdate, 'CONFLICT'>
      /** Every contact field as it is to be stored. */
      readonly values: ContactValues
      readonly verifiedSubject: string | null
      readonly verifiedIssuer: string | null
      readonly verifiedUntil: Date | null
    }

/** The person (issuer or integration, subject) a stored verification or an identity names. */
function sameVerifier(
  contact: ContactState,
  identity: Pick<Identity, 'subject' | 'issuer'>,
  integrationId: string,
): boolean {
  if (identity.subject !== contact.verifiedSubject) return false
  // Without an issuer, the subject is the integration's own: it must be the same integration.
  if (contact.verifiedIssuer !== null || identity.issuer !== null) {
    return identity.issuer === contact.verifiedIssuer
  }
  return contact.verifiedIntegrationId === integrationId
}

export function planContactUpdate(
  contact: ContactState | null,
  identity: Identity,
  policy: ContactPolicy,
  now: Date,
): ContactPlan {
  if (contact !== null && contact.verifiedSubject !== null) {
    if (!sameVerifier(contact, identity, policy.integrationId)) return { outcome: 'CONFLICT' }
  }
  const emailUsable = identity.emailVerified !== false || policy.trustUnverifiedEmail
  const given: ContactValues = {
    email: emailUsable ? identity.email : null,
    userName: identity.userName,
    fullName: identity.fullName,
    firstName: identity.firstName,
    lastName: identity.lastName,
  }
  // Only the five fields: `contact` also carries who verified it, which is not a value to store.
  const current: ContactValues = {
    email: contact?.email ?? null,
    userName: contact?.userName ?? null,
    fullName: contact?.fullName ?? null,
    firstName: contact?.firstName ?? null,
    lastName: contact?.lastName ?? null,
  }
  const values: { -readonly [F in ContactField]: string | null } = { ...current }
  let wrote = false
  for (const field of CONTACT_FIELDS) {
    const value = given[field]
    if (value === null) continue
    if (current[field] === null || (policy.overwriteContact && current[field] !== value)) {
      values[field] = value
      wrote = true
    }
  }
  // The first subject to arrive is recorded: that is a change too.
  const recordsSubject = identity.subject !== null && contact?.verifiedSubject == null
  const verifiedUntil =
    policy.verificationTtlSeconds === null
      ? null
      : new Date(now.getTime() + policy.verificationTtlSeconds * 1000)
  return {
    outcome: wrote || recordsSubject || contact === null ? 'FILLED' : 'UNCHANGED',
    values,
    verifiedSubject: identity.subject ?? contact?.verifiedSubject ?? null,
    verifiedIssuer: identity.subject !== null ? identity.issuer : (contact?.verifiedIssuer ?? null),
    verifiedUntil,
  }
}

/** Whether a contact counts as verified at `now` (verified, and not past `verifiedUntil`). */
export function isVerified(
  contact: { readonly verifiedAt: Date | null; readonly verifiedUntil: Date | null },
  now: Date,
): boolean {
  return (
    contact.verifiedAt !== null && (contact.verifiedUntil === null || now < contact.verifiedUntil)
  )
}
