/**
 * Webhook rules: which session changes are reported and under what name, the payload a receiver
 * gets, the URL rules of an endpoint, the retry schedule and when a failing endpoint is turned
 * off. No I/O: the random number of the jitter and the clock come in as arguments.
 */
import type { AuthFailure } from './auth-failure.ts'
import type { AuthSession, AuthSessionStatus } from './auth-session.ts'
import type { Identity } from './identity.ts'
import { checkOutboundUrl } from './ip-address.ts'
import { urlSyntaxProblem } from './integration-rules.ts'

/** The session statuses a webhook reports, each with its event type (GraphQL enum and column). */
export const REPORTED_STATUSES = {
  AUTHENTICATED: 'AUTH_SESSION_AUTHENTICATED',
  FAILED: 'AUTH_SESSION_FAILED',
  EXPIRED: 'AUTH_SESSION_EXPIRED',
  CANCELLED: 'AUTH_SESSION_CANCELLED',
  AWAITING_CONFIRMATION: 'AUTH_SESSION_AWAITING_CONFIRMATION',
} as const satisfies Partial<Record<AuthSessionStatus, string>>

export type ReportedStatus = keyof typeof REPORTED_STATUSES
export type WebhookEventType = (typeof REPORTED_STATUSES)[ReportedStatus]

export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = Object.values(REPORTED_STATUSES)

export const WEBHOOK_DELIVERY_STATUSES = ['PENDING', 'DELIVERED', 'FAILED'] as const
export type WebhookDeliveryStatus = (typeof WEBHOOK_DELIVERY_STATUSES)[number]

/** The event type of a status change, or null when that status is not reported. */
export function eventTypeOf(status: AuthSessionStatus): WebhookEventType | null {
  return status in REPORTED_STATUSES ? REPORTED_STATUSES[status as ReportedStatus] : null
}

/** `AUTH_SESSION_AUTHENTICATED` → `auth_session.authenticated`, the payload's `type`. */
export function payloadTypeOf(type: WebhookEventType): string {
  return `auth_session.${type.slice('AUTH_SESSION_'.length).toLowerCase()}`
}

type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

function iso(date: Date | null): string | null {
  return date ? date.toISOString() : null
}

function identityView(identity: Identity): { [key: string]: JsonValue } {
  return {
    subject: identity.subject ?? null,
    issuer: identity.issuer ?? null,
    emailVerified: identity.emailVerified ?? null,
    authTime: identity.authTime ? new Date(identity.authTime).toISOString() : null,
    acr: identity.acr ?? null,
    amr: identity.amr ? [...identity.amr] : null,
    email: identity.email ?? null,
    userName: identity.userName ?? null,
    fullName: identity.fullName ?? null,
    firstName: identity.firstName ?? null,
    lastName: identity.lastName ?? null,
    attributes: (identity.attributes ?? {}) as JsonValue,
  }
}

function failureView(failure: AuthFailure): { [key: string]: JsonValue } {
  return { code: failure.code, message: failure.message }
}

/**
 * The session as a webhook shows it: the fields of the GraphQL `AuthSession`, with the same
 * rules (identity and contactUpdate only when AUTHENTICATED, failure only when FAILED), and the
 * integration as `integrationId`. Nothing else of the session: no hashes, sealed values or
 * tokens (test/webhooks/payload.test.ts compares it with the GraphQL answer).
 */
export function webhookSessionView(session: AuthSession): { [key: string]: JsonValue } {
  const authenticated = session.status === 'AUTHENTICATED'
  return {
    id: session.id,
    status: session.status,
    integrationId: session.integrationId,
    conversationId: session.conversationId,
    contactId: session.contactId,
    redirectRoute: session.redirectRoute,
    createdAt: session.createdAt.toISOString(),
    expiresAt: session.expiresAt.toISOString(),
    openedAt: iso(session.openedAt),
    completedAt: iso(session.completedAt),
    identity: authenticated && session.identity ? identityView(session.identity) : null,
    confirmationAttemptsLeft: session.confirmationAttemptsLeft,
    contactUpdate: authenticated ? session.contactUpdate : null,
    callbackIssuer: session.callbackIssuer,
    failure: session.status === 'FAILED' && session.failure ? failureView(session.failure) : null,
  }
}

