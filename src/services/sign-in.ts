/**
 * Starting, opening, cancelling and reading sign-in sessions.
 *
 * - The link carries an opaque token of 256 random bits; only its SHA-256 is stored.
 * - A session is started for one callback URL (its integration's own, or the tenant's shared
 *   ones) and stores it as its redirect_uri, so the authorization request, the callback check and
 *   the token request all use the same bytes, whatever changes meanwhile.
 * - Opening the link (the POST of our page, only ever sent when the person presses its button)
 *   binds the session to that browser with a cookie whose hash is stored (first browser wins),
 *   and only then creates `state` (256 bits, hash stored), the PKCE verifier (sealed) and, for
 *   OpenID Connect, the nonce (derived from the state), so a link preview (GET) spends nothing.
 * - With `{tenant}` in the host of PUBLIC_BASE_URL, a link is served on its tenant's host only.
 * - A new link for the same conversation and integration cancels the older open ones.
 */
import { recordSessionEnded, recordSignInStarted } from '../observability/metrics.ts'
import { createHash, randomUUID } from 'node:crypto'
import { asSeenAt, type AuthSession, type RedirectRoute } from '../core/auth-session.ts'
import { buildAuthorizationUrl, renderAuthenticationMessage } from '../core/authorization-url.ts'
import { BadUserInputError, NotFoundError } from '../core/errors.ts'
import {
  isOpenIdConnect,
  openIdConnectMetadata,
  type OAuthIntegration,
} from '../core/integration.ts'
import {
  hasTenantHosts,
  publicBaseFor,
  redirectUrlFor,
  REDIRECT_ROUTES,
} from '../core/redirect-urls.ts'
import { stepUpProblems, toStepUp, type StepUpInput } from '../core/step-up.ts'
import type { SealContext } from '../crypto/sealer.ts'
import { randomToken, sha256, hashesEqual } from '../crypto/tokens.ts'
import * as sessions from '../db/auth-sessions.ts'
import { enforceLimit } from './rate-limits.ts'
import type { Deps } from './deps.ts'
import { callbackKeyOf, getIntegration, getIntegrationIncludingDeleted } from './integrations.ts'
import { type Principal, tenantById } from './tenants.ts'
import { fixedFieldLines } from '../logger.ts'

export const LINK_PATH = '/l/'
/** A link token as randomToken(32) writes it; nothing else reaches the database. */
const LINK_TOKEN = /^[A-Za-z0-9_-]{43}$/
/** Where a callback sends the browser on to: the session's result page (by id, nothing secret). */
export const RESULT_PATH = '/r/'
export const MAX_SESSIONS_LISTED = 100

export interface StartedSignIn {
  readonly session: AuthSession
  readonly authorizationLink: string
  readonly message: { text: string; buttonLabel: string; url: string }
}

export interface StartInput extends StepUpInput {
  readonly integrationId: string
  readonly conversationId: string
  readonly contactId?: string | null
  readonly redirectRoute?: RedirectRoute | null
}

