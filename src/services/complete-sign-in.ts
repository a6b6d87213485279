/**
 * The callback: the provider sends the browser back with `code` and `state` (or `error`).
 *
 * Refused without any change to the session (and without any token request):
 * - a repeated or oversized parameter, or no `state`;
 * - a `state` that matches no session;
 * - a callback on another URL than the one the session was started with: another route, or
 *   another integration's key (the mix-up defence: a code the provider issued for one
 *   integration's client is never redeemed at another integration's token endpoint);
 * - with `{tenant}` in the host of PUBLIC_BASE_URL, a callback on another tenant's host;
 * - a browser without the session's binding cookie;
 * - a session that is no longer OPENED (finished, cancelled, expired) or whose code exchange
 *   was already claimed (replay, or a concurrent duplicate).
 * Then exactly one request claims the exchange (compare-and-set) and the provider gateway checks
 * the callback's `iss` (required on the shared URLs and where the provider's metadata says it
 * sends one) before it makes the token request; an OpenID Connect sign-in's ID token is
 * validated before any token is used. Whatever happens after the claim (a provider failure, a
 * bug, a failed contact write) ends the session AUTHENTICATED, AWAITING_CONFIRMATION or FAILED,
 * never claimed and OPENED. Only when the database cannot take even the FAILED write does it
 * stay OPENED, and it reads EXPIRED from its expiry on.
 *
 * The identity: the ID token's claims first, then what the WhoAmI answer maps to fills the gaps
 * (core/identity.ts); a WhoAmI or mapped subject other than the ID token's fails the sign-in.
 * The contact is updated by core/contact.ts's rules in the session's own transaction, or, when
 * the integration asks for a confirmation code, only once the code comes back (confirm-sign-in.ts).
 */
import { recordSessionEnded } from '../observability/metrics.ts'
import { randomInt } from 'node:crypto'
import { authFailure, type AuthFailureReport } from '../core/auth-failure.ts'
import { asSeenAt, type AuthSession } from '../core/auth-session.ts'
import { withUserInfoClaims, type Identity } from '../core/identity.ts'
import { openIdConnectMetadata, type OAuthIntegration } from '../core/integration.ts'
import { parseCallbackPath } from '../core/redirect-urls.ts'
import { acrSatisfied } from '../core/step-up.ts'
import type { SealContext } from '../crypto/sealer.ts'
import { sha256 } from '../crypto/tokens.ts'
import { insertAuditEvent } from '../db/audit.ts'
import * as sessions from '../db/auth-sessions.ts'
import { applyIdentityToContact, type ContactSnapshot } from '../db/contacts.ts'
import { planContactUpdate, type ContactPolicy } from '../core/contact.ts'
import { tenantById } from './tenants.ts'
import type { Deps, IdTokenClaims } from './deps.ts'
import { mapWithSavedMapping } from './identity-mapping.ts'
import { getIntegrationIncludingDeleted, openClientSecret } from './integrations.ts'
import {
  callbackPathOf,
  isBoundTo,
  resultUrlFor,
  nonceFor,
  onTenantHost,
  redirectUriOf,
  verifierSealContext,
  type BrowserRequest,
} from './sign-in.ts'
import { fixedFieldLines } from '../logger.ts'

export type RefusalReason =
  | 'bad_request'
  | 'unknown_state'
  | 'wrong_route'
  | 'wrong_host'
  | 'wrong_browser'
  | 'already_used'
  | 'expired'
  | 'cancelled'

/** How a callback ended its session; `resultUrl` is the page the browser is sent on to. */
export type Ended = {
  readonly kind: 'authenticated' | 'awaiting_confirmation' | 'failed'
  readonly session: AuthSession
}

export type CallbackOutcome = (Ended & { readonly resultUrl: string }) | Refused

/** Refused before the claim: nothing changed. `reason` is for the log, the audit and the page. */
export type Refused = {
  readonly kind: 'refused'
  readonly reason: RefusalReason
  readonly sessionId?: string
}

/** Who sent a callback, for the audit record of a refused one (never anything secret). */
export interface Requester {
  readonly clientAddress: string | null
  readonly userAgent: string | null
}

const SINGLE = ['code', 'state', 'iss', 'error', 'error_description', 'error_uri'] as const
const MAX_STATE = 512
const MAX_CODE = 4096
/** A confirmation code: this many digits, this many tries, valid this long once shown. */
export const CONFIRMATION = { digits: 6, attempts: 5, validMs: 5 * 60_000 } as const

