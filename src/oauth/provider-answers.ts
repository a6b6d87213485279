/**
 * Reading providers' answers, shared by the token, WhoAmI, JWKS and discovery calls: strict
 * decoding and parsing of a body, the failure of an HTTP call itself (fixed messages per kind),
 * and the log detail of an error (its cause chain). Nothing here quotes a body in a message.
 */
import { authFailure, type AuthFailureCode, type AuthFailureReport } from '../core/auth-failure.ts'
import type { JsonObject } from '../core/json-limits.ts'
import {
  decodeUtf8Strict,
  OutboundError,
  parseJsonObject,
  type JsonProblem,
  type OutboundResponse,
} from './outbound.ts'

/** Carries a classified failure out of a `customFetch`, through oauth4webapi, to its caller. */
export class ProviderAnswerError extends Error {
  readonly report: AuthFailureReport

  constructor(report: AuthFailureReport) {
    super(report.failure.message)
    this.name = 'ProviderAnswerError'
    this.report = report
  }
}

export type ParsedBody =
  | { readonly kind: 'object'; readonly text: string; readonly value: JsonObject }
  | { readonly kind: 'unreadable'; readonly problem: string }

/** Media types a JSON answer may come with: real providers use all of these for JSON. */
export function isJsonish(mediaType: string): boolean {
  return (
    mediaType === '' ||
    mediaType === 'application/json' ||
    mediaType.endsWith('+json') ||
    mediaType === 'text/json' ||
    mediaType === 'text/plain' ||
    mediaType === 'text/javascript'
  )
}

export function mediaTypeOf(headers: Headers): string {
  return (headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
}

/**
 * Decodes and parses a provider body: UTF-8 only; JSON (whatever JSON-ish type it is served as),
 * or a form-encoded body when `allowForm` and the content type says so.
 */
export function parseBody(res: OutboundResponse, maxDepth: number, allowForm: boolean): ParsedBody {
  const text = decodeUtf8Strict(res.body)
  if (text === null) return { kind: 'unreadable', problem: 'the answer is not valid UTF-8' }
  const mediaType = mediaTypeOf(res.headers)
  if (allowForm && mediaType === 'application/x-www-form-urlencoded') {
    const form = new URLSearchParams(text)
    const value: Record<string, string> = Object.create(null)
    for (const [key, v] of form) {
      if (key in value)
        return { kind: 'unreadable', problem: `the form answer repeats "${safeKey(key)}"` }
      value[key] = v
    }
    return { kind: 'object', text, value }
  }
  if (!isJsonish(mediaType)) {
    const what =
      mediaType === 'text/html' ? 'an HTML page' : `content of type ${safeKey(mediaType)}`
    return { kind: 'unreadable', problem: `the answer is ${what}, not JSON` }
  }
  if (text.trim() === '') return { kind: 'unreadable', problem: 'the answer is empty' }
  const parsed = parseJsonObject(text, maxDepth)
  if (!parsed.ok) return { kind: 'unreadable', problem: JSON_PROBLEMS[parsed.error] }
  return { kind: 'object', text, value: parsed.value }
}

export const JSON_PROBLEMS: { readonly [P in JsonProblem]: string } = {
  not_json: 'the answer is not JSON',
  not_object: 'the answer is JSON but not an object',
  too_deep: 'the answer is nested too deeply',
}

/** Header names and media types quoted in messages: printable ASCII only, short. */
export function safeKey(value: string): string {
  return /^[\x21-\x7e]{1,64}$/.test(value) ? value : '(unprintable)'
}

export function bodySnippet(res: OutboundResponse): string {
  const type = res.headers.get('content-type') ?? '(no content type)'
  const text = new TextDecoder('utf-8').decode(res.body.subarray(0, 2048))
  return `HTTP ${res.status} ${type} ${res.body.length} bytes: ${text}`
}

export const TRANSPORT_CODES: { readonly [K in OutboundError['kind']]: AuthFailureCode } = {
  invalid_url: 'provider_error',
  insecure_http: 'blocked_address',
  blocked_address: 'blocked_address',
  timeout: 'provider_timeout',
  too_large: 'invalid_provider_response',
  connection_failed: 'provider_unreachable',
  tls_failed: 'provider_unreachable',
  invalid_response: 'invalid_provider_response',
  aborted: 'provider_timeout',
}

export const TRANSPORT_MESSAGES: { readonly [K in OutboundError['kind']]: string } = {
  invalid_url: 'the URL is not a valid https URL',
  insecure_http: 'plain http is allowed only for hosts in OUTBOUND_ALLOW_HOSTS',
  blocked_address: 'the host is a loopback, private or otherwise non-public address',
  timeout: 'the provider did not answer in time',
  too_large: 'the answer is larger than the size limit',
  connection_failed: 'the provider could not be reached',
  tls_failed: 'the TLS connection failed (certificate not trusted or not for this host)',
  invalid_response: 'the answer is not valid HTTP',
  aborted: 'the call was cancelled',
}

/** Failures of the HTTP call itself: the message is fixed per kind; the host goes to `detail`. */
export function transportFailure(step: string, e: unknown): AuthFailureReport {
  if (e instanceof OutboundError) {
    // Blocked addresses say which host and why: that is what the admin must fix.
    const message =
      e.kind === 'blocked_address' || e.kind === 'insecure_http' || e.kind === 'too_large'
        ? e.message
        : TRANSPORT_MESSAGES[e.kind]
    return authFailure(TRANSPORT_CODES[e.kind], `${step}: ${message}`, causeChain(e))
  }
  return authFailure('provider_error', `${step}: the call failed unexpectedly`, causeChain(e))
}

export function causeChain(e: unknown): string {
  const parts: string[] = []
  let current = e
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    if (current instanceof Error) {
      const code = (current as { code?: unknown }).code
      const detail =
        current instanceof OutboundError && current.detail ? ` (${current.detail})` : ''
      parts.push(
        `${current.name}${typeof code === 'string' ? ` ${code}` : ''}: ${current.message}${detail}`,
      )
      current = current.cause
    } else {
      parts.push(String(current))
      break
    }
  }
  return parts.join(' <- ')
}