export async function startSignIn(
  deps: Deps,
  principal: Principal,
  input: StartInput,
): Promise<StartedSignIn> {
  // Before anything is read: a flood of starts for one conversation costs a counter only.
  await enforceLimit(
    deps,
    'conversation',
    `${principal.tenantId}:${input.conversationId}`,
    'sign-ins started for this conversation',
  )
  const integration = await getIntegration(deps, principal.tenantId, input.integrationId)
  const problems = stepUpProblems(input, isOpenIdConnect(integration))
  if (problems.length > 0) {
    throw BadUserInputError.of(problems.map((p) => ({ ...p, field: `input.${p.field}` })))
  }
  const stepUp = toStepUp(input)
  const now = deps.now()
  const token = randomToken(32)
  const route = input.redirectRoute ?? 'IDP'
  const { session, superseded } = await sessions.insertSessionSuperseding(deps.db, {
    id: randomUUID(),
    tenantId: principal.tenantId,
    integrationId: integration.id,
    conversationId: input.conversationId,
    // One contact per conversation unless the caller names one.
    contactId: input.contactId ?? input.conversationId,
    redirectRoute: route,
    redirectUri: redirectUrlFor(
      deps.config.publicBaseUrl,
      principal.tenantSlug,
      route,
      callbackKeyOf(integration),
    ),
    linkHash: sha256(token),
    expiresAt: new Date(now.getTime() + integration.sessionTtlSeconds * 1000),
    prompt: stepUp.prompt,
    maxAgeSeconds: stepUp.maxAgeSeconds,
    loginHint: stepUp.loginHint,
    acrValues: stepUp.acrValues === null ? null : JSON.stringify(stepUp.acrValues),
    now,
  })
  // The new session has no subscribers yet (they read it when they subscribe); the older ones may.
  for (const old of superseded) deps.events.publish(old.id)
  recordSignInStarted()
  for (const old of superseded) recordSessionEnded(old)
  fixedFieldLines(deps.logger).info(
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
    recordSessionEnded(cancelled)
    deps.logger.info({ sessionId: id }, 'sign-in cancelled')
    return cancelled
  }
  // Already finished (or expired): cancelling changes nothing, and says so in the status.
  if (current.status === 'PENDING' || current.status === 'OPENED')
    return getSession(deps, tenantId, id)
  return current
}

/** The integration of a session, also after the integration was deleted. */
export function integrationOfSession(deps: Deps, session: AuthSession): Promise<OAuthIntegration> {
  return getIntegrationIncludingDeleted(deps, session.tenantId, session.integrationId)
}

// ---------------------------------------------------------------------------------------------
// The end user's side: the link page and its POST.

export type LinkView =
  | { readonly kind: 'unknown' }
  | {
      readonly kind: 'ready'
      readonly business: string
      readonly session: AuthSession
      /** The host of the provider's sign-in page, which the page's button names. */
      readonly providerHost: string
    }
  | { readonly kind: 'in_use'; readonly business: string }
  /** This browser's own sign-in: its callback is exchanging the code right now. */
  | { readonly kind: 'in_progress'; readonly business: string }
  | { readonly kind: 'finished'; readonly business: string; readonly session: AuthSession }

/** Reads the browser's binding cookie for a session (the cookie name depends on the session). */
export type CookieLookup = (sessionId: string) => string | null

/** What an end user's request brings that the checks need. */
export interface BrowserRequest {
  readonly cookieFor: CookieLookup
  /** The values of every binding cookie the request carries, whichever session they are for. */
  readonly bindingCookies: readonly string[]
  /** The host the browser addressed (a trusted proxy's X-Forwarded-Host), lower case. */
  readonly host: string
}

/**
 * Whether a request for a tenant's session came to that tenant's host: always, without
 * `{tenant}` in the host of PUBLIC_BASE_URL (then every tenant shares the host).
 */
export function onTenantHost(deps: Deps, tenantSlug: string, host: string): boolean {
  if (!hasTenantHosts(deps.config.publicBaseUrl)) return true
  return new URL(publicBaseFor(deps.config.publicBaseUrl, tenantSlug)).host === host.toLowerCase()
}

/** What the link shows on GET. Changes nothing: link previews and scanners are harmless. */
export async function viewLink(
  deps: Deps,
  token: string,
  request: BrowserRequest,
): Promise<LinkView> {
  const link = await lookUpLink(deps, token, request)
  if (link.kind !== 'ready') return link
  return {
    kind: 'ready',
    business: link.business,
    session: link.session,
    providerHost: new URL(link.integration.authorizationUrl).host,
  }
}

/** A link that may continue, with what opening it needs beyond the view. */
interface ReadyLink {
  readonly kind: 'ready'
  readonly business: string
  readonly session: AuthSession
  readonly record: sessions.SessionRecord
  readonly bindingCookie: string | null
  readonly tenantSlug: string
  readonly integration: OAuthIntegration
}