export async function completeSignIn(
  deps: Deps,
  url: URL,
  request: BrowserRequest & Requester,
): Promise<CallbackOutcome> {
  const params = url.searchParams
  for (const name of SINGLE) {
    if (params.getAll(name).length > 1) {
      return refuse(deps, request, 'bad_request', `repeated parameter ${name}`)
    }
  }
  const state = params.get('state')
  if (!state || state.length > MAX_STATE || (params.get('code')?.length ?? 0) > MAX_CODE) {
    return refuse(
      deps,
      request,
      'bad_request',
      state ? 'oversized parameter' : 'no state parameter',
    )
  }
  const now = deps.now()
  // One round trip finds the session and, when the database alone can tell this callback is
  // good, claims its code exchange; the checks below still decide, and a claim they refuse is
  // released, so a refused callback changes nothing.
  const found = await sessions.claimByState(deps.db, {
    stateHash: sha256(state),
    bindingHashes: request.bindingCookies.map((value) => sha256(value).toString('hex')),
    callbackPath: url.pathname,
    now,
  })
  if (!found) return refuse(deps, request, 'unknown_state', 'state matches no session')
  const { record } = found
  const session = record.session
  const refuseClaimed = async (reason: RefusalReason, detail: string) => {
    if (found.claimed) await sessions.releaseClaim(deps.db, record, now)
    return refuse(deps, request, reason, detail, session)
  }
  if (parseCallbackPath(url.pathname) === null || !callbackPathOf(session).endsWith(url.pathname)) {
    return refuseClaimed('wrong_route', 'not the callback URL of the session')
  }
  const tenant = await tenantById(deps, session.tenantId)
  const tenantSlug = tenant?.slug ?? ''
  if (!onTenantHost(deps, tenantSlug, request.host)) {
    return refuseClaimed('wrong_host', "not the host of the session's tenant")
  }
  if (!isBoundTo(record, request.cookieFor(session.id))) {
    return refuseClaimed('wrong_browser', 'binding cookie missing or foreign')
  }
  const seen = asSeenAt(session, now)
  if (seen.status === 'EXPIRED') return refuseClaimed('expired', 'session expired')
  if (seen.status === 'CANCELLED') return refuseClaimed('cancelled', 'session cancelled')
  if (seen.status !== 'OPENED' || record.exchangeClaimedAt !== null) {
    return refuseClaimed('already_used', `session is ${seen.status}`)
  }
  if (!found.claimed && !(await sessions.claimExchange(deps.db, session.id, now))) {
    return refuse(deps, request, 'already_used', 'another callback claimed the exchange', session)
  }
  // The claim changes no status, so subscribers are told only when the session ends (settled).

  let redeemed: Redeemed
  try {
    redeemed = await redeem(deps, record, url, state, tenantSlug)
  } catch (error) {
    // A bug must not leave the session claimed forever: it fails, and the detail goes to the log.
    deps.logger.error(
      { err: error, sessionId: session.id },
      'sign-in completion failed unexpectedly',
    )
    redeemed = { ...INTERNAL_ERROR, callbackIssuer: null }
  }
  const ended =
    'failure' in redeemed
      ? await fail(deps, session, redeemed, redeemed.callbackIssuer)
      : redeemed.integration.requireConfirmationCode
        ? await awaitConfirmation(deps, session, redeemed)
        : await authenticate(deps, session, redeemed, found.contact)
  if (ended.kind === 'refused') return ended
  return { ...ended, resultUrl: resultUrlFor(deps, tenantSlug, session.id) }
}

type Redeemed =
  | (AuthFailureReport & { readonly callbackIssuer: string | null })
  | {
      readonly identity: Identity
      readonly integration: OAuthIntegration
      readonly callbackIssuer: string | null
    }

const INTERNAL_ERROR = authFailure(
  'internal_error',
  'the service failed while completing the sign-in',
)

