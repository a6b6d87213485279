import { describe, expect, it } from 'vitest'
import {
  isVerified,
  planContactUpdate,
  type ContactPlan,
  type ContactPolicy,
  type ContactState,
} from '../../src/core/contact.ts'
import type { Identity } from '../../src/core/identity.ts'

const ISSUER = 'https://idp.example.com'
const INTEGRATION = 'integration-1'
const NOW = new Date('2030-06-01T12:00:00.000Z')
const EARLIER = new Date('2030-01-01T00:00:00.000Z')

function identityOf(overrides: Partial<Identity> = {}): Identity {
  return {
    subject: 'sub-1',
    issuer: ISSUER,
    email: 'ada@example.com',
    emailVerified: true,
    userName: 'ada',
    fullName: 'Ada Lovelace',
    firstName: 'Ada',
    lastName: 'Lovelace',
    authTime: null,
    acr: null,
    amr: null,
    attributes: {},
    ...overrides,
  }
}

/** A contact the default identity verified before, with no fields stored. */
function contactOf(overrides: Partial<ContactState> = {}): ContactState {
  return {
    email: null,
    userName: null,
    fullName: null,
    firstName: null,
    lastName: null,
    verifiedSubject: 'sub-1',
    verifiedIssuer: ISSUER,
    verifiedIntegrationId: INTEGRATION,
    verifiedAt: EARLIER,
    ...overrides,
  }
}

function policyOf(overrides: Partial<ContactPolicy> = {}): ContactPolicy {
  return {
    integrationId: INTEGRATION,
    overwriteContact: false,
    trustUnverifiedEmail: false,
    verificationTtlSeconds: null,
    ...overrides,
  }
}

/** The plan, which the test expects to write the contact (not a CONFLICT). */
function written(plan: ContactPlan): Exclude<ContactPlan, { outcome: 'CONFLICT' }> {
  if (plan.outcome === 'CONFLICT') throw new Error('expected a plan that writes, got CONFLICT')
  return plan
}

const IDENTITY_VALUES = {
  email: 'ada@example.com',
  userName: 'ada',
  fullName: 'Ada Lovelace',
  firstName: 'Ada',
  lastName: 'Lovelace',
}

const STORED_VALUES = {
  email: 'countess@example.org',
  userName: 'countess',
  fullName: 'Augusta Ada King',
  firstName: 'Augusta',
  lastName: 'King',
}

