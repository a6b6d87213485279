/**
 * The mapping step of a sign-in, in one place: the sign-in flow (complete-sign-in.ts) and the
 * mapping tester (`testWhoAmIMapping`) both turn a WhoAmI answer into an identity through
 * `mapCompiled`, so the tester shows exactly the identity a sign-in would store.
 *
 * The tester differs from a sign-in only before that step, in what it accepts:
 *
 * - A mapping typed or pasted by the admin is repaired first (`normalizePastedMapping`: quotes
 *   around it, escaped quotes, ...) and each repair is reported as a note. An integration's saved
 *   mapping is used exactly as saved, as a sign-in uses it.
 * - A payload given as a string holding JSON is parsed, with a note (admins paste raw answers).
 * - The payload may come from the integration's WhoAmI URL, called with an access token the
 *   admin gives (through the guarded outbound client, like a sign-in). The token is a secret:
 *   it is never logged, stored or put in a message.
 *
 * Problems with the mapping, the payload or the live call are data (`errors`), never thrown.
 * Only an integration id the tenant does not have is an error (NOT_FOUND, as everywhere).
 */
import type { AuthFailureReport } from '../core/auth-failure.ts'
import type { Identity } from '../core/identity.ts'
import type { OAuthIntegration } from '../core/integration.ts'
import { isJsonObject, jsonTypeName, parseJsonBounded } from '../core/json-limits.ts'
import { err, ok, type Result } from '../core/result.ts'
import {
  applyMapping,
  compileMapping,
  MAPPING_LIMITS,
  normalizePastedMapping,
  type CompiledMapping,
  type MappingError,
  type MappingOutcome,
} from '../core/whoami-mapping.ts'
import { enforceLimit } from './rate-limits.ts'
import type { Deps } from './deps.ts'
import { getIntegration } from './integrations.ts'

/** What changes what a mapping produces: the integration's settings and the ID token. */
export interface MappingSettings {
  readonly splitFullName: boolean
  /** The validated ID token's claims (OpenID Connect sign-ins): the identity's first source. */
  readonly claims?: Readonly<Record<string, unknown>> | null
  /** The integration's issuer: the identity's, when there is no ID token. */
  readonly issuer?: string | null
}

/**
 * The one call that maps a WhoAmI answer, for sign-ins and the tester alike. The options are
 * built here and nowhere else, so the two cannot drift apart.
 */
export function mapCompiled(
  compiled: CompiledMapping | null,
  payload: unknown,
  settings: MappingSettings,
): MappingOutcome {
  return applyMapping(compiled, payload, {
    splitFullName: settings.splitFullName,
    claims: settings.claims ?? null,
    issuer: settings.issuer ?? null,
  })
}

const compiledSaved = new Map<string, CompiledMapping>()
const CACHE_SIZE = 1000

/**
 * Compiles a saved mapping once per process (every sign-in of the integration reuses it). The
 * tester's ad-hoc mappings do not go through here, so they cannot push saved ones out.
 */
export function compileSavedMapping(expression: string): Result<CompiledMapping, MappingError> {
  const cached = compiledSaved.get(expression)
  if (cached) return ok(cached)
  const result = compileMapping(expression)
  if (!result.ok) return result
  if (compiledSaved.size >= CACHE_SIZE) compiledSaved.clear()
  compiledSaved.set(expression, result.value)
  return result
}

export type SavedMappingOutcome =
  | { readonly ok: false; readonly stage: 'compile'; readonly error: MappingError }
  | { readonly ok: true; readonly stage: 'apply'; readonly outcome: MappingOutcome }

/**
 * What a sign-in does with the WhoAmI answer: the integration's saved mapping (none when null or
 * empty) and its splitFullName setting.
 */
export function mapWithSavedMapping(
  mapping: string | null,
  payload: unknown,
  settings: MappingSettings,
): SavedMappingOutcome {
  let compiled: CompiledMapping | null = null
  if (mapping) {
    const result = compileSavedMapping(mapping)
    if (!result.ok) return { ok: false, stage: 'compile', error: result.error }
    compiled = result.value
  }
  return { ok: true, stage: 'apply', outcome: mapCompiled(compiled, payload, settings) }
}

// ---------------------------------------------------------------------------------------------
// The tester

export interface MappingTestInput {
  /** Undefined: the integration's saved mapping (none without an integration); null or '': none. */
  readonly mapping?: string | null | undefined
  /** The WhoAmI answer to map; undefined or null when it is to be fetched. */
  readonly payload?: unknown
  /** The integration whose settings (and WhoAmI URL) to use. */
  readonly integrationId?: string | null | undefined
  /** With integrationId: call its WhoAmI URL with this token and map the answer. */
  readonly accessToken?: string | null | undefined
  /** Undefined or null: the integration's setting, or true. */
  readonly splitFullName?: boolean | null | undefined
}

export interface MappingTestResult {
  readonly identity: Identity | null
  readonly errors: readonly MappingError[]
  readonly warnings: readonly MappingError[]
  /** What was done to the input to make it usable: repairs of a pasted mapping, a parsed payload. */
  readonly notes: readonly string[]
  /** The expression that ran (after repairs), to save as the integration's mapping; null: none. */
  readonly expression: string | null
}

/** An access token longer than this is refused (the longest real ones are a few KiB of JWT). */
export const MAX_TEST_ACCESS_TOKEN_LENGTH = 16 * 1024

