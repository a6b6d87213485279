/**
 * The ID token of an OpenID Connect code flow (OIDC Core §3.1.3.7), validated in full before the
 * access token is handed on. oauth4webapi does the work:
 *
 * - `processAuthorizationCodeResponse` with `requireIdToken`, `expectedNonce` and `maxAge`: the
 *   JWT's form, `alg` against the accepted list, `iss` exactly the issuer, `aud` containing the
 *   client id, `azp` when there are several audiences, `exp` (and `nbf`), `sub`, `iat`, the nonce,
 *   and `auth_time` against `max_age`;
 * - `validateApplicationLevelSignature`: the signature, with the key it selects from the
 *   issuer's JWK Set. It fetches nothing itself here: the set comes from `jwks.ts` (through the
 *   guarded client, cached per URI), handed over as a fresh `jwksCache`.
 *
 * What it leaves out is checked here: `iat` in the future, `azp` with a single audience (§3.1.3.7
 * item 5), claim types the result promises (`acr`, `amr`, `azp`, audiences as strings), an empty
 * `sub`, and HS256/384/512 (OIDC Core §10.1: an HMAC with the client secret, which oauth4webapi
 * does not verify; accepted only when the integration lists the algorithm). `none` is never
 * accepted, whatever the issuer announces.
 *
 * Claims are checked before the signature, so a token that fails a claim never costs a key
 * fetch; a token failing both is reported by the claim. Every failed check has its own failure
 * code (see `idTokenFailure`); messages name the check, never a claim's value, and the log detail
 * is oauth4webapi's message only (its causes may hold the token or its claims).
 */
import * as oauth from 'oauth4webapi'
import { authFailure, type AuthFailureReport } from '../core/auth-failure.ts'
import { isJsonObject } from '../core/json-limits.ts'
import { err, ok, type Result } from '../core/result.ts'
import type { IdTokenClaims, OidcExpectations } from '../services/deps.ts'
import type { JwksCache, KeySet } from './jwks.ts'
import { parseJsonObject } from './outbound.ts'

/**
 * Seconds a timestamp may be off: `exp` in the past, `iat` or `nbf` in the future, `auth_time`
 * beyond `max_age`. 30 s covers real clock drift between us and providers (NTP keeps it far
 * smaller) without stretching a token's life noticeably. oauth4webapi's default, made explicit.
 */
export const ID_TOKEN_CLOCK_TOLERANCE_S = 30

const STEP = 'ID token'

/** The issuer's signing algorithms we accept: its list (default RS256, OIDC Discovery §3), never `none`. */
export function acceptedAlgorithms(announced: readonly string[] | null): string[] {
  return (announced ?? ['RS256']).filter((alg) => alg !== 'none')
}

/** The authorization server as oauth4webapi sees it for an OpenID Connect sign-in. */
export function oidcServer(
  base: oauth.AuthorizationServer,
  oidc: OidcExpectations,
): oauth.AuthorizationServer {
  return {
    ...base,
    issuer: oidc.issuer,
    jwks_uri: oidc.jwksUri,
    id_token_signing_alg_values_supported: acceptedAlgorithms(oidc.signingAlgorithms),
  }
}

export function oidcClient(clientId: string): oauth.Client {
  return { client_id: clientId, [oauth.clockTolerance]: ID_TOKEN_CLOCK_TOLERANCE_S }
}

export function oidcProcessOptions(
  oidc: OidcExpectations,
): oauth.ProcessAuthorizationCodeResponseOptions {
  return {
    requireIdToken: true,
    expectedNonce: oidc.nonce,
    ...(oidc.maxAgeSeconds !== null && { maxAge: oidc.maxAgeSeconds }),
  }
}

/**
 * The rest of the validation, after `processAuthorizationCodeResponse` accepted the answer:
 * the checks it leaves out, then the signature. Returns the claims as null-prototype objects.
 */