/** The JSON body of a delivery; the same bytes on every attempt of the same event. */
export function webhookBody(event: {
  readonly type: WebhookEventType
  readonly createdAt: Date
  readonly session: AuthSession
}): string {
  return JSON.stringify({
    type: payloadTypeOf(event.type),
    timestamp: event.createdAt.toISOString(),
    data: { session: webhookSessionView(event.session) },
  })
}

export const WEBHOOK_SECRET_PREFIX = 'whsec_'
/** Random bytes in a secret (the signing key is these bytes). */
export const WEBHOOK_SECRET_BYTES = 32
/** How long the secret before a rotation keeps signing alongside the new one. */
export const ROTATION_OVERLAP_MS = 24 * 60 * 60 * 1000
export const DESCRIPTION_MAX_LENGTH = 500

/**
 * An endpoint URL: the rules of provider URLs (absolute https on a public host, no credentials,
 * no fragment), where hosts of OUTBOUND_ALLOW_HOSTS or WEBHOOK_ALLOW_HOSTS may be private or plain
 * http.
 */
export function webhookUrlProblem(
  raw: string,
  outboundAllowHosts: readonly string[],
  webhookAllowHosts: readonly string[],
): string | null {
  return (
    urlSyntaxProblem(raw) ??
    checkOutboundUrl(raw, [...outboundAllowHosts, ...webhookAllowHosts], 'WEBHOOK_ALLOW_HOSTS')
  )
}

export function descriptionProblem(raw: string): string | null {
  if (raw.length > DESCRIPTION_MAX_LENGTH) {
    return `must be at most ${DESCRIPTION_MAX_LENGTH} characters`
  }
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(raw)) return 'must not contain control characters'
  return null
}

export function eventsProblem(events: readonly string[]): string | null {
  if (events.length === 0) return 'must name at least one event type (leave it out for all)'
  return null
}

/** Each event type once, in the order of WEBHOOK_EVENT_TYPES; all of them when none is given. */
export function normaliseEvents(events: readonly WebhookEventType[] | null | undefined) {
  if (events === null || events === undefined) return [...WEBHOOK_EVENT_TYPES]
  return WEBHOOK_EVENT_TYPES.filter((type) => events.includes(type))
}

/**
 * The waits after each failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. Eight attempts
 * over 27.6 hours at the least (jitter only lengthens a wait), the first retry within 6 s.
 */
export const RETRY_DELAYS_MS: readonly number[] = [
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3_600_000,
  5 * 3_600_000,
  10 * 3_600_000,
  10 * 3_600_000,
]

/** Each wait is lengthened by up to this fraction, so receivers are not hit in waves. */
export const RETRY_JITTER = 0.2

/**
 * After `attemptsMade` failed attempts: the wait before the next one, or null when that was the
 * last (the delivery is FAILED). `random` is in [0, 1).
 */
export function retryDelayMs(
  attemptsMade: number,
  delays: readonly number[],
  random: number,
): number | null {
  const base = delays[attemptsMade - 1]
  if (base === undefined) return null
  return Math.round(base * (1 + RETRY_JITTER * random))
}

/** An endpoint failing (no success in between) for this long is disabled. */
export const DISABLE_AFTER_MS = 3 * 24 * 3_600_000

export function shouldDisable(failingSince: Date | null, now: Date, afterMs: number): boolean {
  return failingSince !== null && now.getTime() - failingSince.getTime() >= afterMs
}

/** What an attempt's error may say: one line, at most 200 characters. */
export function shortError(message: string): string {
  const line = message.replace(/\s+/g, ' ').trim()
  return line.length > 200 ? `${line.slice(0, 199)}…` : line
}