describe('planContactUpdate', () => {
  describe('a new contact', () => {
    it("fills it with the identity's values and records who verified it", () => {
      expect(written(planContactUpdate(null, identityOf(), policyOf(), NOW))).toEqual({
        outcome: 'FILLED',
        values: IDENTITY_VALUES,
        verifiedSubject: 'sub-1',
        verifiedIssuer: ISSUER,
        verifiedUntil: null,
      })
    })

    it('is FILLED even when the identity gives no field and no subject', () => {
      const empty = identityOf({
        subject: null,
        email: null,
        emailVerified: null,
        userName: null,
        fullName: null,
        firstName: null,
        lastName: null,
      })
      expect(written(planContactUpdate(null, empty, policyOf(), NOW))).toEqual({
        outcome: 'FILLED',
        values: { email: null, userName: null, fullName: null, firstName: null, lastName: null },
        verifiedSubject: null,
        verifiedIssuer: null,
        verifiedUntil: null,
      })
    })

    it('records a subject without an issuer (the integration vouches for it)', () => {
      const plan = written(planContactUpdate(null, identityOf({ issuer: null }), policyOf(), NOW))
      expect(plan).toMatchObject({ verifiedSubject: 'sub-1', verifiedIssuer: null })
    })
  })

  describe('the same person', () => {
    it('fills only the fields the contact has none of', () => {
      const contact = contactOf({ email: 'old@example.com', fullName: 'Old Name' })
      expect(written(planContactUpdate(contact, identityOf(), policyOf(), NOW))).toEqual({
        outcome: 'FILLED',
        values: {
          email: 'old@example.com',
          userName: 'ada',
          fullName: 'Old Name',
          firstName: 'Ada',
          lastName: 'Lovelace',
        },
        verifiedSubject: 'sub-1',
        verifiedIssuer: ISSUER,
        verifiedUntil: null,
      })
    })

    it('is FILLED when a single empty field gets a value', () => {
      const contact = contactOf({ ...IDENTITY_VALUES, lastName: null })
      const plan = written(planContactUpdate(contact, identityOf(), policyOf(), NOW))
      expect(plan.outcome).toBe('FILLED')
      expect(plan.values).toEqual(IDENTITY_VALUES)
    })

    it('is UNCHANGED when the contact already holds every value, and still refreshes verifiedUntil', () => {
      const contact = contactOf(IDENTITY_VALUES)
      const policy = policyOf({ verificationTtlSeconds: 3600 })
      expect(written(planContactUpdate(contact, identityOf(), policy, NOW))).toEqual({
        outcome: 'UNCHANGED',
        values: IDENTITY_VALUES,
        verifiedSubject: 'sub-1',
        verifiedIssuer: ISSUER,
        verifiedUntil: new Date(NOW.getTime() + 3_600_000),
      })
    })

    it('keeps differing stored values without overwriteContact: UNCHANGED', () => {
      const contact = contactOf(STORED_VALUES)
      const plan = written(planContactUpdate(contact, identityOf(), policyOf(), NOW))
      expect(plan.outcome).toBe('UNCHANGED')
      expect(plan.values).toEqual(STORED_VALUES)
    })

    it('replaces differing values with overwriteContact: FILLED', () => {
      const contact = contactOf(STORED_VALUES)
      const policy = policyOf({ overwriteContact: true })
      const plan = written(planContactUpdate(contact, identityOf(), policy, NOW))
      expect(plan.outcome).toBe('FILLED')
      expect(plan.values).toEqual(IDENTITY_VALUES)
    })

    it('with overwriteContact, replaces only what differs and is FILLED for one difference', () => {
      const contact = contactOf({ ...IDENTITY_VALUES, lastName: 'King' })
      const policy = policyOf({ overwriteContact: true })
      const plan = written(planContactUpdate(contact, identityOf(), policy, NOW))
      expect(plan.outcome).toBe('FILLED')
      expect(plan.values).toEqual(IDENTITY_VALUES)
    })

    it('with overwriteContact, is UNCHANGED when every value is already the same', () => {
      const contact = contactOf(IDENTITY_VALUES)
      const policy = policyOf({ overwriteContact: true })
      expect(written(planContactUpdate(contact, identityOf(), policy, NOW)).outcome).toBe(
        'UNCHANGED',
      )
    })

    for (const overwriteContact of [false, true]) {
      it(`never erases a stored value with an empty one (overwriteContact: ${overwriteContact})`, () => {
        const contact = contactOf(STORED_VALUES)
        const empty = identityOf({
          email: null,
          emailVerified: null,
          userName: null,
          fullName: null,
          firstName: null,
          lastName: null,
        })
        const plan = written(planContactUpdate(contact, empty, policyOf({ overwriteContact }), NOW))
        expect(plan.outcome).toBe('UNCHANGED')
        expect(plan.values).toEqual(STORED_VALUES)
      })
    }

    it('never erases a stored value with an empty one while filling and overwriting others', () => {
      const contact = contactOf({ email: 'old@example.com', userName: 'old', fullName: null })
      const partial = identityOf({ email: null, emailVerified: null, userName: 'ada' })
      const policy = policyOf({ overwriteContact: true })
      const plan = written(planContactUpdate(contact, partial, policy, NOW))
      expect(plan.outcome).toBe('FILLED')
      expect(plan.values).toEqual({ ...IDENTITY_VALUES, email: 'old@example.com' })
    })

    it('is recognised by issuer and subject, whichever integration of that issuer signs in', () => {
      const contact = contactOf({ ...IDENTITY_VALUES, verifiedIntegrationId: 'integration-2' })
      const plan = written(planContactUpdate(contact, identityOf(), policyOf(), NOW))
      expect(plan.outcome).toBe('UNCHANGED')
      expect(plan).toMatchObject({ verifiedSubject: 'sub-1', verifiedIssuer: ISSUER })
    })

    it('without an issuer on either side, is the same subject through the same integration', () => {
      const contact = contactOf({ verifiedIssuer: null })
      const plan = written(
        planContactUpdate(contact, identityOf({ issuer: null }), policyOf(), NOW),
      )
      expect(plan).toEqual({
        outcome: 'FILLED',
        values: IDENTITY_VALUES,
        verifiedSubject: 'sub-1',
        verifiedIssuer: null,
        verifiedUntil: null,
      })
    })
  })

  describe('another person: CONFLICT, and the contact is left as it is', () => {
    const cases: [string, Partial<ContactState>, Partial<Identity>, Partial<ContactPolicy>][] = [
      ['another subject', {}, { subject: 'sub-2' }, {}],
      ['the same subject from another issuer', {}, { issuer: 'https://other.example.com' }, {}],
      ['the same subject without the issuer the contact was verified by', {}, { issuer: null }, {}],
      [
        'the same subject with an issuer, on a contact verified without one',
        { verifiedIssuer: null },
        {},
        {},
      ],
      [
        'the same subject without an issuer through another integration',
        { verifiedIssuer: null },
        { issuer: null },
        { integrationId: 'integration-2' },
      ],
      [
        'a sign-in without a subject, on a contact whose verifier had one',
        {},
        { subject: null },
        {},
      ],
      [
        'a sign-in without a subject or issuer, on a contact verified without an issuer',
        { verifiedIssuer: null },
        { subject: null, issuer: null },
        {},
      ],
    ]
    for (const [label, contact, identity, policy] of cases) {
      it(`${label}`, () => {
        for (const overwriteContact of [false, true]) {
          expect(
            planContactUpdate(
              contactOf({ ...STORED_VALUES, ...contact }),
              identityOf(identity),
              policyOf({
                overwriteContact,
                trustUnverifiedEmail: true,
                verificationTtlSeconds: 60,
                ...policy,
              }),
              NOW,
            ),
          ).toEqual({ outcome: 'CONFLICT' })
        }
      })
    }

    it('compares subjects exactly', () => {
      const contact = contactOf({ verifiedSubject: 'Sub-1' })
      expect(planContactUpdate(contact, identityOf(), policyOf(), NOW).outcome).toBe('CONFLICT')
    })
  })

  describe('a contact without a recorded subject', () => {
    it('takes the first subject: FILLED even though no field changes, as recording it is a change', () => {
      const contact = contactOf({
        ...IDENTITY_VALUES,
        verifiedSubject: null,
        verifiedIssuer: null,
        verifiedIntegrationId: null,
        verifiedAt: EARLIER,
      })
      expect(written(planContactUpdate(contact, identityOf(), policyOf(), NOW))).toEqual({
        outcome: 'FILLED',
        values: IDENTITY_VALUES,
        verifiedSubject: 'sub-1',
        verifiedIssuer: ISSUER,
        verifiedUntil: null,
      })
    })

    it('takes it whatever issuer and integration verified the contact before', () => {
      const contact = contactOf({
        verifiedSubject: null,
        verifiedIssuer: 'https://old.example.com',
        verifiedIntegrationId: 'integration-2',
      })
      const plan = written(planContactUpdate(contact, identityOf(), policyOf(), NOW))
      expect(plan.outcome).toBe('FILLED')
      expect(plan).toMatchObject({ verifiedSubject: 'sub-1', verifiedIssuer: ISSUER })
    })

    it('fills its fields by the usual rules when it takes the subject', () => {
      const contact = contactOf({ ...STORED_VALUES, userName: null, verifiedSubject: null })
      const plan = written(planContactUpdate(contact, identityOf(), policyOf(), NOW))
      expect(plan.values).toEqual({ ...STORED_VALUES, userName: 'ada' })
    })

    it('stays without one after a sign-in without a subject, which is UNCHANGED when nothing is new', () => {
      const contact = contactOf({
        ...IDENTITY_VALUES,
        verifiedSubject: null,
        verifiedIssuer: 'https://old.example.com',
      })
      const plan = written(
        planContactUpdate(contact, identityOf({ subject: null }), policyOf(), NOW),
      )
      expect(plan).toEqual({
        outcome: 'UNCHANGED',
        values: IDENTITY_VALUES,
        verifiedSubject: null,
        verifiedIssuer: 'https://old.example.com',
        verifiedUntil: null,
      })
    })
  })

  describe('email verification', () => {
    it('does not fill an email the provider marks unverified', () => {
      const identity = identityOf({ emailVerified: false })
      const plan = written(planContactUpdate(null, identity, policyOf(), NOW))
      expect(plan.values).toEqual({ ...IDENTITY_VALUES, email: null })
    })

    it('does not overwrite a stored email with an unverified one', () => {
      const contact = contactOf(STORED_VALUES)
      const identity = identityOf({ emailVerified: false })
      const policy = policyOf({ overwriteContact: true })
      const plan = written(planContactUpdate(contact, identity, policy, NOW))
      expect(plan.values).toEqual({ ...IDENTITY_VALUES, email: STORED_VALUES.email })
    })

    it('is UNCHANGED when only an unverified email would be new', () => {
      const contact = contactOf({ ...IDENTITY_VALUES, email: null })
      const identity = identityOf({ emailVerified: false })
      const plan = written(planContactUpdate(contact, identity, policyOf(), NOW))
      expect(plan.outcome).toBe('UNCHANGED')
      expect(plan.values.email).toBeNull()
    })

    it('fills an unverified email when the integration sets trustUnverifiedEmail', () => {
      const identity = identityOf({ emailVerified: false })
      const policy = policyOf({ trustUnverifiedEmail: true })
      const plan = written(planContactUpdate(null, identity, policy, NOW))
      expect(plan.values.email).toBe('ada@example.com')
      const overwritten = written(
        planContactUpdate(
          contactOf(STORED_VALUES),
          identity,
          policyOf({ trustUnverifiedEmail: true, overwriteContact: true }),
          NOW,
        ),
      )
      expect(overwritten.values.email).toBe('ada@example.com')
    })

    it('fills an email the provider says nothing about (emailVerified null)', () => {
      const identity = identityOf({ emailVerified: null })
      const plan = written(planContactUpdate(contactOf(), identity, policyOf(), NOW))
      expect(plan.outcome).toBe('FILLED')
      expect(plan.values.email).toBe('ada@example.com')
    })

    it('fills a verified email', () => {
      const plan = written(planContactUpdate(contactOf(), identityOf(), policyOf(), NOW))
      expect(plan.values.email).toBe('ada@example.com')
    })
  })

  describe('verifiedUntil', () => {
    it('is null without a verification TTL', () => {
      for (const contact of [null, contactOf(), contactOf(IDENTITY_VALUES)]) {
        const plan = written(planContactUpdate(contact, identityOf(), policyOf(), NOW))
        expect(plan.verifiedUntil).toBeNull()
      }
    })

    it('is now plus the TTL, for a new, a filled and an unchanged contact', () => {
      const policy = policyOf({ verificationTtlSeconds: 86_400 })
      const expected = new Date('2030-06-02T12:00:00.000Z')
      for (const contact of [null, contactOf(), contactOf(IDENTITY_VALUES)]) {
        const plan = written(planContactUpdate(contact, identityOf(), policy, NOW))
        expect(plan.verifiedUntil).toEqual(expected)
      }
    })

    it('counts from the time it is given', () => {
      const policy = policyOf({ verificationTtlSeconds: 90 })
      const later = new Date(NOW.getTime() + 5000)
      const plan = written(planContactUpdate(null, identityOf(), policy, later))
      expect(plan.verifiedUntil).toEqual(new Date(NOW.getTime() + 95_000))
    })

    it('is now itself with a TTL of 0', () => {
      const policy = policyOf({ verificationTtlSeconds: 0 })
      const plan = written(planContactUpdate(null, identityOf(), policy, NOW))
      expect(plan.verifiedUntil).toEqual(NOW)
    })
  })
})