export async function completeIdToken(input: {
  readonly as: oauth.AuthorizationServer
  readonly clientId: string
  readonly clientSecret: string
  /** The token answer oauth4webapi processed, and its result. */
  readonly response: Response
  readonly tokens: oauth.TokenEndpointResponse
  readonly oidc: OidcExpectations
  readonly jwks: JwksCache
  /** What is left of the budget when a key set must be fetched. */
  readonly budgetMs: () => number
}): Promise<Result<IdTokenClaims, AuthFailureReport>> {
  const idToken = input.tokens.id_token
  const claims = oauth.getValidatedIdTokenClaims(input.tokens)
  if (idToken === undefined || claims === undefined) {
    return err(authFailure('id_token_missing', `${STEP}: the token endpoint answered without one`))
  }
  const problem = checkRemainingClaims(claims, input.clientId)
  if (problem !== null) return err(problem)
  const signed = await verifySignature({ ...input, idToken })
  if (!signed.ok) return signed
  // A fresh copy: objects with null prototypes (`__proto__` is plain data), nesting bounded.
  let copy: ReturnType<typeof parseJsonObject>
  try {
    copy = parseJsonObject(JSON.stringify(claims), 16)
  } catch {
    // JSON.stringify runs out of stack on claims nested tens of thousands deep.
    copy = err('too_deep')
  }
  if (!copy.ok) {
    return err(authFailure('id_token_invalid', `${STEP}: its claims are nested too deeply`))
  }
  // checkRemainingClaims and oauth4webapi established every typed member of IdTokenClaims.
  return ok(copy.value as unknown as IdTokenClaims)
}

function checkRemainingClaims(claims: oauth.IDToken, clientId: string): AuthFailureReport | null {
  const nowS = Math.floor(Date.now() / 1000)
  if (claims.iat > nowS + ID_TOKEN_CLOCK_TOLERANCE_S) {
    return authFailure('id_token_expired', `${STEP}: it was issued in the future (iat)`)
  }
  if (claims.sub === '') return authFailure('id_token_invalid', `${STEP}: its sub is empty`)
  const aud: unknown = claims.aud
  if (Array.isArray(aud) && !aud.every((a) => typeof a === 'string')) {
    return authFailure('id_token_invalid', `${STEP}: its aud holds a value that is not a string`)
  }
  if (claims.azp !== undefined && claims.azp !== clientId) {
    return authFailure(
      'id_token_audience_mismatch',
      `${STEP}: its azp (authorized party) is not this client`,
    )
  }
  const acr: unknown = claims.acr
  if (acr !== undefined && typeof acr !== 'string') {
    return authFailure('id_token_invalid', `${STEP}: its acr is not a string`)
  }
  const amr: unknown = claims.amr
  if (amr !== undefined && !(Array.isArray(amr) && amr.every((a) => typeof a === 'string'))) {
    return authFailure('id_token_invalid', `${STEP}: its amr is not a list of strings`)
  }
  return null
}

/** Never called: a fresh `jwksCache` is always given, so oauth4webapi never fetches keys itself. */
const NO_FETCH = (): Promise<Response> =>
  Promise.reject(new Error('oauth4webapi tried to fetch a key set outside the cache'))

async function verifySignature(input: {
  readonly as: oauth.AuthorizationServer
  readonly clientSecret: string
  readonly response: Response
  readonly idToken: string
  readonly oidc: OidcExpectations
  readonly jwks: JwksCache
  readonly budgetMs: () => number
}): Promise<Result<void, AuthFailureReport>> {
  const alg = headerAlg(input.idToken)
  // oauth4webapi accepted `alg` from the list already; HS* reach here only when listed.
  if (alg.startsWith('HS')) return verifyHmac(input.idToken, alg, input.clientSecret)

  const attempt = async (server: oauth.AuthorizationServer, set: KeySet): Promise<unknown> => {
    try {
      await oauth.validateApplicationLevelSignature(server, input.response, {
        // `uat` now: oauth4webapi takes the set as fresh; its age is jwks.ts's business.
        [oauth.jwksCache]: { jwks: set.jwks, uat: Math.floor(Date.now() / 1000) },
        [oauth.customFetch]: NO_FETCH,
      })
      return null
    } catch (e) {
      return e
    }
  }
  const uri = input.oidc.jwksUri
  const cached = await input.jwks.get(uri, input.budgetMs())
  if (!cached.ok) return cached
  let failure = await attempt(input.as, cached.value)
  if (failure !== null && isUnknownKey(failure)) {
    // Key rotation: the set may be older than the token's key. oauth4webapi keeps the set it was
    // given per server object, so the retry uses a new one.
    const fresh = await input.jwks.refetch(uri, cached.value, input.budgetMs())
    if (!fresh.ok) return fresh
    if (fresh.value !== null) failure = await attempt({ ...input.as }, fresh.value)
  }
  if (failure === null) return ok(undefined)
  return err(signatureFailure(failure))
}

