/**
 * The sign-in session and its state machine.
 *
 *   PENDING ──open──▶ OPENED ──authenticate──▶ AUTHENTICATED
 *      │                 │────fail──────────▶ FAILED
 *      └──cancel/expire──┴──cancel/expire───▶ CANCELLED / EXPIRED
 *
 * Rules enforced here (the database repeats the `from` sets as compare-and-set guards):
 * - AUTHENTICATED, FAILED, EXPIRED and CANCELLED are terminal: nothing leaves them.
 * - Only an OPENED session (a browser is bound to it) can authenticate or fail at the callback.
 * - Past `expiresAt` a session reads as EXPIRED, whether or not a sweeper has written it.
 *
 * `transition` is the reference for the UPDATEs in db/auth-sessions.ts, which apply the same
 * rules in SQL (test/core/auth-session.test.ts walks every status and event). One difference:
 * the database checks the expiry of authenticate and fail when the callback claims the code
 * exchange, before the provider is called, so a sign-in in time then may end after `expiresAt`.
 */
import type { AuthFailure } from './auth-failure.ts'
import type { Identity } from './identity.ts'
import { err, ok, type Result } from './result.ts'

export type AuthSessionStatus =
  'PENDING' | 'OPENED' | 'AUTHENTICATED' | 'FAILED' | 'EXPIRED' | 'CANCELLED'

/** The callback route the provider returns to; each maps to one path of `REDIRECT_ROUTES`. */
export type RedirectRoute = 'IDP' | 'ABC' | 'ABC_AUTH2'

export interface AuthSession {
  readonly id: string
  readonly tenantId: string
  readonly integrationId: string
  readonly conversationId: string
  readonly contactId: string
  readonly redirectRoute: RedirectRoute
  readonly status: AuthSessionStatus
  readonly createdAt: Date
  readonly expiresAt: Date
  readonly openedAt: Date | null
  readonly completedAt: Date | null
  readonly identity: Identity | null
  readonly failure: AuthFailure | null
}

export type AuthSessionEvent =
  | { readonly type: 'open' }
  | { readonly type: 'authenticate'; readonly identity: Identity }
  | { readonly type: 'fail'; readonly failure: AuthFailure }
  | { readonly type: 'cancel' }
  | { readonly type: 'expire' }

const FROM: { readonly [E in AuthSessionEvent['type']]: readonly AuthSessionStatus[] } = {
  open: ['PENDING'],
  authenticate: ['OPENED'],
  fail: ['OPENED'],
  cancel: ['PENDING', 'OPENED'],
  expire: ['PENDING', 'OPENED'],
}

export const OPEN_STATUSES: readonly AuthSessionStatus[] = ['PENDING', 'OPENED']

export function isTerminal(status: AuthSessionStatus): boolean {
  return !OPEN_STATUSES.includes(status)
}

/** The statuses an event may leave from: also the WHERE guard of the matching UPDATE. */
export function allowedFrom(event: AuthSessionEvent['type']): readonly AuthSessionStatus[] {
  return FROM[event]
}

export type TransitionRefusal =
  | { readonly reason: 'not_allowed'; readonly from: AuthSessionStatus }
  /** Past `expiresAt`: the session already reads EXPIRED. */
  | { readonly reason: 'expired' }
  /** `expire` before `expiresAt`. */
  | { readonly reason: 'not_expired' }

/** The status as readers must see it: an open session past its expiry is EXPIRED. */
export function effectiveStatus(
  session: Pick<AuthSession, 'status' | 'expiresAt'>,
  now: Date,
): AuthSessionStatus {
  return OPEN_STATUSES.includes(session.status) && now >= session.expiresAt
    ? 'EXPIRED'
    : session.status
}

/** `session` as readers see it at `now` (expiry applied; completedAt = expiry for a lazily expired one). */
export function asSeenAt(session: AuthSession, now: Date): AuthSession {
  const status = effectiveStatus(session, now)
  return status === session.status
    ? session
    : { ...session, status, completedAt: session.expiresAt }
}

/**
 * Applies one event at `now` (the caller's clock, so tests can pin it): `expire` only from
 * `expiresAt` on (the sweeper's `expires_at <= now`), every other event only before it (the
 * `expires_at > now` of binding, claiming and cancelling).
 */
export function transition(
  session: AuthSession,
  event: AuthSessionEvent,
  now: Date,
): Result<AuthSession, TransitionRefusal> {
  if (!FROM[event.type].includes(session.status)) {
    return err({ reason: 'not_allowed', from: session.status })
  }
  const expired = now >= session.expiresAt
  if (event.type === 'expire' && !expired) return err({ reason: 'not_expired' })
  if (event.type !== 'expire' && expired) return err({ reason: 'expired' })
  switch (event.type) {
    case 'open':
      return ok({ ...session, status: 'OPENED', openedAt: now })
    case 'authenticate':
      return ok({ ...session, status: 'AUTHENTICATED', identity: event.identity, completedAt: now })
    case 'fail':
      return ok({ ...session, status: 'FAILED', failure: event.failure, completedAt: now })
    case 'cancel':
      return ok({ ...session, status: 'CANCELLED', completedAt: now })
    case 'expire':
      // As the sweeper writes it and readers see it before that: completed at the expiry.
      return ok({ ...session, status: 'EXPIRED', completedAt: session.expiresAt })
  }
}