describe('isVerified', () => {
  const UNTIL = new Date('2030-06-01T12:00:00.000Z')

  it('is false for a contact never verified, whatever verifiedUntil says', () => {
    expect(isVerified({ verifiedAt: null, verifiedUntil: null }, NOW)).toBe(false)
    const future = new Date(NOW.getTime() + 60_000)
    expect(isVerified({ verifiedAt: null, verifiedUntil: future }, NOW)).toBe(false)
  })

  it('is true for a verified contact without verifiedUntil, however long ago', () => {
    const longAgo = new Date('2000-01-01T00:00:00.000Z')
    expect(isVerified({ verifiedAt: longAgo, verifiedUntil: null }, NOW)).toBe(true)
  })

  it('is true before verifiedUntil', () => {
    const before = new Date(UNTIL.getTime() - 1)
    expect(isVerified({ verifiedAt: EARLIER, verifiedUntil: UNTIL }, before)).toBe(true)
  })

  it('is false at exactly verifiedUntil', () => {
    const at = new Date(UNTIL.getTime())
    expect(isVerified({ verifiedAt: EARLIER, verifiedUntil: UNTIL }, at)).toBe(false)
  })

  it('is false after verifiedUntil', () => {
    const after = new Date(UNTIL.getTime() + 1)
    expect(isVerified({ verifiedAt: EARLIER, verifiedUntil: UNTIL }, after)).toBe(false)
  })
})
