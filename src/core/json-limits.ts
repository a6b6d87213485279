/**
 * Bounds on JSON that comes from outside: a tenant's WhoAmI response and the payload an admin
 * pastes into the mapping tester. Nothing here reaches the mapper unless it passed these rules:
 *
 * 1. Size. The text is at most `maxBytes` of UTF-8 (default WHOAMI_MAX_BYTES, 1 MiB). Userinfo
 *    answers are a few KiB; 1 MiB leaves room for providers that inline group lists or small
 *    pictures, while `JSON.parse` of it stays in single-digit milliseconds. The HTTP client caps
 *    the body while streaming (oauth/outbound.ts); this check is the same bound for callers that
 *    already hold a string.
 * 2. Nesting. Brackets are counted by a linear scan *before* `JSON.parse`, outside strings, so a
 *    body nested 10,000 deep is refused without building it. Everything after the parse (the
 *    copy below, the evaluator, the result walk) may then recurse without risking the stack.
 *    WHOAMI_MAX_DEPTH is 64: real userinfo payloads nest fewer than 5 levels (the OIDC `address`
 *    claim is 2), and 64 recursive frames are nothing.
 * 3. Prototype safety. `JSON.parse` makes `"__proto__"` an own property, which is harmless until
 *    someone copies it into an ordinary object with `=` or `Object.assign`, where it replaces the
 *    prototype; and a lookup of `"constructor"` or `"toString"` on an ordinary object finds
 *    `Object.prototype`'s members. Every object is therefore rebuilt with a null prototype, so
 *    such keys are plain data and lookups see own properties only.
 * 4. Types. Values already parsed by someone else (a GraphQL `JSON` scalar) are checked to be
 *    JSON: plain objects and arrays, strings, finite numbers, booleans and null.
 *
 * Error messages never quote the payload: it may hold personal data and messages get logged.
 */
import { err, ok, type Result } from './result.ts'

export type JsonValue = null | boolean | number | string | JsonArray | JsonObject
export type JsonArray = readonly JsonValue[]
export interface JsonObject {
  readonly [key: string]: JsonValue
}

export interface JsonLimits {
  /** Bytes of UTF-8 for text; for parsed values, the length their JSON text would have. */
  readonly maxBytes: number
  /** Containers inside containers: `{}` is depth 1, `{"a":[]}` is depth 2. */
  readonly maxDepth: number
}

/** A problem with a payload or a mapping, phrased to be shown to an integration admin. */
export interface JsonError {
  readonly message: string
}

export const WHOAMI_MAX_BYTES = 1024 * 1024
export const WHOAMI_MAX_DEPTH = 64
export const WHOAMI_JSON_LIMITS: JsonLimits = Object.freeze({
  maxBytes: WHOAMI_MAX_BYTES,
  maxDepth: WHOAMI_MAX_DEPTH,
})

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function jsonTypeName(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  switch (typeof value) {
    case 'string':
      return 'a string'
    case 'number':
      return 'a number'
    case 'boolean':
      return 'a boolean'
    case 'object':
      return 'an object'
    default:
      return typeof value
  }
}

/** UTF-8 length of a string, without allocating; a lone surrogate counts as U+FFFD (3 bytes). */
export function utf8Length(text: string): number {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x80) bytes += 1
    else if (code < 0x800) bytes += 2
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}

/**
 * Finds the first place where JSON text nests deeper than `maxDepth`, counting `[` and `{`
 * outside strings. Runs in one pass and never recurses. Returns the offset, or null if the text
 * stays within the bound (the text need not be valid JSON; the parser judges that afterwards).
 */
export function findExcessiveNesting(text: string, maxDepth: number): number | null {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (inString) {
      if (code === 0x5c /* \ */) i++
      else if (code === 0x22 /* " */) inString = false
    } else if (code === 0x22) inString = true
    else if (code === 0x5b /* [ */ || code === 0x7b /* { */) {
      if (++depth > maxDepth) return i
    } else if (code === 0x5d /* ] */ || code === 0x7d /* } */) depth--
  }
  return null
}

/**
 * Parses JSON text within the size and depth bounds and returns it with null-prototype objects.
 * A leading byte order mark is ignored.
 */