async function redeem(
  deps: Deps,
  record: sessions.SessionRecord,
  url: URL,
  state: string,
  tenantSlug: string,
): Promise<Redeemed> {
  const session = record.session
  const integration = await getIntegrationIncludingDeleted(
    deps,
    session.tenantId,
    session.integrationId,
  )
  const clientSecret = await openClientSecret(deps, integration)
  const codeVerifier = record.codeVerifierSealed
    ? deps.sealer.open(record.codeVerifierSealed, verifierSealContext(session))
    : null
  const metadata = integration.providerMetadata
  const openid = session.openid ? openIdConnectMetadata(integration) : null
  // The shared callback URLs serve several integrations: only the provider's `iss` tells which
  // one answered (RFC 9207 §2.4), so it is required there.
  const onSharedUrl =
    session.redirectUri !== null && parseCallbackPath(url.pathname)?.callbackKey === null

  if (session.openid && openid === null) {
    // Opened as OpenID Connect, but the integration has no issuer keys any more (changed
    // meanwhile): the ID token due could not be checked, so the code is not redeemed at all.
    return {
      ...authFailure(
        'id_token_invalid',
        'ID token: the integration changed since this sign-in started and has no issuer keys to check it with',
      ),
      callbackIssuer: url.searchParams.get('iss'),
    }
  }
  // One deadline for the whole conversation with the provider, so the end user's page answers
  // within it however the time splits between the token and WhoAmI calls.
  const deadlineAt = Date.now() + deps.provider.deadlineMs
  const tokens = await deps.provider.exchangeCode({
    integration,
    clientSecret,
    callbackUrl: url,
    expectedState: state,
    issuer: {
      expected: integration.issuer,
      required: onSharedUrl || (metadata?.issParameterSupported ?? false),
    },
    redirectUri: redirectUriOf(deps, session, tenantSlug),
    codeVerifier,
    oidc:
      openid === null
        ? null
        : {
            nonce: nonceFor(state),
            issuer: openid.issuer,
            jwksUri: openid.jwksUri,
            signingAlgorithms: asymmetricOnly(openid.signingAlgorithms),
            maxAgeSeconds: session.stepUp.maxAgeSeconds,
          },
    deadlineMs: deps.provider.deadlineMs,
  })
  if (!tokens.ok) return { ...tokens.error, callbackIssuer: url.searchParams.get('iss') }
  const { idToken, callbackIssuer } = tokens.value
  const failed = (code: Parameters<typeof authFailure>[0], message: string) => ({
    ...authFailure(code, message),
    callbackIssuer,
  })
  if (
    idToken !== null &&
    !acrSatisfied(session.stepUp, typeof idToken.acr === 'string' ? idToken.acr : null)
  ) {
    return failed(
      'insufficient_authentication',
      `ID token: acr is ${typeof idToken.acr === 'string' ? `"${idToken.acr.slice(0, 64)}"` : 'missing'}, not one of the acrValues asked for`,
    )
  }

  let payload: unknown = {}
  if (integration.whoAmIUrl) {
    const left = deadlineAt - Date.now()
    if (left < 50) {
      return failed('provider_timeout', 'WhoAmI request: no time was left after the token request')
    }
    const whoAmI = await deps.provider.fetchWhoAmI(integration, tokens.value.accessToken, left)
    if (!whoAmI.ok) return { ...whoAmI.error, callbackIssuer }
    payload = whoAmI.value
    const mismatch = subjectMismatch(idToken, payload)
    if (mismatch) return failed('subject_mismatch', `WhoAmI answer: ${mismatch}`)
  }
  // The access token goes out of scope here: tokens are never stored.
  const fromUserInfo =
    idToken !== null &&
    integration.whoAmIUrl !== null &&
    integration.whoAmIUrl === integration.providerMetadata?.userinfoEndpoint
  const mapped = mapWithSavedMapping(integration.whoAmIMapping, payload, {
    splitFullName: integration.splitFullName,
    claims: fromUserInfo ? withUserInfoClaims(idToken, payload) : idToken,
    issuer: integration.issuer,
  })
  if (!mapped.ok) {
    return failed('mapping_failed', `the WhoAmI mapping does not compile: ${mapped.error.message}`)
  }
  const { identity, errors } = mapped.outcome
  if (!identity) {
    return failed(
      'mapping_failed',
      `the WhoAmI answer did not map to an identity: ${errors.map((e) => e.message).join('; ')}`,
    )
  }
  const mappedMismatch = subjectMismatch(idToken, { sub: identity.attributes.subject })
  if (mappedMismatch) return failed('subject_mismatch', `the mapping's subject: ${mappedMismatch}`)
  return { identity, integration, callbackIssuer }
}

