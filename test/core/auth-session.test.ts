/**
 * The state machine's table (TRANSITIONS) and the readers' view (effectiveStatus, asSeenAt).
 * What each event does to a stored session is tested against the database, statement by
 * statement, in test/db/auth-session-transitions.test.ts.
 */
import { describe, expect, it } from 'vitest'
import {
  allowedFrom,
  asSeenAt,
  AUTH_SESSION_STATUSES,
  effectiveStatus,
  isTerminal,
  OPEN_STATUSES,
  TRANSITIONS,
  type AuthSession,
  type AuthSessionStatus,
} from '../../src/core/auth-session.ts'

const created = new Date('2026-11-27T10:00:00Z')
const expiresAt = new Date('2026-11-27T10:10:00Z')
const before = new Date('2026-11-27T10:05:00Z')
const after = expiresAt // expiry is inclusive: at expiresAt the session is expired

function session(status: AuthSessionStatus): AuthSession {
  return {
    id: '4b0f3c52-0d55-4cd6-9d0f-5a3f3c2b1e01',
    tenantId: 't',
    integrationId: 'i',
    conversationId: 'c',
    contactId: 'c',
    redirectRoute: 'IDP',
    redirectUri: 'https://acme.example.com/idp/eu/oauth/callback/0123456789abcdef',
    openid: false,
    status,
    createdAt: created,
    expiresAt,
    openedAt: null,
    completedAt: null,
    identity: null,
    failure: null,
    stepUp: { prompt: null, maxAgeSeconds: null, loginHint: null, acrValues: null },
    callbackIssuer: null,
    confirmationAttemptsLeft: null,
    confirmationShownAt: null,
    contactUpdate: null,
  }
}

describe('the transition table', () => {
  it('is exactly this, written out by hand', () => {
    const open = ['PENDING', 'OPENED', 'AWAITING_CONFIRMATION']
    expect(TRANSITIONS).toEqual({
      open: { from: ['PENDING'], to: 'OPENED', timing: 'before_expiry' },
      authenticate: { from: ['OPENED'], to: 'AUTHENTICATED', timing: 'any_time' },
      await_confirmation: { from: ['OPENED'], to: 'AWAITING_CONFIRMATION', timing: 'any_time' },
      fail: { from: ['OPENED'], to: 'FAILED', timing: 'any_time' },
      confirm: { from: ['AWAITING_CONFIRMATION'], to: 'AUTHENTICATED', timing: 'before_expiry' },
      reject_confirmation: {
        from: ['AWAITING_CONFIRMATION'],
        to: 'FAILED',
        timing: 'before_expiry',
      },
      cancel: { from: open, to: 'CANCELLED', timing: 'before_expiry' },
      expire: { from: open, to: 'EXPIRED', timing: 'from_expiry' },
    })
  })

  it('calls open exactly the statuses some event leaves from', () => {
    expect(OPEN_STATUSES).toEqual(['PENDING', 'OPENED', 'AWAITING_CONFIRMATION'])
    expect(AUTH_SESSION_STATUSES.filter(isTerminal)).toEqual([
      'AUTHENTICATED',
      'FAILED',
      'EXPIRED',
      'CANCELLED',
    ])
  })

  it('never leaves a terminal status, and reaches every status but PENDING', () => {
    for (const [event, t] of Object.entries(TRANSITIONS)) {
      expect(
        t.from.every((s) => !isTerminal(s)),
        event,
      ).toBe(true)
      expect(allowedFrom(event as keyof typeof TRANSITIONS)).toBe(t.from)
    }
    const reached = new Set(Object.values(TRANSITIONS).map((t) => t.to))
    expect(AUTH_SESSION_STATUSES.filter((s) => !reached.has(s))).toEqual(['PENDING'])
  })
})

describe('the readers view', () => {
  it.each(AUTH_SESSION_STATUSES)(
    '%s reads as itself before the expiry, and open ones as EXPIRED from it',
    (status) => {
      expect(effectiveStatus(session(status), before)).toBe(status)
      expect(asSeenAt(session(status), before)).toEqual(session(status))
      const late = isTerminal(status) ? status : 'EXPIRED'
      expect(effectiveStatus(session(status), after)).toBe(late)
      expect(asSeenAt(session(status), after)).toEqual(
        isTerminal(status)
          ? session(status)
          : { ...session(status), status: 'EXPIRED', completedAt: expiresAt },
      )
    },
  )

  it('agrees with the table: what expiry reads as is what expire writes', () => {
    for (const status of OPEN_STATUSES) {
      expect(TRANSITIONS.expire.from).toContain(status)
      expect(effectiveStatus(session(status), after)).toBe(TRANSITIONS.expire.to)
    }
  })
})
