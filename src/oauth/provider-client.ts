/**
 * The only code that talks to providers. Three steps, each returning a Result, never throwing
 * for a provider's failure:
 *
 * - `validateCallback`: the authorization response (RFC 6749 §4.1.2) through oauth4webapi's
 *   `validateAuthResponse`: state, RFC 9207 `iss` when the integration names an issuer, `error`.
 * - `exchangeCode`: the token request (RFC 6749 §4.1.3) through oauth4webapi, with a `customFetch`
 *   that goes through the outbound client and normalises real providers' quirks in one place
 *   (`normaliseTokenAnswer`). Never retried: a code is single-use (RFC 6749 §10.5).
 * - `fetchWhoAmI`: GET with `Authorization: Bearer` (RFC 6750 §2.1; never in the query), strict
 *   JSON object; at most one retry, on a connection error only, within one deadline.
 *
 * Every failure becomes an `AuthFailureReport`: a code and a message safe for bots and support,
 * plus a `detail` for the log line, redacted and truncated once, where each step returns (with
 * that call's own secrets: client secret, code, verifier, access token). Provider bodies and
 * `error_description` never reach the message.
 *
 * ID tokens are ignored (removed from the token answer before oauth4webapi sees it): identity
 * comes from WhoAmI, and half-validating an ID token is worse than not using it.
 */
import { observeProviderCall } from '../observability/metrics.ts'
import * as oauth from 'oauth4webapi'
import {
  authFailure,
  redact,
  safeErrorCode,
  type AuthFailureCode,
  type AuthFailureReport,
} from '../core/auth-failure.ts'
import type { TokenEndpointAuthMethod } from '../core/integration.ts'
import type { JsonObject } from '../core/json-limits.ts'
import type { IdTokenClaims, OidcExpectations } from '../services/deps.ts'
import { err, ok, type Result } from '../core/result.ts'
import {
  DEFAULT_MAX_JSON_DEPTH,
  OutboundError,
  type OutboundClient,
  type OutboundResponse,
} from './outbound.ts'
import {
  bodySnippet,
  causeChain,
  parseBody,
  ProviderAnswerError,
  transportFailure,
  TRANSPORT_MESSAGES,
} from './provider-answers.ts'
import {
  completeIdToken,
  idTokenFailure,
  oidcClient,
  oidcProcessOptions,
  oidcServer,
} from './id-token.ts'
import { createJwksCache, type JwksCache } from './jwks.ts'

/** What the token step needs of an integration (the secret already unsealed by the caller). */
export interface TokenEndpointConfig {
  readonly clientId: string
  readonly clientSecret: string
  readonly tokenUrl: string
  readonly tokenEndpointAuthMethod: TokenEndpointAuthMethod
  /** When set, RFC 9207 `iss` on the callback must equal it. */
  readonly issuer: string | null
}

declare const validated: unique symbol
/** Callback parameters that passed `validateCallback`: the only input `exchangeCode` accepts. */
export type ValidatedCallback = URLSearchParams & { readonly [validated]: true }

export interface TokenSet {
  readonly accessToken: string
  readonly tokenType: string
  readonly expiresIn: number | null
  readonly scope: string | null
  /** The ID token's claims, validated in full; exactly when `oidc` was given. */
  readonly idToken: IdTokenClaims | null
}

export interface WhoAmIAnswer {
  /** The decoded body, for a caller that re-parses it (e.g. with its own limits). */
  readonly text: string
  readonly payload: JsonObject
}

export interface ProviderClientOptions {
  readonly outbound: OutboundClient
  /** Cap on a token answer. Default 64 KiB. */
  readonly tokenMaxBytes?: number
  /** Cap on a WhoAmI answer. Default 1 MiB. */
  readonly whoAmIMaxBytes?: number
  /** Deepest JSON nesting accepted from a provider. Default 64 (core/json-limits.ts). */
  readonly maxJsonDepth?: number
  /** One budget for a WhoAmI call and its retry. Default: the outbound client's deadline. */
  readonly whoAmIDeadlineMs?: number
  /** Issuers' signing keys, shared by every sign-in of the process. Default: a cache of its own. */
  readonly jwks?: JwksCache
}

export const PROVIDER_DEFAULTS = {
  tokenMaxBytes: 64 * 1024,
  whoAmIMaxBytes: 1024 * 1024,
} as const