/**
 * The algorithms an ID token may be signed with: those the issuer announces, but never the
 * HMAC ones (HS*), whose key is the client secret, which the tenant's admins know too; many
 * issuers list HS256 without using it. Null (RS256 only) when nothing asymmetric is left.
 */
function asymmetricOnly(algorithms: readonly string[] | null): readonly string[] | null {
  const kept = (algorithms ?? []).filter((a) => !/^HS/i.test(a) && a !== 'none')
  return kept.length > 0 ? kept : null
}

/**
 * OIDC Core §5.3.2: the `sub` of a userinfo (WhoAmI) answer must be the ID token's. Only a `sub`
 * that is there and differs is a mismatch (a WhoAmI endpoint that is not userinfo may have none).
 */
function subjectMismatch(idToken: IdTokenClaims | null, answer: unknown): string | null {
  if (idToken === null || typeof answer !== 'object' || answer === null) return null
  const sub = (answer as Record<string, unknown>).sub
  if (sub === undefined || sub === null) return null
  if ((typeof sub === 'string' || typeof sub === 'number') && String(sub) === idToken.sub) {
    return null
  }
  return "sub is not the ID token's sub"
}

async function fail(
  deps: Deps,
  session: AuthSession,
  report: AuthFailureReport,
  callbackIssuer: string | null,
): Promise<Ended | Refused> {
  const failed = await sessions.endCallback(
    deps.db,
    session.id,
    { kind: 'failed', failure: report.failure },
    callbackIssuer,
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

/** Where a session's sealed confirmation code belongs: it opens on this row only. */
export function confirmationSealContext(
  session: Pick<AuthSession, 'id' | 'tenantId'>,
): SealContext {
  return {
    tenantId: session.tenantId,
    table: 'auth_sessions',
    rowId: session.id,
    column: 'confirmation_code_sealed',
  }
}

/** A confirmation code: CONFIRMATION.digits uniformly random decimal digits. */
export function newConfirmationCode(): string {
  return String(randomInt(0, 10 ** CONFIRMATION.digits)).padStart(CONFIRMATION.digits, '0')
}

/** The identity waits, unseen, for the code the result page will show; the contact is untouched. */
async function awaitConfirmation(
  deps: Deps,
  session: AuthSession,
  { identity, callbackIssuer }: Exclude<Redeemed, AuthFailureReport>,
): Promise<Ended | Refused> {
  const code = newConfirmationCode()
  const waiting = await sessions.endCallback(
    deps.db,
    session.id,
    {
      kind: 'awaiting_confirmation',
      identity,
      confirmationCodeSealed: deps.sealer.seal(code, confirmationSealContext(session)),
      attempts: CONFIRMATION.attempts,
    },
    callbackIssuer,
    deps.now(),
  )
  deps.logger.info({ sessionId: session.id }, 'sign-in awaits its confirmation code')
  return settled(deps, session, waiting, 'awaiting_confirmation')
}

/** Thrown inside the transaction when the session ended elsewhere: the contact write rolls back. */
class EndedElsewhere extends Error {}

/**
 * AUTHENTICATED and the contact updated, both or neither; FAILED if that cannot be written. One
 * statement where the contact is still as the callback's first statement saw it and the plan
 * is no CONFLICT; otherwise (a concurrent sign-in into the same contact, a conflict to audit) a
 * transaction that locks the contact and plans again.
 */
async function authenticate(
  deps: Deps,
  session: AuthSession,
  { identity, integration, callbackIssuer }: Exclude<Redeemed, AuthFailureReport>,
  contact: ContactSnapshot,
): Promise<Ended | Refused> {
  let done: AuthSession | undefined
  try {
    done = await authenticateAtOnce(deps, session, identity, integration, callbackIssuer, contact)
    done ??= await deps.db.transaction().execute(async (trx) => {
      const now = deps.now()
      const contactUpdate = await updateContact(trx, deps, session, identity, integration, now)
      const authenticated = await sessions.endCallback(
        trx,
        session.id,
        { kind: 'authenticated', identity, contactUpdate },
        callbackIssuer,
        now,
      )
      if (!authenticated) throw new EndedElsewhere()
      return authenticated
    })
  } catch (error) {
    if (!(error instanceof EndedElsewhere)) {
      // Rolled back: the session is still claimed and OPENED, so end it rather than leave it so.
      deps.logger.error({ err: error, sessionId: session.id }, 'storing the identity failed')
      return fail(deps, session, INTERNAL_ERROR, callbackIssuer)
    }
  }
  fixedFieldLines(deps.logger).info(
    { sessionId: session.id, contactUpdate: done?.contactUpdate },
    done ? 'sign-in authenticated' : 'sign-in ended elsewhere before it authenticated',
  )
  return settled(deps, session, done, 'authenticated')
}

/** The one-statement end (db/auth-sessions.ts authenticateWithContact); undefined where it cannot be. */
async function authenticateAtOnce(
  deps: Deps,
  session: AuthSession,
  identity: Identity,
  integration: OAuthIntegration,
  callbackIssuer: string | null,
  contact: ContactSnapshot,
): Promise<AuthSession | undefined> {
  const now = deps.now()
  const plan = planContactUpdate(contact.state, identity, contactPolicyOf(integration), now)
  if (plan.outcome === 'CONFLICT') return undefined
  const row = await sessions.authenticateWithContact(
    deps.db,
    {
      id: session.id,
      columns: sessions.callbackEndColumns(
        { kind: 'authenticated', identity, contactUpdate: plan.outcome },
        callbackIssuer,
        now,
      ),
      now,
    },
    contact,
    {
      tenantId: session.tenantId,
      contactId: session.contactId,
      plan,
      integrationId: integration.id,
      sessionId: session.id,
      now,
    },
  )
  return row && sessions.rowToAuthSession(row)
}

/** What of an integration's settings the contact rules use. */
function contactPolicyOf(integration: OAuthIntegration): ContactPolicy {
  return {
    integrationId: integration.id,
    overwriteContact: integration.overwriteContact,
    trustUnverifiedEmail: integration.trustUnverifiedEmail,
    verificationTtlSeconds: integration.verificationTtlSeconds,
  }
}

/**
 * The contact's part of a sign-in (core/contact.ts), and an audit record when the contact was
 * verified as another person; inside the caller's transaction.
 */
export async function updateContact(
  trx: Deps['db'],
  deps: Deps,
  session: AuthSession,
  identity: Identity,
  integration: OAuthIntegration,
  now: Date,
): Promise<'FILLED' | 'UNCHANGED' | 'CONFLICT'> {
  const outcome = await applyIdentityToContact(trx, {
    tenantId: session.tenantId,
    contactId: session.contactId,
    identity,
    policy: contactPolicyOf(integration),
    sessionId: session.id,
    now,
  })
  if (outcome === 'CONFLICT') {
    await insertAuditEvent(
      trx,
      {
        tenantId: session.tenantId,
        actorKeyId: null,
        action: 'contact.conflict',
        targetType: 'contact',
        targetId: session.contactId,
        details: {
          sessionId: session.id,
          integrationId: integration.id,
          reason: 'the sign-in proved another person than the one who verified the contact',
        },
      },
      now,
    )
    deps.logger.warn(
      { sessionId: session.id, contactId: session.contactId },
      'sign-in as another person than the contact was verified as: contact left unchanged',
    )
  }
  return outcome
}

async function settled(
  deps: Deps,
  session: AuthSession,
  written: AuthSession | undefined,
  kind: Ended['kind'],
): Promise<Ended | Refused> {
  if (written) {
    deps.events.publish(session.id)
    recordSessionEnded(written)
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

async function refuse(
  deps: Deps,
  request: Requester,
  reason: RefusalReason,
  detail: string,
  session?: AuthSession,
): Promise<Refused> {
  deps.logger.warn(
    { reason, detail, sessionId: session?.id, clientAddress: request.clientAddress },
    'callback refused',
  )
  if (!session) return { kind: 'refused', reason }
  // Refusals with a session belong to its tenant's audit trail (with who sent them); a state
  // that matches nothing has no tenant, and only the log keeps it.
  await insertAuditEvent(
    deps.db,
    {
      tenantId: session.tenantId,
      actorKeyId: null,
      action: 'auth_session.callback_refused',
      targetType: 'auth_session',
      targetId: session.id,
      details: {
        reason,
        detail,
        clientAddress: request.clientAddress,
        userAgent: request.userAgent?.slice(0, 256) ?? null,
      },
    },
    deps.now(),
  ).catch((error: unknown) =>
    deps.logger.error({ err: error, sessionId: session.id }, 'audit of a refused callback failed'),
  )
  return { kind: 'refused', reason, sessionId: session.id }
}
