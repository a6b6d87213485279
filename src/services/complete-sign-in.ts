/**
 * The callback: the provider sends the browser back with `code` and `state` (or `error`).
 *
 * Refused without any change to the session (and without any token request):
 * - a repeated or oversized parameter, or no `state`;
 * - a `state` that matches no session;
 * - a callback on another route than the one the session was started with;
 * - a browser without the session's binding cookie;
 * - a session that is no longer OPENED (finished, cancelled, expired) or whose code exchange
 *   was already claimed (replay, or a concurrent duplicate).
 * Then exactly one request claims the exchange (compare-and-set) and makes the token request;
 * whatever happens after the claim (a provider failure, a bug, a failed contact write) ends the
 * session AUTHENTICATED or FAILED, never claimed and OPENED. Only when the database cannot take
 * even the FAILED write does it stay OPENED, and it reads EXPIRED from its expiry on.
 */
import { authFailure, type AuthFailureReport } from '../core/auth-failure.ts'
import { asSeenAt, type AuthSession } from '../core/auth-session.ts'
import type { Identity } from '../core/identity.ts'
import type { OAuthIntegration } from '../core/integration.ts'
import { REDIRECT_ROUTES, redirectUrlFor } from '../core/redirect-urls.ts'
import { sha256 } from '../crypto/tokens.ts'
import * as sessions from '../db/auth-sessions.ts'
import { fillContact } from '../db/contacts.ts'
import { findTenantById } from '../db/tenants.ts'
import type { Deps } from './deps.ts'
import { mapWithSavedMapping } from './identity-mapping.ts'
import { getIntegrationIncludingDeleted, openClientSecret } from './integrations.ts'
import { isBoundTo, verifierSealContext, type CookieLookup } from './sign-in.ts'

export type CallbackOutcome =
  | { readonly kind: 'authenticated'; readonly session: AuthSession }
  | { readonly kind: 'failed'; readonly session: AuthSession }
  /** Refused before the claim: nothing changed. `reason` is for the log and the page. */
  | {
      readonly kind: 'refused'
      readonly reason:
        | 'bad_request'
        | 'unknown_state'
        | 'wrong_route'
        | 'wrong_browser'
        | 'already_used'
        | 'expired'
        | 'cancelled'
      readonly sessionId?: string
    }

const SINGLE = ['code', 'state', 'iss', 'error', 'error_description', 'error_uri'] as const
const MAX_STATE = 512
const MAX_CODE = 4096

export async function completeSignIn(
  deps: Deps,
  url: URL,
  cookieFor: CookieLookup,
): Promise<CallbackOutcome> {
  const params = url.searchParams
  for (const name of SINGLE) {
    if (params.getAll(name).length > 1) {
      return refuse(deps, 'bad_request', `repeated parameter ${name}`)
    }
  }
  const state = params.get('state')
  if (!state || state.length > MAX_STATE || (params.get('code')?.length ?? 0) > MAX_CODE) {
    return refuse(deps, 'bad_request', state ? 'oversized parameter' : 'no state parameter')
  }
  const record = await sessions.findRecordByStateHash(deps.db, sha256(state))
  if (!record) return refuse(deps, 'unknown_state', 'state matches no session')
  const sessionId = record.session.id
  if (REDIRECT_ROUTES[record.session.redirectRoute] !== url.pathname) {
    return refuse(
      deps,
      'wrong_route',
      `session started for ${record.session.redirectRoute}`,
      sessionId,
    )
  }
  if (!isBoundTo(record, cookieFor(sessionId))) {
    return refuse(deps, 'wrong_browser', 'binding cookie missing or foreign', sessionId)
  }
  const now = deps.now()
  const seen = asSeenAt(record.session, now)
  if (seen.status === 'EXPIRED') return refuse(deps, 'expired', 'session expired', sessionId)
  if (seen.status === 'CANCELLED') return refuse(deps, 'cancelled', 'session cancelled', sessionId)
  if (seen.status !== 'OPENED' || record.exchangeClaimedAt !== null) {
    return refuse(deps, 'already_used', `session is ${seen.status}`, sessionId)
  }
  if (!(await sessions.claimExchange(deps.db, sessionId, now))) {
    return refuse(deps, 'already_used', 'another callback claimed the exchange', sessionId)
  }
  // The claim changes no status, so subscribers are told only when the session ends (settled).

  let redeemed: Redeemed
  try {
    redeemed = await redeem(deps, record, url, state)
  } catch (error) {
    // A bug must not leave the session claimed forever: it fails, and the detail goes to the log.
    deps.logger.error({ err: error, sessionId }, 'sign-in completion failed unexpectedly')
    redeemed = INTERNAL_ERROR
  }
  if ('failure' in redeemed) return fail(deps, record.session, redeemed)
  return authenticate(deps, record.session, redeemed)
}

type Redeemed =
  AuthFailureReport | { readonly identity: Identity; readonly integration: OAuthIntegration }

const INTERNAL_ERROR = authFailure(
  'internal_error',
  'the service failed while completing the sign-in',
)