export interface ProviderClient {
  exchangeCode(input: {
    readonly integration: TokenEndpointConfig
    readonly callback: ValidatedCallback
    readonly redirectUri: string
    /** The PKCE verifier, or null for an integration with PKCE turned off. */
    readonly codeVerifier: string | null
    /**
     * OpenID Connect: the ID token is then required and validated in full (id-token.ts), its
     * key set fetched within the same budget as the token request.
     */
    readonly oidc?: OidcExpectations | null
    /** What is left of the caller's budget, when shorter than the client's deadline. */
    readonly deadlineMs?: number
  }): Promise<Result<TokenSet, AuthFailureReport>>
  fetchWhoAmI(
    url: string,
    accessToken: string,
    deadlineMs?: number,
  ): Promise<Result<WhoAmIAnswer, AuthFailureReport>>
}

/**
 * Placeholder issuer for integrations that configure none: oauth4webapi needs one, it is never
 * compared with anything (`iss` is dropped before validation; ID tokens are validated only for
 * OpenID Connect sign-ins, which always name their issuer).
 */
const NO_ISSUER = 'urn:end-user-oauth:issuer-not-configured'

/**
 * Validates the callback's query parameters for one session (its `state`), error answers
 * included. RFC 9207 `iss`:
 *
 * - with `issuer` set, an `iss` that differs is refused (before state and `error`, so a mix-up
 *   is reported as one even on an error answer);
 * - with `requireIssuer`, a callback without `iss` (or with an empty one) is refused, whether or
 *   not `issuer` is set (RFC 9207 §2.4: a client that knows the AS sends it must refuse its
 *   absence);
 * - with `issuer` null, `iss` is not compared, since state already binds the callback to one
 *   integration, and so to one provider: the caller only records it.
 */
export function validateCallback(input: {
  readonly params: URLSearchParams
  readonly expectedState: string
  readonly issuer: string | null
  readonly requireIssuer?: boolean
  readonly clientId: string
}): Result<ValidatedCallback, AuthFailureReport> {
  const params = new URLSearchParams(input.params)
  // oauth4webapi reads `code` later with `get()`, which takes the first of several: refuse
  // repeats here, so two codes can never be told apart by which one a step happened to read.
  const repeated = ['code', 'state', 'iss', 'error'].find((k) => params.getAll(k).length > 1)
  if (repeated !== undefined) {
    return err(
      authFailure(
        'invalid_request',
        `authorization: the callback repeats the parameter "${repeated}"`,
      ),
    )
  }
  const requireIssuer = input.requireIssuer === true
  if (input.issuer === null) {
    // oauth4webapi can only compare with an issuer; presence alone is checked here.
    if (requireIssuer && !params.get('iss'))
      return err(callbackFailure(ISSUER_MISSING, input.params))
    params.delete('iss')
  }
  const as: oauth.AuthorizationServer = {
    issuer: input.issuer ?? NO_ISSUER,
    ...(requireIssuer && { authorization_response_iss_parameter_supported: true }),
  }
  const client: oauth.Client = { client_id: input.clientId }
  let checked: URLSearchParams
  try {
    checked = oauth.validateAuthResponse(as, client, params, input.expectedState)
  } catch (e) {
    return err(callbackFailure(e, input.params))
  }
  // Tokens never travel through the browser (RFC 9700 §2.1.2). oauth4webapi refuses
  // `id_token` and `token`, not `access_token`.
  if (checked.has('access_token')) {
    return err(callbackFailure(IMPLICIT_FLOW, input.params))
  }
  const code = checked.get('code')
  if (code === null || code === '') {
    return err(
      authFailure('invalid_request', 'authorization: the callback carries no authorization code'),
    )
  }
  return ok(checked as ValidatedCallback)
}

const IMPLICIT_FLOW = new Error('implicit and hybrid flows are not supported')
// oauth4webapi's own wording for the same refusal, so callbackFailure maps both alike.
const ISSUER_MISSING = new Error('response parameter "iss" (issuer) missing')