function isUnknownKey(e: unknown): boolean {
  return (
    e instanceof oauth.OperationProcessingError &&
    e.code === oauth.KEY_SELECTION &&
    /no applicable keys/.test(e.message)
  )
}

/** The protected header's `alg`; oauth4webapi parsed and checked the header before. */
function headerAlg(jwt: string): string {
  try {
    const header: unknown = JSON.parse(Buffer.from(jwt.split('.')[0] ?? '', 'base64url').toString())
    if (isJsonObject(header) && typeof header.alg === 'string') return header.alg
  } catch {
    // Falls through: unreachable after oauth4webapi's checks.
  }
  return ''
}

const HMAC_HASHES: Readonly<Record<string, string>> = {
  HS256: 'SHA-256',
  HS384: 'SHA-384',
  HS512: 'SHA-512',
}

/** OIDC Core §10.1: the key is the UTF-8 octets of the client secret. */
async function verifyHmac(
  jwt: string,
  alg: string,
  clientSecret: string,
): Promise<Result<void, AuthFailureReport>> {
  const hash = HMAC_HASHES[alg]
  if (hash === undefined) {
    return err(authFailure('id_token_invalid', `${STEP}: its algorithm is not supported`))
  }
  const [header = '', payload = '', signature = ''] = jwt.split('.')
  const encoder = new TextEncoder()
  let valid: boolean
  try {
    const key = await crypto.subtle.importKey(
      'raw',
      encoder.encode(clientSecret),
      { name: 'HMAC', hash },
      false,
      ['verify'],
    )
    valid = await crypto.subtle.verify(
      'HMAC',
      key,
      Buffer.from(signature, 'base64url'),
      encoder.encode(`${header}.${payload}`),
    )
  } catch (e) {
    // An empty client secret is not an HMAC key.
    return err(authFailure('internal_error', `${STEP}: its HMAC could not be checked`, shallow(e)))
  }
  if (valid) return ok(undefined)
  return err(
    authFailure(
      'id_token_signature_invalid',
      `${STEP}: its signature does not verify with the client secret (${alg})`,
    ),
  )
}

function signatureFailure(e: unknown): AuthFailureReport {
  const detail = shallow(e)
  if (e instanceof oauth.OperationProcessingError && e.code === oauth.KEY_SELECTION) {
    const message = /multiple applicable keys/.test(e.message)
      ? `${STEP}: it names no key id and the issuer publishes several keys it could be signed with`
      : `${STEP}: it names a key the issuer does not publish (its key set was fetched again once)`
    return authFailure('id_token_signature_invalid', message, detail)
  }
  if (
    e instanceof oauth.OperationProcessingError &&
    /signature verification failed/.test(e.message)
  ) {
    return authFailure(
      'id_token_signature_invalid',
      `${STEP}: its signature does not verify with the issuer's key`,
      detail,
    )
  }
  if (e instanceof oauth.UnsupportedOperationError) {
    // A key oauth4webapi refuses to use: an RSA modulus under 2048 bits, an unknown curve.
    return authFailure(
      'id_token_signature_invalid',
      `${STEP}: the issuer's key for it is not usable (${e.message})`,
      detail,
    )
  }
  if (e instanceof Error && e.name === 'DataError') {
    return authFailure(
      'invalid_provider_response',
      `${STEP}: the issuer's key for it is malformed`,
      detail,
    )
  }
  return authFailure('internal_error', `${STEP}: its signature could not be checked`, detail)
}

