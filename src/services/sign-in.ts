/**
 * Starting, opening, cancelling and reading sign-in sessions.
 *
 * - The link carries an opaque token of 256 random bits; only its SHA-256 is stored.
 * - Opening the link (POST from our page) binds the session to that browser with a cookie whose
 *   hash is stored (first browser wins), and only then creates `state` (256 bits, hash stored)
 *   and the PKCE verifier (sealed), so a link preview (GET) spends nothing.
 * - A new link for the same conversation and integration cancels the older open ones.
 */
import { randomUUID } from 'node:crypto'
import * as oauth from 'oauth4webapi'
import { asSeenAt, type AuthSession, type RedirectRoute } from '../core/auth-session.ts'
import { buildAuthorizationUrl, renderAuthenticationMessage } from '../core/authorization-url.ts'
import { NotFoundError } from '../core/errors.ts'
import type { OAuthIntegration } from '../core/integration.ts'
import { publicBaseFor, redirectUrlFor } from '../core/redirect-urls.ts'
import type { SealContext } from '../crypto/sealer.ts'
import { randomToken, sha256, hashesEqual } from '../crypto/tokens.ts'
import * as sessions from '../db/auth-sessions.ts'
import { findTenantById } from '../db/tenants.ts'
import type { Deps } from './deps.ts'
import { getIntegration, getIntegrationIncludingDeleted } from './integrations.ts'
import type { Principal } from './tenants.ts'

export const LINK_PATH = '/l/'
export const MAX_SESSIONS_LISTED = 100

export interface StartedSignIn {
  readonly session: AuthSession
  readonly authorizationLink: string
  readonly message: { text: string; buttonLabel: string; url: string }
}

export async function startSignIn(
  deps: Deps,
  principal: Principal,
  input: {
    integrationId: string
    conversationId: string
    contactId?: string | null
    redirectRoute?: RedirectRoute | null
  },
): Promise<StartedSignIn> {
  const integration = await getIntegration(deps, principal.tenantId, input.integrationId)
  const now = deps.now()
  const token = randomToken(32)
  const { session, superseded } = await sessions.insertSessionSuperseding(deps.db, {
    id: randomUUID(),
    tenantId: principal.tenantId,
    integrationId: integration.id,
    conversationId: input.conversationId,
    // One contact per conversation unless the caller names one.
    contactId: input.contactId ?? input.conversationId,
    redirectRoute: input.redirectRoute ?? 'IDP',
    linkHash: sha256(token),
    expiresAt: new Date(now.getTime() + integration.sessionTtlSeconds * 1000),
    now,
  })
  for (const old of superseded) deps.events.publish(old.id)
  deps.events.publish(session.id)
  deps.logger.info(
    {
      sessionId: session.id,
      tenantId: principal.tenantId,
      integrationId: integration.id,
      superseded: superseded.map((s) => s.id),
    },
    'sign-in started',
  )
  const authorizationLink = `${publicBaseFor(deps.config.publicBaseUrl, principal.tenantSlug)}${LINK_PATH}${token}`
  return {
    session,
    authorizationLink,
    message: renderAuthenticationMessage(integration, principal.tenantName, authorizationLink),
  }
}

export async function getSession(deps: Deps, tenantId: string, id: string): Promise<AuthSession> {
  const session = isUuid(id) ? await sessions.findSession(deps.db, tenantId, id) : undefined
  if (!session) throw NotFoundError.of('auth session', id)
  return asSeenAt(session, deps.now())
}

export async function listSessions(
  deps: Deps,
  tenantId: string,
  conversationId: string,
): Promise<AuthSession[]> {
  const now = deps.now()
  const list = await sessions.listSessionsOfConversation(
    deps.db,
    tenantId,
    conversationId,
    MAX_SESSIONS_LISTED,
  )
  return list.map((s) => asSeenAt(s, now))
}

export async function cancelSignIn(deps: Deps, tenantId: string, id: string): Promise<AuthSession> {
  const current = await getSession(deps, tenantId, id)
  const cancelled = await sessions.cancelSession(deps.db, tenantId, id, deps.now())
  if (cancelled) {
    deps.events.publish(id)
    deps.logger.info({ sessionId: id }, 'sign-in cancelled')
    return cancelled
  }
  // Already finished (or expired): cancelling changes nothing, and says so in the status.
  if (current.status === 'PENDING' || current.status === 'OPENED')
    return getSession(deps, tenantId, id)
  return current
}

/**
 * Writes EXPIRED on open sessions past their expiry and tells subscribers. Readers never depend
 * on it (an open session past expiry already reads EXPIRED); it keeps the table honest and
 * wakes `authSessionUpdated` subscribers on other instances.
 */
export async function sweepExpiredSessions(deps: Deps): Promise<number> {
  let total = 0
  for (;;) {
    const expired = await sessions.expireSessions(deps.db, deps.now())
    for (const session of expired) deps.events.publish(session.id)
    total += expired.length
    if (expired.length === 0) return total
  }
}

/** The integration of a session, also after the integration was deleted. */
export function integrationOfSession(deps: Deps, session: AuthSession): Promise<OAuthIntegration> {
  return getIntegrationIncludingDeleted(deps, session.tenantId, session.integrationId)
}

// ---------------------------------------------------------------------------------------------
// The end user's side: the link page and its POST.