async function lookUpLink(
  deps: Deps,
  token: string,
  request: BrowserRequest,
): Promise<ReadyLink | Exclude<LinkView, { kind: 'ready' }>> {
  const record = await findByLinkToken(deps, token)
  if (!record) return { kind: 'unknown' }
  const tenant = await tenantById(deps, record.session.tenantId)
  const tenantSlug = tenant?.slug ?? ''
  // Another tenant's host: as if the link did not exist (no hint that it does elsewhere).
  if (!onTenantHost(deps, tenantSlug, request.host)) return { kind: 'unknown' }
  const bindingCookie = request.cookieFor(record.session.id)
  const business = tenant?.name ?? ''
  const session = asSeenAt(record.session, deps.now())
  if (session.status === 'PENDING' || session.status === 'OPENED') {
    if (session.status === 'OPENED' && !isBoundTo(record, bindingCookie)) {
      return { kind: 'in_use', business }
    }
    if (record.exchangeClaimedAt !== null) return { kind: 'in_progress', business }
    const integration = await integrationOfSession(deps, record.session)
    return { kind: 'ready', business, session, record, bindingCookie, tenantSlug, integration }
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
  request: BrowserRequest,
  hint: LinkHint | null = null,
): Promise<OpenOutcome> {
  const hinted = hint ? await openHinted(deps, token, request, hint) : undefined
  if (hinted) return hinted
  const link = await lookUpLink(deps, token, request)
  if (link.kind !== 'ready') return link
  const { record, bindingCookie, integration } = link
  // Reuse the cookie of the browser already bound; a new browser gets a new random one.
  const cookie =
    bindingCookie !== null && isBoundTo(record, bindingCookie) ? bindingCookie : randomToken(32)
  const trip = newTrip(deps, integration, record.session)
  const bound = await sessions.bindSession(deps.db, {
    id: record.session.id,
    bindingHash: sha256(cookie),
    stateHash: trip.stateHash,
    codeVerifierSealed: trip.codeVerifierSealed,
    openid: trip.openid,
    now: deps.now(),
  })
  if (!bound) {
    // Another browser won the race, or the session ended meanwhile: show what it is now.
    const now = await viewLink(deps, token, request)
    return now.kind === 'ready' ? { kind: 'in_use', business: now.business } : now
  }
  if (record.session.status === 'PENDING') deps.events.publish(bound.id)
  fixedFieldLines(deps.logger).info({ sessionId: bound.id }, 'sign-in link opened')
  return {
    kind: 'redirect',
    location: tripLocation(deps, integration, trip, bound, link.tenantSlug),
    bindingCookie: cookie,
    session: bound,
  }
}

/** What one trip to the provider needs: a fresh state and, with PKCE, a code verifier. */
interface Trip {
  readonly state: string
  readonly stateHash: Uint8Array
  readonly verifier: string | null
  readonly codeVerifierSealed: string | null
  readonly openid: boolean
}

function newTrip(
  deps: Deps,
  integration: OAuthIntegration,
  session: { readonly id: string; readonly tenantId: string },
): Trip {
  const state = randomToken(32)
  // As oauth4webapi's generateRandomCodeVerifier makes it (32 random bytes, base64url: 43 of the
  // characters RFC 7636 allows), from the pool: its getRandomValues call cost more than the rest.
  const verifier = integration.pkce ? randomToken(32) : null
  return {
    state,
    stateHash: sha256(state),
    verifier,
    codeVerifierSealed: verifier ? deps.sealer.seal(verifier, verifierSealContext(session)) : null,
    openid: openIdConnectMetadata(integration) !== null,
  }
}

/** The provider's authorization URL for `trip` of a session bound to it. */
function tripLocation(
  deps: Deps,
  integration: OAuthIntegration,
  trip: Trip,
  session: AuthSession,
  tenantSlug: string,
): string {
  return buildAuthorizationUrl(integration, {
    redirectUri: redirectUriOf(deps, session, tenantSlug),
    state: trip.state,
    codeChallenge: trip.verifier ? pkceChallenge(trip.verifier) : null,
    nonce: trip.openid ? nonceFor(trip.state) : null,
    stepUp: session.stepUp,
  })
}

/** What the continue page's hidden fields say the link is for: ids only, proven by the link. */
export interface LinkHint {
  readonly sessionId: string
  readonly tenantId: string
  readonly integrationId: string
}

/**
 * The POST in one statement (db/auth-sessions.ts bindSessionByLink), where the page's ids and
 * the link agree and the session may be bound by this browser; undefined otherwise, and then the
 * link is read and every case told apart as before. The tenant and integration come from the
 * caches: ids that are not the link's bind nothing, so what was read for them is not used.
 */
async function openHinted(
  deps: Deps,
  token: string,
  request: BrowserRequest,
  hint: LinkHint,
): Promise<OpenOutcome | undefined> {
  if (
    !LINK_TOKEN.test(token) ||
    ![hint.sessionId, hint.tenantId, hint.integrationId].every(isUuid)
  ) {
    return undefined
  }
  const tenant = await tenantById(deps, hint.tenantId)
  if (!tenant || !onTenantHost(deps, tenant.slug, request.host)) return undefined
  const integration = await getIntegrationIncludingDeleted(
    deps,
    hint.tenantId,
    hint.integrationId,
  ).catch(() => undefined)
  if (!integration) return undefined
  const held = request.cookieFor(hint.sessionId)
  const fresh = randomToken(32)
  const trip = newTrip(deps, integration, { id: hint.sessionId, tenantId: hint.tenantId })
  const bound = await sessions.bindSessionByLink(deps.db, {
    id: hint.sessionId,
    linkHash: sha256(token),
    tenantId: hint.tenantId,
    integrationId: hint.integrationId,
    newBindingHash: sha256(fresh),
    currentBindingHash: held === null ? null : sha256(held),
    stateHash: trip.stateHash,
    codeVerifierSealed: trip.codeVerifierSealed,
    openid: trip.openid,
    now: deps.now(),
  })
  if (!bound) return undefined
  // A PENDING session took the fresh binding; an OPENED one kept this browser's.
  const opened = bound.bindingHash !== null && hashesEqual(bound.bindingHash, sha256(fresh))
  if (opened) deps.events.publish(bound.session.id)
  fixedFieldLines(deps.logger).info({ sessionId: bound.session.id }, 'sign-in link opened')
  return {
    kind: 'redirect',
    location: tripLocation(deps, integration, trip, bound.session, tenant.slug),
    bindingCookie: opened ? fresh : (held as string),
    session: bound.session,
  }
}

/**
 * The redirect_uri of a session: the one it stored when it started, or, for a session of an
 * earlier version (which stored none), the bare route it was started with.
 */
export function redirectUriOf(deps: Deps, session: AuthSession, tenantSlug: string): string {
  return (
    session.redirectUri ??
    redirectUrlFor(deps.config.publicBaseUrl, tenantSlug, session.redirectRoute, null)
  )
}

export function resultUrlFor(deps: Deps, tenantSlug: string, sessionId: string): string {
  return `${publicBaseFor(deps.config.publicBaseUrl, tenantSlug)}${RESULT_PATH}${sessionId}`
}

/** The callback path (route and key) a session accepts: its redirect_uri's. */
export function callbackPathOf(session: AuthSession): string {
  if (session.redirectUri === null) return REDIRECT_ROUTES[session.redirectRoute]
  return new URL(session.redirectUri).pathname
}

/**
 * The OpenID Connect nonce of a sign-in, derived from its state (both 256 bits; the state's hash
 * is stored, the state itself only travels with the browser): an ID token minted for another
 * authorization request carries another nonce, and nothing more needs storing (OIDC Core
 * §15.5.2 suggests the same construction from a cookie).
 */
export function nonceFor(state: string): string {
  return createHash('sha256').update(`nonce:${state}`).digest('base64url')
}

async function findByLinkToken(
  deps: Deps,
  token: string,
): Promise<sessions.SessionRecord | undefined> {
  // Only well-formed tokens reach the database; the lookup is by hash (unique index).
  if (!LINK_TOKEN.test(token)) return undefined
  return sessions.findRecordByLinkHash(deps.db, sha256(token))
}

/**
 * The S256 code challenge of a verifier (RFC 7636 §4.2): BASE64URL(SHA256(verifier)). What
 * oauth4webapi's calculatePKCECodeChallenge computes, without WebCrypto's asynchronous round,
 * which cost more than the rest of the hash on every Continue.
 */
export function pkceChallenge(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url')
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
