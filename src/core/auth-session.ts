/**
 * The sign-in session and its state machine, as one table (TRANSITIONS) that the database
 * statements are built from (db/auth-sessions.ts: every UPDATE that changes a status takes its
 * `from` set as its compare-and-set guard and its `to` status from here).
 *
 *   PENDING ──open──▶ OPENED ──authenticate──────────────────────────────▶ AUTHENTICATED
 *      │                 │──await_confirmation─▶ AWAITING_CONFIRMATION ──confirm──┘
 *      │                 │──fail──▶ FAILED ◀──reject_confirmation──┘
 *      └────────cancel / expire (from every open status)──────────▶ CANCELLED / EXPIRED
 *
 * Rules:
 * - AUTHENTICATED, FAILED, EXPIRED and CANCELLED are terminal: nothing leaves them. A terminal
 *   session holds no sealed value (PKCE verifier, confirmation code) and has a `completedAt`; a
 *   session past its code exchange holds no verifier (a CHECK constraint of the database says so
 *   too).
 * - Only an OPENED session (a browser is bound to it) can end at the callback: authenticated, or
 *   waiting for the end user to type the code shown to them into the conversation, or failed.
 * - Past `expiresAt` a session reads as EXPIRED, whether or not a sweeper has written it.
 * - Timing: `open`, `confirm`, `reject_confirmation` and `cancel` only before the expiry,
 *   `expire` only from it on; `authenticate`, `await_confirmation` and `fail` at any time,
 *   because the callback checks the expiry when it claims the code exchange, before the
 *   provider is called, so a sign-in in time may end after `expiresAt`.
 */
import type { AuthFailure } from './auth-failure.ts'
import type { Identity } from './identity.ts'
import type { RedirectRouteName } from './redirect-urls.ts'

/** Every status, in the order of the flow; the GraphQL enum and the database CHECK list these. */
export const AUTH_SESSION_STATUSES = [
  'PENDING',
  'OPENED',
  'AWAITING_CONFIRMATION',
  'AUTHENTICATED',
  'FAILED',
  'EXPIRED',
  'CANCELLED',
] as const

export type AuthSessionStatus = (typeof AUTH_SESSION_STATUSES)[number]

/** The callback route the provider returns to (core/redirect-urls.ts). */
export type RedirectRoute = RedirectRouteName

/** What a sign-in did to its contact (set when the session ends, otherwise null). */
export const CONTACT_UPDATES = ['FILLED', 'UNCHANGED', 'CONFLICT'] as const
export type ContactUpdate = (typeof CONTACT_UPDATES)[number]

/** What the agent asked of the provider for this sign-in (OpenID Connect step-up). */
export interface StepUp {
  readonly prompt: string | null
  readonly maxAgeSeconds: number | null
  readonly loginHint: string | null
  readonly acrValues: readonly string[] | null
}

export interface AuthSession {
  readonly id: string
  readonly tenantId: string
  readonly integrationId: string
  readonly conversationId: string
  readonly contactId: string
  readonly redirectRoute: RedirectRoute
  /** The redirect_uri of the authorization request; null for sessions of earlier versions. */
  readonly redirectUri: string | null
  /** Whether its authorization request was OpenID Connect (a nonce sent, an ID token due). */
  readonly openid: boolean
  readonly status: AuthSessionStatus
  readonly createdAt: Date
  readonly expiresAt: Date
  readonly openedAt: Date | null
  readonly completedAt: Date | null
  /** Set when AUTHENTICATED; kept, not shown, while AWAITING_CONFIRMATION. */
  readonly identity: Identity | null
  readonly failure: AuthFailure | null
  readonly stepUp: StepUp
  /** The callback's RFC 9207 `iss`, as it came. */
  readonly callbackIssuer: string | null
  /** Codes that may still be tried; null when the sign-in involves no code. */
  readonly confirmationAttemptsLeft: number | null
  /** When the result page showed the confirmation code; null until then. */
  readonly confirmationShownAt: Date | null
  readonly contactUpdate: ContactUpdate | null
}

/** What can happen to a session; each event has one row in TRANSITIONS. */
export type AuthSessionEvent =
  | 'open'
  | 'authenticate'
  | 'await_confirmation'
  | 'fail'
  | 'confirm'
  | 'reject_confirmation'
  | 'cancel'
  | 'expire'

/** When, against the session's `expiresAt`, an event may happen. */
export type EventTiming = 'before_expiry' | 'from_expiry' | 'any_time'

export interface Transition {
  readonly from: readonly AuthSessionStatus[]
  readonly to: AuthSessionStatus
  readonly timing: EventTiming
}

const OPEN: readonly AuthSessionStatus[] = ['PENDING', 'OPENED', 'AWAITING_CONFIRMATION']

export const TRANSITIONS: { readonly [E in AuthSessionEvent]: Transition } = {
  // Also: the browser already bound may open its link again (a fresh state and verifier) while
  // no callback has claimed the code exchange; db/auth-sessions.ts bindSession adds that case.
  open: { from: ['PENDING'], to: 'OPENED', timing: 'before_expiry' },
  authenticate: { from: ['OPENED'], to: 'AUTHENTICATED', timing: 'any_time' },
  await_confirmation: { from: ['OPENED'], to: 'AWAITING_CONFIRMATION', timing: 'any_time' },
  fail: { from: ['OPENED'], to: 'FAILED', timing: 'any_time' },
  confirm: { from: ['AWAITING_CONFIRMATION'], to: 'AUTHENTICATED', timing: 'before_expiry' },
  reject_confirmation: { from: ['AWAITING_CONFIRMATION'], to: 'FAILED', timing: 'before_expiry' },
  cancel: { from: OPEN, to: 'CANCELLED', timing: 'before_expiry' },
  expire: { from: OPEN, to: 'EXPIRED', timing: 'from_expiry' },
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