export type LinkView =
  | { readonly kind: 'unknown' }
  | { readonly kind: 'ready'; readonly business: string; readonly session: AuthSession }
  | { readonly kind: 'in_use'; readonly business: string }
  /** This browser's own sign-in: its callback is exchanging the code right now. */
  | { readonly kind: 'in_progress'; readonly business: string }
  | { readonly kind: 'finished'; readonly business: string; readonly session: AuthSession }

/** Reads the browser's binding cookie for a session (the cookie name depends on the session). */
export type CookieLookup = (sessionId: string) => string | null

/** What the link shows on GET. Changes nothing: link previews and scanners are harmless. */
export async function viewLink(
  deps: Deps,
  token: string,
  cookieFor: CookieLookup,
): Promise<LinkView> {
  const link = await lookUpLink(deps, token, cookieFor)
  if (link.kind !== 'ready') return link
  return { kind: 'ready', business: link.business, session: link.session }
}

/** A link that may continue, with what opening it needs beyond the view. */
interface ReadyLink {
  readonly kind: 'ready'
  readonly business: string
  readonly session: AuthSession
  readonly record: sessions.SessionRecord
  readonly bindingCookie: string | null
  readonly tenantSlug: string
}

async function lookUpLink(
  deps: Deps,
  token: string,
  cookieFor: CookieLookup,
): Promise<ReadyLink | Exclude<LinkView, { kind: 'ready' }>> {
  const record = await findByLinkToken(deps, token)
  if (!record) return { kind: 'unknown' }
  const bindingCookie = cookieFor(record.session.id)
  const tenant = await findTenantById(deps.db, record.session.tenantId)
  const business = tenant?.name ?? ''
  const session = asSeenAt(record.session, deps.now())
  const tenantSlug = tenant?.slug ?? ''
  const ready = { kind: 'ready', business, session, record, bindingCookie, tenantSlug } as const
  if (session.status === 'PENDING') return ready
  if (session.status === 'OPENED') {
    if (!isBoundTo(record, bindingCookie)) return { kind: 'in_use', business }
    return record.exchangeClaimedAt === null ? ready : { kind: 'in_progress', business }
  }
  return { kind: 'finished', business, session }
}

export type OpenOutcome =
  | {
      readonly kind: 'redirect'
      readonly location: string
      readonly bindingCookie: string
      readonly session: AuthSession
    }
  | Exclude<LinkView, { kind: 'ready' }>

/**
 * The POST behind the link's Continue button: binds the session to this browser (or refreshes
 * the binding of the browser that already holds it), then sends it to the provider.
 */
export async function openLink(
  deps: Deps,
  token: string,
  cookieFor: CookieLookup,
): Promise<OpenOutcome> {
  const link = await lookUpLink(deps, token, cookieFor)
  if (link.kind !== 'ready') return link
  const { record, bindingCookie } = link
  const integration = await getIntegrationIncludingDeleted(
    deps,
    record.session.tenantId,
    record.session.integrationId,
  )
  // Reuse the cookie of the browser already bound; a new browser gets a new random one.
  const cookie =
    bindingCookie !== null && isBoundTo(record, bindingCookie) ? bindingCookie : randomToken(32)
  const state = randomToken(32)
  const verifier = integration.pkce ? oauth.generateRandomCodeVerifier() : null
  const bound = await sessions.bindSession(deps.db, {
    id: record.session.id,
    bindingHash: sha256(cookie),
    stateHash: sha256(state),
    codeVerifierSealed: verifier
      ? deps.sealer.seal(verifier, verifierSealContext(record.session))
      : null,
    now: deps.now(),
  })
  if (!bound) {
    // Another browser won the race, or the session ended meanwhile: show what it is now.
    const now = await viewLink(deps, token, cookieFor)
    return now.kind === 'ready' ? { kind: 'in_use', business: now.business } : now
  }
  if (record.session.status === 'PENDING') deps.events.publish(bound.id)
  const location = buildAuthorizationUrl(integration, {
    redirectUri: redirectUrlFor(deps.config.publicBaseUrl, link.tenantSlug, bound.redirectRoute),
    state,
    codeChallenge: verifier ? await oauth.calculatePKCECodeChallenge(verifier) : null,
  })
  deps.logger.info({ sessionId: bound.id }, 'sign-in link opened')
  return { kind: 'redirect', location, bindingCookie: cookie, session: bound }
}

async function findByLinkToken(
  deps: Deps,
  token: string,
): Promise<sessions.SessionRecord | undefined> {
  // Only well-formed tokens reach the database; the lookup is by hash (unique index).
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return undefined
  return sessions.findRecordByLinkHash(deps.db, sha256(token))
}

/** Where a session's sealed PKCE verifier belongs: it opens on this row only. */
export function verifierSealContext(session: Pick<AuthSession, 'id' | 'tenantId'>): SealContext {
  return {
    tenantId: session.tenantId,
    table: 'auth_sessions',
    rowId: session.id,
    column: 'code_verifier_sealed',
  }
}

export function isBoundTo(record: sessions.SessionRecord, bindingCookie: string | null): boolean {
  return (
    record.bindingHash !== null &&
    bindingCookie !== null &&
    hashesEqual(record.bindingHash, sha256(bindingCookie))
  )
}

export function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)
}