export function parseJsonBounded(
  text: string,
  limits: JsonLimits = WHOAMI_JSON_LIMITS,
): Result<JsonValue, JsonError> {
  // Every UTF-16 unit is at least one byte, so a long string is refused before it is measured.
  if (text.length > limits.maxBytes || utf8Length(text) > limits.maxBytes) {
    return err({ message: `is larger than ${formatBytes(limits.maxBytes)}` })
  }
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
  const deepAt = findExcessiveNesting(body, limits.maxDepth)
  if (deepAt !== null) {
    return err({
      message: `is nested deeper than ${limits.maxDepth} levels (at position ${deepAt})`,
    })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch (cause) {
    // V8 quotes the text around the error; only the position is kept, the payload stays out.
    const position = /at position (\d+)/.exec(cause instanceof Error ? cause.message : '')?.[1]
    return err({
      message:
        position === undefined
          ? 'is not valid JSON'
          : `is not valid JSON (at position ${position})`,
    })
  }
  return ok(rebuildParsed(parsed))
}

/** Copies `JSON.parse` output into null-prototype objects; depth was bounded before the parse. */
function rebuildParsed(value: unknown): JsonValue {
  if (typeof value !== 'object' || value === null) return value as JsonValue
  if (Array.isArray(value)) return value.map(rebuildParsed)
  const source = value as Record<string, unknown>
  const copy: Record<string, JsonValue> = Object.create(null)
  for (const key of Object.keys(source)) copy[key] = rebuildParsed(source[key])
  return copy
}

/**
 * Checks that an already-parsed value is JSON within the bounds, and copies it with
 * null-prototype objects. Use it on values that did not come through `parseJsonBounded`, such as
 * a GraphQL `JSON` argument. The size is the length of the value's JSON text, estimated without
 * escapes and counted as the walk goes, so the walk stops as soon as the bound is passed.
 */
export function toJsonValue(
  value: unknown,
  limits: JsonLimits = WHOAMI_JSON_LIMITS,
): Result<JsonValue, JsonError> {
  const state = { size: 0, problem: null as string | null }
  const copy = copyJson(value, 0, limits, state)
  return state.problem === null ? ok(copy) : err({ message: state.problem })
}

function copyJson(
  value: unknown,
  depth: number,
  limits: JsonLimits,
  state: { size: number; problem: string | null },
): JsonValue {
  if (state.problem !== null) return null
  switch (typeof value) {
    case 'string':
      state.size += value.length + 2
      break
    case 'number':
      if (!Number.isFinite(value)) {
        state.problem = 'contains a number that is not finite'
        return null
      }
      state.size += 8
      break
    case 'boolean':
      state.size += 5
      break
    case 'object':
      if (value === null) {
        state.size += 4
        break
      }
      if (depth + 1 > limits.maxDepth) {
        state.problem = `is nested deeper than ${limits.maxDepth} levels`
        return null
      }
      if (Array.isArray(value)) {
        state.size += 2 + value.length
        if (state.size > limits.maxBytes) break
        const items: JsonValue[] = []
        for (const item of value) items.push(copyJson(item, depth + 1, limits, state))
        return items
      }
      {
        const proto: unknown = Object.getPrototypeOf(value)
        if (proto !== Object.prototype && proto !== null) {
          state.problem = 'contains a value that is not JSON'
          return null
        }
        const source = value as Record<string, unknown>
        const copy: Record<string, JsonValue> = Object.create(null)
        for (const key of Object.keys(source)) {
          state.size += key.length + 4
          if (state.size > limits.maxBytes) break
          copy[key] = copyJson(source[key], depth + 1, limits, state)
        }
        if (state.size <= limits.maxBytes) return copy
      }
      break
    default:
      state.problem = `contains a value that is not JSON (${typeof value})`
      return null
  }
  if (state.size > limits.maxBytes && state.problem === null) {
    state.problem = `is larger than ${formatBytes(limits.maxBytes)}`
  }
  return state.problem === null ? (value as JsonValue) : null
}

export function formatBytes(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`
  return `${bytes} bytes`
}