function callbackFailure(e: unknown, params: URLSearchParams): AuthFailureReport {
  const detail = redact(params.toString(), { secrets: [params.get('code'), params.get('state')] })
  if (e instanceof oauth.AuthorizationResponseError) {
    const code = safeErrorCode(e.error)
    const description = e.error_description ? ` (${e.error_description})` : ''
    const said = code === null ? 'an error with a malformed code' : `error "${code}"`
    return authFailure(
      e.error === 'access_denied' ? 'access_denied' : 'provider_error',
      `authorization: the provider answered ${said}`,
      redact(`error=${e.error}${description}`),
    )
  }
  const message = e instanceof Error ? e.message : String(e)
  if (/"state"/.test(message)) {
    return authFailure(
      'invalid_state',
      'authorization: the callback state does not match this sign-in',
      detail,
    )
  }
  if (/"iss" \(issuer\) missing/.test(message)) {
    return authFailure(
      'issuer_missing',
      'authorization: the callback carries no issuer (iss), which this integration requires (RFC 9207)',
      detail,
    )
  }
  if (/"iss"/.test(message)) {
    return authFailure(
      'issuer_mismatch',
      'authorization: the callback names a different issuer than the integration (RFC 9207)',
      detail,
    )
  }
  return authFailure(
    'invalid_request',
    `authorization: the callback is malformed (${message})`,
    detail,
  )
}

export function createProviderClient(options: ProviderClientOptions): ProviderClient {
  const { outbound } = options
  const tokenMaxBytes = options.tokenMaxBytes ?? PROVIDER_DEFAULTS.tokenMaxBytes
  const whoAmIMaxBytes = options.whoAmIMaxBytes ?? PROVIDER_DEFAULTS.whoAmIMaxBytes
  const maxDepth = options.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH
  const defaultTokenFetch = outbound.fetchLike({ maxResponseBytes: tokenMaxBytes })
  const jwks = options.jwks ?? createJwksCache({ outbound })

  return {
    async exchangeCode({ integration, callback, redirectUri, codeVerifier, oidc, deadlineMs }) {
      const started = Date.now()
      const budgetMs = () =>
        Math.min(deadlineMs ?? outbound.deadlineMs, outbound.deadlineMs) - (Date.now() - started)
      const tokenFetch =
        deadlineMs === undefined
          ? defaultTokenFetch
          : outbound.fetchLike({ maxResponseBytes: tokenMaxBytes, deadlineMs })
      const secrets = [integration.clientSecret, callback.get('code'), codeVerifier]
      if (oidc && oidc.nonce === '') {
        return err(authFailure('internal_error', 'ID token: the sign-in has no nonce to expect'))
      }
      let tokenUrl: URL
      try {
        tokenUrl = new URL(integration.tokenUrl)
      } catch {
        return err(authFailure('provider_error', 'token request: the token URL is not a valid URL'))
      }
      const base: oauth.AuthorizationServer = {
        issuer: integration.issuer ?? NO_ISSUER,
        token_endpoint: tokenUrl.href,
      }
      const as = oidc ? oidcServer(base, oidc) : base
      const client: oauth.Client = oidc
        ? oidcClient(integration.clientId)
        : { client_id: integration.clientId }
      const auth =
        integration.tokenEndpointAuthMethod === 'CLIENT_SECRET_BASIC'
          ? oauth.ClientSecretBasic(integration.clientSecret)
          : oauth.ClientSecretPost(integration.clientSecret)
      const lenientFetch: typeof fetch = async (url, init) => {
        const answer = await observeProviderCall('token', url, () => tokenFetch(url, init))
        const normalised = normaliseTokenAnswer(answer, maxDepth, !!oidc)
        if (!normalised.ok) throw new ProviderAnswerError(normalised.error)
        return normalised.value
      }
      let response: Response
      let tokens: oauth.TokenEndpointResponse
      try {
        response = await oauth.authorizationCodeGrantRequest(
          as,
          client,
          auth,
          callback,
          redirectUri,
          codeVerifier ?? oauth.nopkce,
          {
            [oauth.customFetch]: lenientFetch,
            [oauth.allowInsecureRequests]:
              tokenUrl.protocol === 'http:' && outbound.isAllowListed(tokenUrl),
          },
        )
        tokens = oidc
          ? await oauth.processAuthorizationCodeResponse(
              as,
              client,
              response,
              oidcProcessOptions(oidc),
            )
          : await oauth.processAuthorizationCodeResponse(as, client, response)
      } catch (e) {
        const report = (oidc ? idTokenFailure(e) : null) ?? tokenFailure(e)
        return err({ ...report, detail: redact(report.detail, { secrets }) })
      }
      let idToken: IdTokenClaims | null = null
      if (oidc) {
        const checked = await completeIdToken({
          as,
          clientId: integration.clientId,
          clientSecret: integration.clientSecret,
          response,
          tokens,
          oidc,
          jwks,
          budgetMs,
        })
        const tokenSecrets = [...secrets, tokens.access_token, tokens.id_token]
        if (!checked.ok) {
          const detail = redact(checked.error.detail, { secrets: tokenSecrets })
          return err({ ...checked.error, detail })
        }
        idToken = checked.value
      }
      return ok({
        accessToken: tokens.access_token,
        tokenType: tokens.token_type,
        expiresIn: tokens.expires_in ?? null,
        scope: tokens.scope ?? null,
        idToken,
      })
    },

    async fetchWhoAmI(url, accessToken, deadlineMs) {
      const secrets = [accessToken]
      const started = Date.now()
      const budget = Math.min(
        options.whoAmIDeadlineMs ?? outbound.deadlineMs,
        deadlineMs ?? Infinity,
      )
      const attempt = (deadlineMs: number) =>
        observeProviderCall('whoami', url, () =>
          outbound.request(url, {
            method: 'GET',
            headers: {
              authorization: `Bearer ${accessToken}`,
              accept: 'application/json',
              'user-agent': 'end-user-oauth',
            },
            maxResponseBytes: whoAmIMaxBytes,
            deadlineMs,
          }),
        )
      let answer: OutboundResponse
      try {
        try {
          answer = await attempt(budget)
        } catch (first) {
          // Idempotent GET, so one retry on a connection error; never on a timeout (the
          // budget is spent) nor on an answer, good or bad.
          if (!(first instanceof OutboundError) || first.kind !== 'connection_failed') throw first
          const left = budget - (Date.now() - started)
          if (left < 50) throw first
          answer = await attempt(left)
        }
      } catch (e) {
        const report = transportFailure('WhoAmI request', e)
        return err({ ...report, detail: redact(report.detail, { secrets }) })
      }
      const result = readWhoAmIAnswer(answer, maxDepth)
      if (!result.ok)
        return err({ ...result.error, detail: redact(result.error.detail, { secrets }) })
      return result
    },
  }
}

