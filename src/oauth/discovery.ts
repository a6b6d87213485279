/**
 * Reads an issuer's metadata: OpenID Connect Discovery 1.0 §4 (`<issuer>/.well-known/
 * openid-configuration`), and when that answers 404, RFC 8414 §3.1 (`/.well-known/
 * oauth-authorization-server` inserted before the issuer's path). oauth4webapi builds both URLs
 * (`discoveryRequest`) and checks the answer (`processDiscoveryResponse`); the call goes through
 * the guarded outbound client (its address rules; plain http only for OUTBOUND_ALLOW_HOSTS),
 * capped at 256 KiB, both attempts within one outbound deadline.
 *
 * The metadata's `issuer` must be the configured one exactly, character for character (RFC 8414
 * §3.3, OIDC Discovery §4.3): oauth4webapi compares parsed URLs, which would let a trailing slash
 * or a host's case through, so the exact comparison is made here too.
 *
 * Errors are messages for the integration's admin (they become BAD_USER_INPUT at save time):
 * which URL, what is wrong, both issuers when they differ. They quote nothing secret: values from
 * the provider are shortened and escaped, an address refusal names the host, never what it
 * resolved to.
 */
import { observeProviderCall } from '../observability/metrics.ts'
import * as oauth from 'oauth4webapi'
import { redact } from '../core/auth-failure.ts'
import type { JsonObject } from '../core/json-limits.ts'
import { err, ok, type Result } from '../core/result.ts'
import type { ProviderMetadata } from '../services/deps.ts'
import { OutboundError, type OutboundClient, type OutboundResponse } from './outbound.ts'
import { parseBody, TRANSPORT_MESSAGES } from './provider-answers.ts'

export const DISCOVERY_MAX_BYTES = 256 * 1024

/** An attempt that got no answer at all (address refused, timeout, connection). */
class DiscoveryFailure extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DiscoveryFailure'
  }
}

export async function discoverIssuer(
  outbound: OutboundClient,
  issuer: string,
): Promise<Result<ProviderMetadata, string>> {
  let url: URL
  try {
    url = new URL(issuer)
  } catch {
    return err('issuer: not an absolute URL')
  }
  const shape = issuerShapeProblem(url, outbound)
  if (shape !== null) return err(`issuer: ${shape}`)

  const started = Date.now()
  const left = () => outbound.deadlineMs - (Date.now() - started)
  const attempt = async (algorithm: 'oidc' | 'oauth2') => {
    let where = ''
    const fetchThrough = async (target: string): Promise<Response> => {
      where = target
      return readAnswer(outbound, target, left())
    }
    try {
      const response = await oauth.discoveryRequest(url, {
        algorithm,
        [oauth.customFetch]: fetchThrough,
        [oauth.allowInsecureRequests]: url.protocol === 'http:',
      })
      return { where, response }
    } catch (e) {
      throw new DiscoveryFailure(`the metadata at ${where} could not be read: ${transport(e)}`)
    }
  }

  let where: string
  let response: Response
  try {
    ;({ where, response } = await attempt('oidc'))
    if (response.status === 404) {
      const first = where
      ;({ where, response } = await attempt('oauth2'))
      if (response.status === 404) {
        return err(`issuer: no metadata at ${first} nor at ${where} (both answered HTTP 404)`)
      }
    }
  } catch (e) {
    if (e instanceof DiscoveryFailure) return err(`issuer: ${e.message}`)
    throw e
  }
  const at = `the metadata at ${where}`
  if (response.status >= 300 && response.status < 400) {
    return err(
      `issuer: ${at} answered with a redirect (HTTP ${response.status}), which is not followed`,
    )
  }
  if (response.status !== 200) return err(`issuer: ${at} answered HTTP ${response.status}`)

  const body = await checkBody(response)
  if (!body.ok) return err(`issuer: ${at} could not be read: ${body.error}`)
  let metadata: oauth.AuthorizationServer
  try {
    metadata = await oauth.processDiscoveryResponse(url, jsonResponse(body.value))
  } catch {
    return err(`issuer: ${at} ${issuerProblem(body.value.issuer, issuer)}`)
  }
  // oauth4webapi compared URLs; RFC 8414 §3.3 asks for the identical string.
  if (metadata.issuer !== issuer) {
    return err(`issuer: ${at} ${issuerProblem(metadata.issuer, issuer)}`)
  }
  const read = readMetadata(body.value, outbound)
  if (!read.ok) return err(`issuer: ${at} ${read.error}`)
  return ok(read.value)
}

/** RFC 8414 §2: an https URL with no query or fragment (http only for allow-listed hosts). */
function issuerShapeProblem(url: URL, outbound: OutboundClient): string | null {
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be an https URL'
  if (url.protocol === 'http:' && !outbound.isAllowListed(url)) {
    return TRANSPORT_MESSAGES.insecure_http
  }
  if (url.username !== '' || url.password !== '') return 'must not contain credentials'
  if (url.search !== '' || url.hash !== '') return 'must not have a query or a fragment'
  return null
}