async function redeem(
  deps: Deps,
  record: sessions.SessionRecord,
  url: URL,
  state: string,
): Promise<Redeemed> {
  const session = record.session
  const integration = await getIntegrationIncludingDeleted(
    deps,
    session.tenantId,
    session.integrationId,
  )
  const tenant = await findTenantById(deps.db, session.tenantId)
  const redirectUri = redirectUrlFor(
    deps.config.publicBaseUrl,
    tenant?.slug ?? '',
    session.redirectRoute,
  )
  const clientSecret = await openClientSecret(deps, integration)
  const codeVerifier = record.codeVerifierSealed
    ? deps.sealer.open(record.codeVerifierSealed, verifierSealContext(session))
    : null

  // One deadline for the whole conversation with the provider, so the end user's page answers
  // within it however the time splits between the token and WhoAmI calls.
  const deadlineAt = Date.now() + deps.provider.deadlineMs
  const tokens = await deps.provider.exchangeCode({
    integration,
    clientSecret,
    callbackUrl: url,
    expectedState: state,
    issuer: { expected: integration.issuer, required: false },
    redirectUri,
    oidc: null,
    codeVerifier,
    deadlineMs: deps.provider.deadlineMs,
  })
  if (!tokens.ok) return tokens.error

  let payload: unknown = {}
  if (integration.whoAmIUrl) {
    const left = deadlineAt - Date.now()
    if (left < 50) {
      return authFailure(
        'provider_timeout',
        'WhoAmI request: no time was left after the token request',
      )
    }
    const whoAmI = await deps.provider.fetchWhoAmI(integration, tokens.value.accessToken, left)
    if (!whoAmI.ok) return whoAmI.error
    payload = whoAmI.value
  }
  // The access token goes out of scope here: tokens are never stored (design item 7).
  const mapped = mapWithSavedMapping(integration.whoAmIMapping, payload, integration)
  if (!mapped.ok) {
    return authFailure(
      'mapping_failed',
      `the WhoAmI mapping does not compile: ${mapped.error.message}`,
    )
  }
  const { identity, errors } = mapped.outcome
  if (!identity) {
    return authFailure(
      'mapping_failed',
      `the WhoAmI answer did not map to an identity: ${errors.map((e) => e.message).join('; ')}`,
    )
  }
  return { identity, integration }
}

async function fail(
  deps: Deps,
  session: AuthSession,
  report: AuthFailureReport,
): Promise<CallbackOutcome> {
  const failed = await sessions.completeSession(
    deps.db,
    session.id,
    { failure: report.failure },
    deps.now(),
  )
  deps.logger.warn(
    {
      sessionId: session.id,
      failureCode: report.failure.code,
      message: report.failure.message,
      detail: report.detail,
    },
    'sign-in failed',
  )
  return settled(deps, session, failed, 'failed')
}

/** AUTHENTICATED and the contact filled, in one transaction; FAILED if that cannot be written. */
async function authenticate(
  deps: Deps,
  session: AuthSession,
  { identity, integration }: Exclude<Redeemed, AuthFailureReport>,
): Promise<CallbackOutcome> {
  const now = deps.now()
  let done: AuthSession | undefined
  try {
    done = await deps.db.transaction().execute(async (trx) => {
      const authenticated = await sessions.completeSession(trx, session.id, { identity }, now)
      if (!authenticated) return undefined
      const { email, userName, fullName, firstName, lastName } = identity
      await fillContact(trx, {
        tenantId: session.tenantId,
        contactId: session.contactId,
        fields: { email, userName, fullName, firstName, lastName },
        overwrite: integration.overwriteContact,
        sessionId: session.id,
        integrationId: session.integrationId,
        now,
      })
      return authenticated
    })
  } catch (error) {
    // Rolled back: the session is still claimed and OPENED, so end it rather than leave it so.
    deps.logger.error({ err: error, sessionId: session.id }, 'storing the identity failed')
    return fail(deps, session, INTERNAL_ERROR)
  }
  deps.logger.info(
    { sessionId: session.id },
    done ? 'sign-in authenticated' : 'sign-in ended elsewhere before it authenticated',
  )
  return settled(deps, session, done, 'authenticated')
}

async function settled(
  deps: Deps,
  session: AuthSession,
  written: AuthSession | undefined,
  kind: 'authenticated' | 'failed',
): Promise<CallbackOutcome> {
  if (written) {
    deps.events.publish(session.id)
    return { kind, session: written }
  }
  // Cancelled (or the integration deleted) while the provider was being called: it stays so.
  const now = await sessions.findSession(deps.db, session.tenantId, session.id)
  return {
    kind: 'refused',
    reason: now?.status === 'EXPIRED' ? 'expired' : 'cancelled',
    sessionId: session.id,
  }
}

function refuse(
  deps: Deps,
  reason: Extract<CallbackOutcome, { kind: 'refused' }>['reason'],
  detail: string,
  sessionId?: string,
): CallbackOutcome {
  deps.logger.warn({ reason, detail, sessionId }, 'callback refused')
  return sessionId ? { kind: 'refused', reason, sessionId } : { kind: 'refused', reason }
}