const INVALID_GRANT_CODES = new Set(['invalid_grant', 'bad_verification_code'])

/**
 * The quirk table (real providers' answers that oauth4webapi would refuse as they are), applied
 * to the token answer before oauth4webapi validates it:
 *
 * | provider does                                  | we do                                   |
 * | ---------------------------------------------- | --------------------------------------- |
 * | form-encoded answer (old GitHub)               | read it as an object                    |
 * | JSON served as text/plain (or no type)         | parse it as JSON                        |
 * | HTTP 200 with `{"error": ...}` (GitHub)        | an OAuth error, as if it were a 400     |
 * | no `token_type`                                | `bearer`                                |
 * | `token_type` in any case                       | accepted (oauth4webapi lower-cases it)  |
 * | `expires_in` as a string of digits             | a number                                |
 * | `scope` as an array of strings                 | joined with spaces                      |
 *
 * Everything else malformed is refused: other content types (HTML error pages), invalid UTF-8,
 * non-object JSON, a redirect (never followed), `expires_in` that is not a whole number,
 * and (in oauth4webapi) a missing or non-string `access_token`, a `token_type` other than bearer.
 */
function normaliseTokenAnswer(
  res: OutboundResponse,
  maxDepth: number,
  keepIdToken: boolean,
): Result<Response, AuthFailureReport> {
  const step = 'token request'
  const status = res.status
  if (status >= 300 && status < 400) {
    return err(
      authFailure(
        'provider_error',
        `${step}: the token endpoint answered with a redirect (HTTP ${status}), which is not followed`,
        `location: ${res.headers.get('location') ?? '(none)'}`,
      ),
    )
  }
  const parsed = parseBody(res, maxDepth, true)
  // GitHub answers 200 with an error body; an `error` member is an error whatever the status.
  if (parsed.kind === 'object' && parsed.value.error != null && parsed.value.error !== '') {
    return err(oauthErrorFailure(step, status, parsed.value, res.headers))
  }
  if (status !== 200) {
    const challenge = challengeError(res.headers)
    if (challenge !== null) {
      return err(oauthErrorFailure(step, status, { error: challenge }, res.headers))
    }
    const problem = parsed.kind === 'unreadable' ? `; ${parsed.problem}` : ''
    return err(
      authFailure(
        status >= 200 && status < 300 ? 'invalid_provider_response' : 'provider_error',
        `${step}: the token endpoint answered HTTP ${status} without an OAuth error${problem}`,
        bodySnippet(res),
      ),
    )
  }
  if (parsed.kind === 'unreadable') {
    return err(
      authFailure('invalid_provider_response', `${step}: ${parsed.problem}`, bodySnippet(res)),
    )
  }
  const body: Record<string, unknown> = { ...parsed.value }
  if (body.token_type === undefined && body.access_token !== undefined) body.token_type = 'bearer'
  if (typeof body.expires_in === 'string') {
    if (!/^\s*\d{1,10}\s*$/.test(body.expires_in)) {
      return err(
        authFailure(
          'invalid_provider_response',
          `${step}: expires_in is not a whole number of seconds`,
          bodySnippet(res),
        ),
      )
    }
    body.expires_in = Number(body.expires_in)
  }
  // RFC 6750 §2.1 b64token characters (printable ASCII at least): anything else could not be
  // sent in an Authorization header, so it is the provider's answer that is wrong.
  if (typeof body.access_token === 'string' && /[^\x21-\x7e]/.test(body.access_token)) {
    return err(
      authFailure(
        'invalid_provider_response',
        `${step}: access_token contains characters a Bearer token cannot have`,
        '',
      ),
    )
  }
  if (Array.isArray(body.scope) && body.scope.every((s) => typeof s === 'string')) {
    body.scope = body.scope.join(' ')
  }
  // Without OpenID Connect the ID token is never read: half-validating one is worse than not.
  if (!keepIdToken) delete body.id_token
  return ok(
    new Response(JSON.stringify(body), {
      status: 200,
      headers: { 'content-type': 'application/json' },
    }),
  )
}

