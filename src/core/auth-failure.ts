/**
 * Why a sign-in failed, as stored on the session and returned to bots (`failure { code message }`).
 *
 * - `code` comes from the small set below; bots branch on it.
 * - `message` is for a support person: which step failed, what kind of problem, and the
 *   provider's `error` code when it sent a well-formed one. It never holds the provider's body,
 *   its `error_description`, a token, a secret or a URL query.
 * - What a developer needs beyond that goes to the log only, through `AuthFailureReport.detail`,
 *   truncated and redacted with `redact()`.
 */

/** The failure codes, each documented where it is listed (the GraphQL descriptions reuse these). */
export const AUTH_FAILURE_CODES = {
  access_denied:
    'The end user or the provider refused the sign-in at the authorization step (RFC 6749 §4.1.2.1 "access_denied").',
  invalid_request:
    'The callback was malformed: no authorization code, a repeated parameter, or a response type the service does not use.',
  invalid_state:
    'The callback did not carry the state of this sign-in, so it cannot be trusted to belong to it (RFC 6749 §10.12).',
  issuer_mismatch:
    'The callback named a different issuer than the one configured for the integration (RFC 9207 mix-up defence).',
  issuer_missing:
    "The callback carried no issuer (`iss`) although the provider's metadata says it sends one, or the sign-in came back on the shared callback URLs, which require it (RFC 9207 §2.4).",
  invalid_grant:
    'The token endpoint refused the authorization code: expired, already used, or issued for another redirect URL or PKCE verifier.',
  provider_error:
    'The provider answered with an OAuth error other than the ones above (e.g. invalid_client, unauthorized_client), an HTTP error, or a redirect, which is never followed.',
  provider_timeout: 'The provider did not answer within the time limit.',
  provider_unreachable:
    'The provider could not be reached: its name did not resolve, the connection failed, or TLS verification failed.',
  blocked_address:
    'The provider URL points at an address the service must not call (loopback, private, link-local, metadata service, ...) or uses plain http, and its host is not in OUTBOUND_ALLOW_HOSTS.',
  invalid_provider_response:
    'The provider answered something malformed: not JSON, invalid UTF-8, too large, not an object, or missing or mistyped fields.',
  id_token_missing:
    'OpenID Connect: the token endpoint answered without an ID token, which an openid sign-in requires.',
  id_token_invalid:
    'OpenID Connect: the ID token is not a well-formed signed JWT (no signature, an algorithm the issuer does not use, or a missing or mistyped claim such as sub or iat).',
  id_token_signature_invalid:
    "OpenID Connect: the ID token's signature does not verify with any of the issuer's published keys (its keys were fetched again once for an unknown key id).",
  id_token_issuer_mismatch: "OpenID Connect: the ID token's iss is not the integration's issuer.",
  id_token_audience_mismatch:
    "OpenID Connect: the ID token's aud does not name this client, or it names several and azp is not this client.",
  id_token_expired:
    'OpenID Connect: the ID token has expired, or was issued in the future (beyond a small clock skew).',
  nonce_mismatch:
    'OpenID Connect: the ID token does not carry the nonce of this sign-in (a replayed or injected token).',
  subject_mismatch:
    "The WhoAmI answer (or the mapping) names another subject than the ID token's sub (OIDC Core §5.3.2).",
  insufficient_authentication:
    'The provider did not authenticate the end user as this sign-in asked: auth_time is older than maxAgeSeconds (or missing), or acr is not one of acrValues.',
  confirmation_failed:
    'The code shown after the sign-in was typed wrongly too many times in the conversation.',
  whoami_failed: 'The WhoAmI endpoint refused the access token or answered with an HTTP error.',
  mapping_failed: 'The WhoAmI answer did not map to a usable identity.',
  internal_error:
    'The service itself failed while completing the sign-in; the detail is in the service log.',
} as const

export type AuthFailureCode = keyof typeof AUTH_FAILURE_CODES

export interface AuthFailure {
  readonly code: AuthFailureCode
  /** Safe for bots and support: which step, what kind of problem, the provider's error code. */
  readonly message: string
}

/**
 * A failure as an adapter reports it: `failure` is what the session stores and the API returns;
 * `detail` is for the log line only (already truncated and redacted), never stored or returned.
 */
export interface AuthFailureReport {
  readonly failure: AuthFailure
  readonly detail: string
}

export function authFailure(
  code: AuthFailureCode,
  message: string,
  detail = '',
): AuthFailureReport {
  return { failure: { code, message }, detail }
}

/**
 * An OAuth `error` value fit to quote in a message: the RFC 6749 §5.2 charset narrowed to what
 * real codes use, so a hostile provider cannot put markup or prose into our messages.
 */
export function safeErrorCode(value: unknown): string | null {
  return typeof value === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(value) ? value : null
}

/** Keys whose values are secrets wherever they appear (JSON, form bodies, query strings). */
const SECRET_KEYS = [
  'access_token',
  'refresh_token',
  'id_token',
  'token',
  'code',
  'code_verifier',
  'client_secret',
  'client_assertion',
  'assertion',
  'password',
  'secret',
  'state',
  'nonce',
]

const KEY_GROUP = SECRET_KEYS.join('|')
// The closing quote is optional so that a value cut off by truncation is still redacted.
const JSON_SECRET = new RegExp(`("(?:${KEY_GROUP})"\\s*:\\s*)"(?:[^"\\\\]|\\\\.)*"?`, 'gi')
const FORM_SECRET = new RegExp(`(^|[?&\\s])((?:${KEY_GROUP})=)[^&\\s"]*`, 'gi')
const AUTH_SCHEME = /\b(Bearer|Basic|DPoP)\s+[A-Za-z0-9._~+/=-]+/gi

export const DETAIL_MAX_LENGTH = 500

/**
 * Makes text fit for a log line: known secrets and secret-looking fields replaced by
 * `[redacted]`, control and bidi characters escaped (no terminal or log-viewer tricks), and the
 * result cut to `maxLength` characters. Pass the call's own secrets (access token, client secret,
 * code) in `secrets`: they are removed wherever they appear, whatever the format.
 */
export function redact(
  text: string,
  options: {
    readonly secrets?: readonly (string | null | undefined)[]
    readonly maxLength?: number
  } = {},
): string {
  const max = options.maxLength ?? DETAIL_MAX_LENGTH
  // Bound the work on megabyte bodies; only the first `max` characters survive anyway.
  let out = text.length > max + 16_384 ? text.slice(0, max + 16_384) : text
  for (const secret of options.secrets ?? []) {
    // Short values would redact ordinary words; real secrets are long.
    if (secret && secret.length >= 6) out = out.split(secret).join('[redacted]')
  }
  out = out
    .replace(JSON_SECRET, '$1"[redacted]"')
    .replace(FORM_SECRET, '$1$2[redacted]')
    .replace(AUTH_SCHEME, '$1 [redacted]')
    .replace(
      // C0/C1 controls, bidi overrides and isolates, line/paragraph separators, BOM.
      /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    )
  return out.length > max ? `${out.slice(0, max)}… (${text.length} chars)` : out
}
