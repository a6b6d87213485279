/**
 * The sign-in session and its state machine, as one table (TRANSITIONS) that the database
 * statements are built from (db/auth-sessions.ts: every UPDATE that changes a status takes its
 * `from` set as its compare-and-set guard and its `to` status from here).
 *
 *   PENDING ──open──▶ OPENED ──authenticate──▶ AUTHENTICATED
 *      │                 │────fail──────────▶ FAILED
 *      └──cancel/expire──┴──cancel/expire───▶ CANCELLED / EXPIRED
 *
 * Rules:
 * - AUTHENTICATED, FAILED, EXPIRED and CANCELLED are terminal: nothing leaves them, and a
 *   terminal session holds no sealed PKCE verifier and has a `completedAt` (a CHECK constraint
 *   of the database says so too).
 * - Only an OPENED session (a browser is bound to it) can authenticate or fail at the callback.
 * - Past `expiresAt` a session reads as EXPIRED, whether or not a sweeper has written it.
 * - Timing: `open` and `cancel` only before the expiry, `expire` only from it on; `authenticate`
 *   and `fail` at any time, because the callback checks the expiry when it claims the code
 *   exchange, before the provider is called, so a sign-in in time may end after `expiresAt`.
 */
import type { AuthFailure } from './auth-failure.ts'
import type { Identity } from './identity.ts'
import type { RedirectRouteName } from './redirect-urls.ts'

/** Every status, in the order of the flow; the GraphQL enum and the database CHECK list these. */
export const AUTH_SESSION_STATUSES = [
  'PENDING',
  'OPENED',
  'AUTHENTICATED',
  'FAILED',
  'EXPIRED',
  'CANCELLED',
] as const

export type AuthSessionStatus = (typeof AUTH_SESSION_STATUSES)[number]

/** The callback route the provider returns to (core/redirect-urls.ts). */
export type RedirectRoute = RedirectRouteName

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

/** What can happen to a session; each event has one row in TRANSITIONS. */
export type AuthSessionEvent = 'open' | 'authenticate' | 'fail' | 'cancel' | 'expire'

/** When, against the session's `expiresAt`, an event may happen. */
export type EventTiming = 'before_expiry' | 'from_expiry' | 'any_time'

export interface Transition {
  readonly from: readonly AuthSessionStatus[]
  readonly to: AuthSessionStatus
  readonly timing: EventTiming
}

export const TRANSITIONS: { readonly [E in AuthSessionEvent]: Transition } = {
  // Also: the browser already bound may open its link again (a fresh state and verifier) while
  // no callback has claimed the code exchange; db/auth-sessions.ts bindSession adds that case.
  open: { from: ['PENDING'], to: 'OPENED', timing: 'before_expiry' },
  authenticate: { from: ['OPENED'], to: 'AUTHENTICATED', timing: 'any_time' },
  fail: { from: ['OPENED'], to: 'FAILED', timing: 'any_time' },
  cancel: { from: ['PENDING', 'OPENED'], to: 'CANCELLED', timing: 'before_expiry' },
  expire: { from: ['PENDING', 'OPENED'], to: 'EXPIRED', timing: 'from_expiry' },
}

/** The statuses that are not final: every status some event leaves from. */
export const OPEN_STATUSES: readonly AuthSessionStatus[] = AUTH_SESSION_STATUSES.filter((status) =>
  Object.values(TRANSITIONS).some((t) => t.from.includes(status)),
)

export function isTerminal(status: AuthSessionStatus): boolean {
  return !OPEN_STATUSES.includes(status)
}

/** The statuses an event may leave from: the WHERE guard of the matching UPDATE. */
export function allowedFrom(event: AuthSessionEvent): readonly AuthSessionStatus[] {
  return TRANSITIONS[event].from
}

/** The status as readers must see it: an open session past its expiry is EXPIRED. */
export function effectiveStatus(
  session: Pick<AuthSession, 'status' | 'expiresAt'>,
  now: Date,
): AuthSessionStatus {
  return OPEN_STATUSES.includes(session.status) && now >= session.expiresAt
    ? 'EXPIRED'
    : session.status
}

/**
 * `session` as readers see it at `now`: an open one past its expiry reads EXPIRED, completed at
 * the expiry, exactly as the sweeper's `expire` will write it.
 */
export function asSeenAt(session: AuthSession, now: Date): AuthSession {
  const status = effectiveStatus(session, now)
  return status === session.status
    ? session
    : { ...session, status, completedAt: session.expiresAt }
}