export async function testMapping(
  deps: Deps,
  tenantId: string,
  input: MappingTestInput,
): Promise<MappingTestResult> {
  // First, so another tenant's id is NOT_FOUND whatever else the input holds.
  const integration =
    input.integrationId === undefined || input.integrationId === null
      ? null
      : await getIntegration(deps, tenantId, input.integrationId)

  const hasPayload = input.payload !== undefined && input.payload !== null
  const hasToken = input.accessToken !== undefined && input.accessToken !== null
  if (hasPayload && hasToken) {
    return failed(
      'input: give either payload (the WhoAmI answer to map) or accessToken (to fetch it from the integration), not both',
    )
  }
  if (!hasPayload && !hasToken) {
    return failed(
      'payload: required: the WhoAmI answer to map as a JSON object, or integrationId and accessToken to fetch it from the integration',
    )
  }

  const notes: string[] = []
  let payload: unknown
  if (hasToken) {
    // Each one is a call to the tenant's provider, made by us: tighter than the key's limit.
    await enforceLimit(
      deps,
      'liveMapping',
      tenantId,
      'mapping tests with a WhoAmI call for this tenant',
    )
    const fetched = await fetchPayload(deps, integration, input.accessToken as string)
    if (!fetched.ok) return failed(fetched.error)
    payload = fetched.value
  } else {
    const given = readPayload(input.payload, notes)
    if (!given.ok) return failed(given.error, notes)
    payload = given.value
  }

  const settings: MappingSettings = {
    splitFullName: input.splitFullName ?? integration?.splitFullName ?? true,
    issuer: integration?.issuer ?? null,
  }

  if (input.mapping === undefined && integration !== null) {
    // The saved mapping, exactly as a sign-in runs it (no repairs).
    const saved = integration.whoAmIMapping
    const mapped = mapWithSavedMapping(saved, payload, settings)
    if (!mapped.ok) {
      return failed(`mapping: ${mapped.error.message} (the integration's saved mapping)`, notes)
    }
    return { ...mapped.outcome, notes, expression: saved || null }
  }

  const text = input.mapping ?? ''
  if (text.trim() === '') {
    if (input.mapping !== undefined && input.mapping !== null) {
      notes.push('the mapping is empty, so the payload is used as it is')
    }
    return { ...mapCompiled(null, payload, settings), notes, expression: null }
  }
  const normalized = normalizePastedMapping(text)
  notes.push(...normalized.notes)
  const compiled = compileMapping(normalized.expression)
  if (!compiled.ok) {
    return {
      ...failed(`mapping: ${compiled.error.message}`, notes),
      expression: normalized.expression,
    }
  }
  return {
    ...mapCompiled(compiled.value, payload, settings),
    notes,
    expression: normalized.expression,
  }
}

function failed(message: string, notes: readonly string[] = []): MappingTestResult {
  return { identity: null, errors: [{ message }], warnings: [], notes, expression: null }
}

/**
 * A WhoAmI answer is always a JSON object (the provider client refuses anything else), so the
 * tester refuses anything else too: a sign-in could never map it.
 */
function readPayload(value: unknown, notes: string[]): Result<unknown, string> {
  let payload = value
  if (typeof payload === 'string' && /^\s*[[{]/.test(payload)) {
    const parsed = parseJsonBounded(payload, {
      maxBytes: MAPPING_LIMITS.maxPayloadBytes,
      maxDepth: MAPPING_LIMITS.maxPayloadDepth,
    })
    if (!parsed.ok) return err(`payload: the string ${parsed.error.message}`)
    payload = parsed.value
    notes.push('parsed the payload string as JSON')
  }
  if (!isJsonObject(payload)) {
    return err(
      `payload: must be a JSON object, as every WhoAmI answer is; got ${jsonTypeName(payload)}`,
    )
  }
  return ok(payload)
}

async function fetchPayload(
  deps: Deps,
  integration: OAuthIntegration | null,
  rawToken: string,
): Promise<Result<unknown, string>> {
  if (integration === null) {
    return err('accessToken: needs integrationId, the integration whose WhoAmI URL to call')
  }
  const token = rawToken.trim()
  if (token === '') return err('accessToken: is empty')
  if (token.length > MAX_TEST_ACCESS_TOKEN_LENGTH) {
    return err(`accessToken: is longer than ${MAX_TEST_ACCESS_TOKEN_LENGTH} characters`)
  }
  // Printable ASCII without spaces covers every token syntax (RFC 6750 §2.1 b64token and more);
  // anything else could not travel in an Authorization header.
  if (!/^[\x21-\x7E]+$/.test(token)) {
    return err('accessToken: may only hold printable ASCII characters without spaces')
  }
  if (!integration.whoAmIUrl) {
    return err(
      'integrationId: the integration has no WhoAmI URL to call (its sign-ins map an empty answer, {})',
    )
  }
  const answer = await deps.provider.fetchWhoAmI(integration, token)
  logCall(deps, integration, answer.ok ? null : answer.error)
  if (!answer.ok) {
    const { code, message } = answer.error.failure
    return err(`whoAmI: the call to the integration's WhoAmI URL failed (${code}): ${message}`)
  }
  return ok(answer.value)
}

/** Who called what and how it went; never the token, never the answer (personal data). */
function logCall(deps: Deps, integration: OAuthIntegration, failure: AuthFailureReport | null) {
  const base = { tenantId: integration.tenantId, integrationId: integration.id }
  if (failure === null) deps.logger.info(base, 'WhoAmI test call answered')
  else {
    deps.logger.info(
      // `code` is a redacted log key (logger.ts): the failure code goes under another name.
      { ...base, failureCode: failure.failure.code, detail: failure.detail },
      'WhoAmI test call failed',
    )
  }
}
