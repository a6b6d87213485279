/**
 * What an OAuth integration may hold: the pure rule of each field (core/integration.ts lists
 * which field uses which), run once, by the service, before it writes anything, so that a client
 * learns every problem at once.
 *
 * Each `*Problem` function returns a problem phrased to follow the field name ("must not be
 * empty") or null. No message ever repeats a client secret.
 *
 * - Names: trimmed, 1..100 characters, no control or invisible formatting characters; unique per
 *   tenant ignoring case (the database checks that).
 * - Client id and secret: RFC 6749 Appendix A (VSCHAR, printable ASCII), bounded; the id trimmed.
 * - URLs: absolute, bounded; https, no credentials, no fragment, public hosts only unless
 *   allow-listed (the SSRF rules of `checkOutboundUrl` in core/ip-address.ts). An authorization
 *   URL may carry extra parameters (`audience`, `prompt`) but none of those the sign-in sets
 *   (`RESERVED_AUTHORIZATION_PARAMS`).
 * - Scope: space-separated RFC 6749 §3.3 scope-tokens; whitespace runs are collapsed.
 * - Issuer (RFC 9207 `iss`): an https URL without query or fragment (RFC 8414 §2).
 * - Message text: bounded plain text, newlines allowed, `{business}` the only placeholder.
 */
import { checkOutboundUrl } from './ip-address.ts'
import { checkMapping, MAPPING_LIMITS, normalizePastedMapping } from './whoami-mapping.ts'
import { CONTROL, INVISIBLE } from './text-rules.ts'

export const SESSION_TTL_DEFAULT_SECONDS = 600
export const SESSION_TTL_MIN_SECONDS = 60
export const SESSION_TTL_MAX_SECONDS = 3600
export const VERIFICATION_TTL_MIN_SECONDS = 60
/** A year: longer than that, a verification is not worth expiring. */
export const VERIFICATION_TTL_MAX_SECONDS = 31_536_000

export const LIMITS = {
  name: 100,
  clientId: 255,
  clientSecret: 2048,
  url: 2048,
  scope: 1000,
  whoAmIMapping: MAPPING_LIMITS.maxExpressionLength,
  messageText: 1000,
  messageButtonLabel: 40,
} as const

/** How the client authenticates at the token endpoint (RFC 6749 §2.3.1). */
export const TOKEN_ENDPOINT_AUTH_METHODS = ['CLIENT_SECRET_POST', 'CLIENT_SECRET_BASIC'] as const
export type TokenEndpointAuthMethod = (typeof TOKEN_ENDPOINT_AUTH_METHODS)[number]

/** Placeholders `messageText` may contain, with what each is replaced by. */
export const MESSAGE_PLACEHOLDERS = {
  '{business}': "the tenant's name",
} as const

/**
 * Authorization request parameters the service sets on every sign-in (RFC 6749 §4.1.1, RFC 7636
 * §4.3, OpenID Connect `nonce`); `code_challenge` stands for every `code_challenge*` parameter.
 * A second copy in the configured URL would make the request ambiguous (parameter pollution).
 */
export const RESERVED_AUTHORIZATION_PARAMS = [
  'response_type',
  'client_id',
  'redirect_uri',
  'state',
  'scope',
  'nonce',
  'code_challenge',
] as const

/** RFC 6749 Appendix A: VSCHAR = %x20-7E. */
const VSCHAR = /^[\x20-\x7e]*$/
/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/

function tooLong(value: string, max: number): string | null {
  return value.length > max ? `must be at most ${max} characters (got ${value.length})` : null
}

function textProblem(value: string, max: number, opts: { newlines?: boolean } = {}): string | null {
  if (value === '') return 'must not be empty'
  const long = tooLong(value, max)
  if (long) return long
  const controls = opts.newlines ? value.replace(/\r?\n/g, '') : value
  if (CONTROL.test(controls)) return 'must not contain control characters'
  if (INVISIBLE.test(value)) return 'must not contain invisible formatting characters'
  return null
}