/** One GET through the guarded client; the answer whole (capped), whatever its status. */
async function readAnswer(outbound: OutboundClient, target: string, deadlineMs: number) {
  const res = await observeProviderCall('discovery', target, () =>
    outbound.request(target, {
      method: 'GET',
      headers: { accept: 'application/json', 'user-agent': 'end-user-oauth' },
      maxResponseBytes: DISCOVERY_MAX_BYTES,
      deadlineMs,
    }),
  )
  if (res.status < 200 || res.status > 599) {
    throw new OutboundError('invalid_response', `HTTP status ${res.status} is not valid`)
  }
  return new Response(res.status === 204 || res.status === 304 ? null : res.body, {
    status: res.status,
    headers: res.headers,
  })
}

function transport(e: unknown): string {
  if (e instanceof OutboundError) {
    // The refusal names the host (what the admin typed), never the address it resolved to.
    return e.kind === 'blocked_address' || e.kind === 'insecure_http' || e.kind === 'too_large'
      ? e.message
      : TRANSPORT_MESSAGES[e.kind]
  }
  return 'the call failed unexpectedly'
}

async function checkBody(response: Response): Promise<Result<JsonObject, string>> {
  const res: OutboundResponse = {
    status: response.status,
    headers: response.headers,
    body: new Uint8Array(await response.arrayBuffer()),
  }
  const parsed = parseBody(res, 16, false)
  return parsed.kind === 'object' ? ok(parsed.value) : err(parsed.problem)
}

function jsonResponse(body: JsonObject): Response {
  return new Response(JSON.stringify(body), {
    status: 200,
    headers: { 'content-type': 'application/json' },
  })
}

function issuerProblem(named: unknown, expected: string): string {
  if (named === undefined) return 'names no issuer'
  if (typeof named !== 'string') return 'names an issuer that is not a string'
  return `names the issuer ${quote(named)}, not ${quote(expected)}`
}

/** A provider's value in an admin message: escaped (no control or bidi tricks), shortened. */
function quote(value: string): string {
  return `"${redact(value, { maxLength: 200 }).replace(/"/g, '\\"')}"`
}

function readMetadata(
  body: JsonObject,
  outbound: OutboundClient,
): Result<ProviderMetadata, string> {
  const problems: string[] = []
  const endpoint = (name: string, required: boolean): string | null => {
    const value = body[name]
    if (value === undefined || value === null) {
      if (required) problems.push(`has no ${name}`)
      return null
    }
    const problem = typeof value === 'string' ? endpointProblem(value, outbound) : 'is not a string'
    if (problem === null) return value as string
    problems.push(`has ${article(name)} ${name} that ${problem}`)
    return null
  }
  const list = (name: string): readonly string[] | null => {
    const value = body[name]
    if (value === undefined || value === null) return null
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) {
      return value as readonly string[]
    }
    problems.push(`has ${article(name)} ${name} that is not a list of strings`)
    return null
  }
  const metadata: ProviderMetadata = {
    issuer: body.issuer as string,
    authorizationEndpoint: endpoint('authorization_endpoint', true) ?? '',
    tokenEndpoint: endpoint('token_endpoint', true) ?? '',
    userinfoEndpoint: endpoint('userinfo_endpoint', false),
    jwksUri: endpoint('jwks_uri', false),
    issParameterSupported: body.authorization_response_iss_parameter_supported === true,
    signingAlgorithms: list('id_token_signing_alg_values_supported'),
    codeChallengeMethods: list('code_challenge_methods_supported'),
    tokenEndpointAuthMethods: list('token_endpoint_auth_methods_supported'),
  }
  const iss = body.authorization_response_iss_parameter_supported
  if (iss !== undefined && iss !== null && typeof iss !== 'boolean') {
    problems.push('has an authorization_response_iss_parameter_supported that is not true or false')
  }
  // The first problem is enough for the admin to act on; the others usually follow from it.
  return problems.length === 0 ? ok(metadata) : err(problems[0]!)
}

// "a userinfo_endpoint": the member names here that start with u sound like "you".
const article = (word: string) => (/^[aeio]/.test(word) ? 'an' : 'a')

/** An endpoint (RFC 6749 §3.1): absolute, https (http for allow-listed hosts), no fragment. */
function endpointProblem(value: string, outbound: OutboundClient): string | null {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return 'is not an absolute URL'
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && outbound.isAllowListed(url))) {
    return url.protocol === 'http:'
      ? 'uses plain http, which is allowed only for hosts in OUTBOUND_ALLOW_HOSTS'
      : 'is not an https URL'
  }
  if (url.username !== '' || url.password !== '') return 'contains credentials'
  if (url.hash !== '') return 'has a fragment'
  return null
}
