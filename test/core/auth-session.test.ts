/**
 * The sign-in state machine: every (status, event) pair, before and after the expiry, against a
 * table written out by hand, plus the readers' view (effectiveStatus, asSeenAt).
 */
import { describe, expect, it } from 'vitest'
import type { AuthFailure } from '../../src/core/auth-failure.ts'
import {
  allowedFrom,
  asSeenAt,
  effectiveStatus,
  isTerminal,
  transition,
  type AuthSession,
  type AuthSessionEvent,
  type AuthSessionStatus,
} from '../../src/core/auth-session.ts'
import type { Identity } from '../../src/core/identity.ts'

const STATUSES: readonly AuthSessionStatus[] = [
  'PENDING',
  'OPENED',
  'AUTHENTICATED',
  'FAILED',
  'EXPIRED',
  'CANCELLED',
]

const identity: Identity = {
  email: 'ada@example.com',
  userName: 'ada',
  fullName: 'Ada Lovelace',
  firstName: 'Ada',
  lastName: 'Lovelace',
  attributes: { sub: 'ada' },
}
const failure: AuthFailure = { code: 'access_denied', message: 'declined' }

const EVENTS: readonly AuthSessionEvent[] = [
  { type: 'open' },
  { type: 'authenticate', identity },
  { type: 'fail', failure },
  { type: 'cancel' },
  { type: 'expire' },
]

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
    status,
    createdAt: created,
    expiresAt,
    openedAt: null,
    completedAt: null,
    identity: null,
    failure: null,
  }
}

/** What each allowed event does, in time (before the expiry; `expire` after it). */
const ALLOWED: Record<string, Partial<AuthSession>> = {
  'PENDING open': { status: 'OPENED', openedAt: before },
  'OPENED authenticate': { status: 'AUTHENTICATED', identity, completedAt: before },
  'OPENED fail': { status: 'FAILED', failure, completedAt: before },
  'PENDING cancel': { status: 'CANCELLED', completedAt: before },
  'OPENED cancel': { status: 'CANCELLED', completedAt: before },
  'PENDING expire': { status: 'EXPIRED', completedAt: expiresAt },
  'OPENED expire': { status: 'EXPIRED', completedAt: expiresAt },
}

describe('transition', () => {
  const pairs = STATUSES.flatMap((status) => EVENTS.map((event) => [status, event] as const))

  it('covers 30 pairs, 7 of them allowed', () => {
    expect(pairs).toHaveLength(30)
    expect(pairs.filter(([s, e]) => `${s} ${e.type}` in ALLOWED)).toHaveLength(7)
  })

  it.each(pairs.map(([s, e]) => [s, e.type, e] as const))('%s + %s', (status, type, event) => {
    const key = `${status} ${type}`
    const inTime = type === 'expire' ? after : before
    const late = type === 'expire' ? before : after
    const result = transition(session(status), event, inTime)
    const lateResult = transition(session(status), event, late)
    if (key in ALLOWED) {
      expect(allowedFrom(type)).toContain(status)
      expect(result).toEqual({ ok: true, value: { ...session(status), ...ALLOWED[key] } })
      expect(lateResult).toEqual({
        ok: false,
        error: { reason: type === 'expire' ? 'not_expired' : 'expired' },
      })
    } else {
      expect(allowedFrom(type)).not.toContain(status)
      expect(result).toEqual({ ok: false, error: { reason: 'not_allowed', from: status } })
      expect(lateResult).toEqual(result)
    }
  })

  it('leaves its input unchanged', () => {
    const input = session('PENDING')
    const copy = { ...input }
    transition(input, { type: 'open' }, before)
    expect(input).toEqual(copy)
  })
})

describe('the readers view', () => {
  it('calls only PENDING and OPENED open', () => {
    expect(STATUSES.filter((s) => !isTerminal(s))).toEqual(['PENDING', 'OPENED'])
  })

  it.each(STATUSES)(
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

  it('agrees with transition: a lazily expired session looks like a swept one', () => {
    for (const status of ['PENDING', 'OPENED'] as const) {
      const swept = transition(session(status), { type: 'expire' }, after)
      expect(swept.ok && swept.value).toEqual(asSeenAt(session(status), after))
    }
  })
})