export function normaliseName(name: string): string {
  return name.trim()
}

export function nameProblem(raw: string): string | null {
  return textProblem(normaliseName(raw), LIMITS.name)
}

export function normaliseClientId(clientId: string): string {
  return clientId.trim()
}

export function clientIdProblem(raw: string): string | null {
  const value = normaliseClientId(raw)
  if (value === '') return 'must not be empty'
  const long = tooLong(value, LIMITS.clientId)
  if (long) return long
  if (!VSCHAR.test(value)) {
    return 'may contain only printable ASCII characters (RFC 6749 Appendix A.1)'
  }
  return null
}

/** Never echoes the secret: the messages name its length at most. */
export function clientSecretProblem(secret: string): string | null {
  if (secret.trim() === '') return 'must not be empty'
  const long = tooLong(secret, LIMITS.clientSecret)
  if (long) return long
  if (!VSCHAR.test(secret)) {
    return 'may contain only printable ASCII characters (RFC 6749 Appendix A.2)'
  }
  return null
}

/** Trims and collapses runs of spaces; an empty scope is no scope (null). */
export function normaliseScope(scope: string): string | null {
  const value = scope.trim().replace(/ {2,}/g, ' ')
  return value === '' ? null : value
}

export function scopeProblem(raw: string): string | null {
  const long = tooLong(raw, LIMITS.scope)
  if (long) return long
  const value = normaliseScope(raw)
  if (value === null) return null
  if (CONTROL.test(value)) {
    return 'must not contain control characters (scope tokens are separated by single spaces)'
  }
  for (const token of value.split(' ')) {
    if (!SCOPE_TOKEN.test(token)) {
      return `has an invalid scope token "${token}": tokens are separated by spaces and may contain printable ASCII except " and \\ (RFC 6749 §3.3)`
    }
  }
  return null
}

/** Syntax only: what the URL rules need before configuration comes in. */
export function urlSyntaxProblem(raw: string): string | null {
  if (raw.trim() === '') return 'must not be empty'
  const long = tooLong(raw, LIMITS.url)
  if (long) return long
  if (raw !== raw.trim()) return 'must not start or end with whitespace'
  if (!URL.canParse(raw)) return 'must be an absolute https URL'
  return null
}

/** The reserved parameters (`RESERVED_AUTHORIZATION_PARAMS`) an authorization URL carries. */
export function reservedParamProblem(raw: string): string | null {
  if (!URL.canParse(raw)) return null
  for (const name of new URL(raw).searchParams.keys()) {
    const key = name.toLowerCase()
    const reserved = RESERVED_AUTHORIZATION_PARAMS.find((p) =>
      p === 'code_challenge' ? key.startsWith(p) : key === p,
    )
    if (reserved !== undefined) {
      const hint = key === 'scope' ? '; put scopes in input.scope' : ''
      return `must not contain the parameter "${name}": the service sets it on each sign-in${hint}`
    }
  }
  return null
}

export type UrlField = 'authorizationUrl' | 'tokenUrl' | 'whoAmIUrl'

/**
 * Every rule for a provider URL: syntax, reserved parameters (authorization URL only), then the
 * outbound rules of `checkOutboundUrl` against OUTBOUND_ALLOW_HOSTS.
 */
export function providerUrlProblem(
  field: UrlField,
  raw: string,
  allowHosts: readonly string[],
): string | null {
  const authorization = field === 'authorizationUrl'
  return (
    urlSyntaxProblem(raw) ??
    (authorization ? reservedParamProblem(raw) : null) ??
    checkOutboundUrl(raw, allowHosts)
  )
}

/**
 * An issuer identifier (RFC 8414 §2): https, no query, no fragment, no credentials. It is only
 * compared with the callback's `iss`, never called; plain http only for allow-listed hosts, as
 * for the URLs the service calls (local test providers).
 */