/**
 * Maps what `processAuthorizationCodeResponse` threw to the ID token's failure codes; null for
 * an error about the rest of the token answer (the token step reports those).
 *
 * | oauth4webapi                                          | failure code                |
 * | ----------------------------------------------------- | --------------------------- |
 * | `"id_token" property must be a string` (absent)       | id_token_missing            |
 * | JWT_CLAIM_COMPARISON on iss                           | id_token_issuer_mismatch    |
 * | JWT_CLAIM_COMPARISON on aud or azp                    | id_token_audience_mismatch  |
 * | JWT_CLAIM_COMPARISON on nonce, or nonce missing       | nonce_mismatch              |
 * | JWT_TIMESTAMP_CHECK on exp or nbf                     | id_token_expired            |
 * | JWT_TIMESTAMP_CHECK on auth_time, or it is missing    | insufficient_authentication |
 * | any other claim missing or mistyped, a malformed JWT, | id_token_invalid            |
 * | `alg` not accepted, `crit`, an encrypted token        |                             |
 */
export function idTokenFailure(e: unknown): AuthFailureReport | null {
  const detail = shallow(e)
  const fail = (code: Parameters<typeof authFailure>[0], message: string) =>
    authFailure(code, `${STEP}: ${message}`, detail)
  if (e instanceof oauth.UnsupportedOperationError) {
    // The token_type refusal is the token step's; the others are the ID token's (crit, JWE).
    if (/token_type/.test(e.message)) return null
    return fail('id_token_invalid', `it is not a plain signed JWT (${e.message})`)
  }
  if (!(e instanceof oauth.OperationProcessingError)) return null
  const claim = claimOf(e.cause)
  if (e.code === oauth.JWT_CLAIM_COMPARISON) {
    if (claim === 'iss')
      return fail('id_token_issuer_mismatch', "its iss is not the integration's issuer")
    if (claim === 'nonce') return fail('nonce_mismatch', 'its nonce is not the one of this sign-in')
    if (claim === 'azp')
      return fail(
        'id_token_audience_mismatch',
        'it names several audiences and its azp is not this client',
      )
    if (/additional untrusted audiences/.test(e.message)) {
      return fail('id_token_audience_mismatch', 'it names several audiences and no azp')
    }
    return fail('id_token_audience_mismatch', 'its aud does not name this client')
  }
  if (e.code === oauth.JWT_TIMESTAMP_CHECK) {
    if (claim === 'auth_time') {
      return fail(
        'insufficient_authentication',
        'the end user signed in longer ago than max_age allows',
      )
    }
    if (claim === 'nbf') return fail('id_token_expired', 'it is not valid yet (nbf)')
    return fail('id_token_expired', 'it has expired (exp)')
  }
  const missing = /^JWT "(\w+)" \(.+\) claim missing$/.exec(e.message)?.[1]
  if (missing === 'nonce') return fail('nonce_mismatch', 'it carries no nonce')
  if (missing === 'auth_time') {
    return fail('insufficient_authentication', 'it carries no auth_time, which max_age requires')
  }
  if (missing !== undefined) return fail('id_token_invalid', `it carries no ${missing} claim`)
  if (/"id_token" property/.test(e.message)) {
    const sent =
      isJsonObject(e.cause) && isJsonObject(e.cause.body) ? e.cause.body.id_token : undefined
    return sent === undefined || sent === ''
      ? fail('id_token_missing', 'the token endpoint answered without one')
      : fail('id_token_invalid', 'the token endpoint answered an id_token that is not a string')
  }
  if (/JWT|ID Token/.test(e.message)) return fail('id_token_invalid', e.message)
  return null
}

function claimOf(cause: unknown): string | null {
  return isJsonObject(cause) && typeof cause.claim === 'string' ? cause.claim : null
}

/** oauth4webapi's message and code only: its causes hold the token, its claims or its keys. */
function shallow(e: unknown): string {
  if (!(e instanceof Error)) return String(e).slice(0, 200)
  const code = (e as { code?: unknown }).code
  return `${e.name}${typeof code === 'string' ? ` ${code}` : ''}: ${e.message}`
}