function oauthErrorFailure(
  step: string,
  status: number,
  body: Record<string, unknown>,
  headers: Headers,
): AuthFailureReport {
  const code = safeErrorCode(body.error)
  const failureCode: AuthFailureCode =
    code !== null && INVALID_GRANT_CODES.has(code) ? 'invalid_grant' : 'provider_error'
  const said = code === null ? 'an OAuth error with a malformed code' : `error "${code}"`
  const description =
    typeof body.error_description === 'string' ? ` error_description=${body.error_description}` : ''
  const challenge = headers.get('www-authenticate')
  return authFailure(
    failureCode,
    `${step}: the provider answered ${said} (HTTP ${status})`,
    `error=${String(body.error)}${description}${challenge ? ` www-authenticate=${challenge}` : ''}`,
  )
}

/** The `error` of a `WWW-Authenticate` challenge (RFC 6750 §3), e.g. `invalid_token`. */
function challengeError(headers: Headers): string | null {
  const header = headers.get('www-authenticate')
  if (header === null) return null
  return /\berror="?([^",\s]+)"?/i.exec(header)?.[1] ?? null
}

function readWhoAmIAnswer(
  res: OutboundResponse,
  maxDepth: number,
): Result<WhoAmIAnswer, AuthFailureReport> {
  const step = 'WhoAmI request'
  const status = res.status
  if (status < 200 || status >= 300 || status === 204) {
    const challenge = safeErrorCode(challengeError(res.headers))
    const what =
      status >= 300 && status < 400
        ? `a redirect (HTTP ${status}), which is not followed`
        : `HTTP ${status}${challenge !== null ? ` (${challenge})` : ''}`
    return err(
      authFailure(
        'whoami_failed',
        `${step}: the WhoAmI endpoint answered ${what}`,
        bodySnippet(res),
      ),
    )
  }
  const parsed = parseBody(res, maxDepth, false)
  if (parsed.kind === 'unreadable') {
    return err(
      authFailure('invalid_provider_response', `${step}: ${parsed.problem}`, bodySnippet(res)),
    )
  }
  return ok({ text: parsed.text, payload: parsed.value })
}

function tokenFailure(e: unknown): AuthFailureReport {
  const step = 'token request'
  if (e instanceof ProviderAnswerError) return e.report
  if (e instanceof OutboundError) return transportFailure(step, e)
  if (e instanceof oauth.UnsupportedOperationError) {
    // The only one processAuthorizationCodeResponse raises here: a token_type other than bearer.
    return authFailure(
      'invalid_provider_response',
      `${step}: the token type is not bearer`,
      causeChain(e),
    )
  }
  if (e instanceof oauth.OperationProcessingError) {
    if (e.code === oauth.HTTP_REQUEST_FORBIDDEN) {
      return authFailure(
        'blocked_address',
        `${step}: ${TRANSPORT_MESSAGES.insecure_http}`,
        causeChain(e),
      )
    }
    // oauth4webapi's messages name the field and never quote the provider's values.
    return authFailure(
      'invalid_provider_response',
      `${step}: the answer is malformed (${e.message})`,
      causeChain(e),
    )
  }
  return transportFailure(step, e)
}