export function issuerSyntaxProblem(raw: string): string | null {
  const syntax = urlSyntaxProblem(raw)
  if (syntax) return syntax
  const url = new URL(raw)
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return 'must be an absolute https URL (RFC 8414 §2)'
  }
  if (url.username !== '' || url.password !== '') return 'must not contain credentials'
  if (url.search !== '' || raw.includes('?')) return 'must not contain a query (RFC 8414 §2)'
  if (raw.includes('#')) return 'must not contain a fragment (RFC 8414 §2)'
  return null
}

export function issuerProblem(raw: string, allowHosts: readonly string[]): string | null {
  const syntax = issuerSyntaxProblem(raw)
  if (syntax) return syntax
  // checkOutboundUrl accepts plain http exactly for allow-listed hosts.
  if (new URL(raw).protocol === 'http:' && checkOutboundUrl(raw, allowHosts) !== null) {
    return 'must be an https URL (plain http only for hosts in OUTBOUND_ALLOW_HOSTS)'
  }
  return null
}

export function normaliseText(value: string): string {
  return value.trim()
}

export function messageTextProblem(raw: string): string | null {
  const value = normaliseText(raw)
  const problem = textProblem(value, LIMITS.messageText, { newlines: true })
  if (problem) return problem
  for (const match of value.matchAll(/\{[^{}\s]*\}/g)) {
    if (!(match[0] in MESSAGE_PLACEHOLDERS)) {
      const known = Object.keys(MESSAGE_PLACEHOLDERS).join(', ')
      return `has an unknown placeholder ${match[0]} (known: ${known})`
    }
  }
  return null
}

export function messageButtonLabelProblem(raw: string): string | null {
  return textProblem(normaliseText(raw), LIMITS.messageButtonLabel)
}

export function sessionTtlProblem(seconds: number): string | null {
  if (
    !Number.isInteger(seconds) ||
    seconds < SESSION_TTL_MIN_SECONDS ||
    seconds > SESSION_TTL_MAX_SECONDS
  ) {
    return `must be a whole number of seconds from ${SESSION_TTL_MIN_SECONDS} to ${SESSION_TTL_MAX_SECONDS}`
  }
  return null
}

export function verificationTtlProblem(seconds: number): string | null {
  if (
    !Number.isInteger(seconds) ||
    seconds < VERIFICATION_TTL_MIN_SECONDS ||
    seconds > VERIFICATION_TTL_MAX_SECONDS
  ) {
    return `must be a whole number of seconds from ${VERIFICATION_TTL_MIN_SECONDS} to ${VERIFICATION_TTL_MAX_SECONDS} (null: never expires)`
  }
  return null
}

/**
 * Size first, then the JMESPath checks of `checkMapping` (syntax, functions, arity, depth). A
 * mapping that fails them but would pass after the repairs testWhoAmIMapping makes to a pasted
 * one (quotes around it, escaped quotes, ...) is still refused, since what is saved must be what
 * the admin sees, but the message shows the repaired expression to save instead.
 */
export function whoAmIMappingProblem(raw: string): string | null {
  if (raw.trim() === '') return 'must not be empty (send null for no mapping)'
  const problem = tooLong(raw, LIMITS.whoAmIMapping) ?? checkMapping(raw)?.message ?? null
  if (problem === null) return null
  const repaired = normalizePastedMapping(raw)
  if (repaired.notes.length > 0 && checkMapping(repaired.expression) === null) {
    return `${problem}. It looks pasted from documentation: testWhoAmIMapping repairs it (${repaired.notes.join(', ')}) to ${repaired.expression}, save that instead`
  }
  return problem
}

/** One problem with one input field; `field` is the input's field name (`tokenUrl`). */
export interface FieldProblem {
  readonly field: string
  readonly message: string
}

/** The host compared by the mix-up rule: the authorization URL's host name, lower case. */
export function authorizationHostOf(authorizationUrl: string): string {
  return new URL(authorizationUrl).hostname.replace(/\.$/, '')
}
