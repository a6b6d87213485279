/**
 * Maps a WhoAmI answer to an identity, with an optional JMESPath expression per integration.
 * The sign-in flow and the admin's mapping tester both call `applyMapping`, so the tester shows
 * exactly what a sign-in would store.
 *
 * Rules:
 *
 * 1. No mapping: the WhoAmI payload must be a JSON object, and it is the attribute set as is.
 * 2. A mapping is a JMESPath expression (`@jmespath-community/jmespath` syntax). Its result must be
 *    a JSON object; null, an array or a scalar is an error that says which it got. The product page's
 *    `{"userName": user.id, "fullName": user.name, "email": user.email}` is valid: a quoted key in
 *    a multi-select hash is a quoted identifier.
 * 3. When saved, an expression is checked (`checkMapping`): at most
 *    `MAPPING_LIMITS.maxExpressionLength` characters, no NUL, valid syntax (errors give a position), and the tree checks of
 *    the JMESPath engine, src/jmespath/ (size, depth, known functions and their arity).
 * 4. The payload is bounded before evaluation (json-limits.ts): size, nesting depth, JSON types,
 *    null-prototype objects.
 * 5. Evaluation is metered (src/jmespath/runtime.ts): a step allowance and a time budget, so an
 *    expression that multiplies its data stops with an error instead of stalling the process.
 * 6. The result is bounded too: at most `maxResultBytes` of JSON and `maxResultDepth` levels,
 *    measured by a walk that stops at the bound (results share values, so a small result can
 *    stand for an exponentially large JSON text). It is copied into null-prototype objects with
 *    what PostgreSQL refuses removed: NUL characters and lone UTF-16 surrogates (which become
 *    U+FFFD), in keys and values.
 * 7. Standard fields are then picked and cleaned by identity.ts; everything stays in `attributes`.
 *
 * Errors and warnings are data, never thrown, and never quote payload values (they are personal
 * data and may be logged). Messages start with the part they are about: `payload: …`,
 * `mapping: …`, or the standard field's name.
 */
import { compile, tokenize } from '@jmespath-community/jmespath'
import { toIdentity, type Identity, type ToIdentityOptions } from './identity.ts'
import {
  formatBytes,
  isJsonObject,
  jsonTypeName,
  parseJsonBounded,
  toJsonValue,
  WHOAMI_MAX_BYTES,
  WHOAMI_MAX_DEPTH,
  type JsonValue,
} from './json-limits.ts'
import {
  evaluateExpression,
  EvaluationError,
  prepareExpression,
  type Node,
} from '../jmespath/index.ts'
import { err, ok, type Result } from './result.ts'

export interface MappingError {
  readonly message: string
}

export interface MappingLimits {
  /** Characters of expression text. */
  readonly maxExpressionLength: number
  /** Syntax-tree nodes and levels. */
  readonly maxNodes: number
  readonly maxDepth: number
  /** Evaluation allowance (src/jmespath/runtime.ts) and wall-clock budget. */
  readonly maxSteps: number
  readonly maxMillis: number
  /** The longest string evaluation may build. */
  readonly maxStringLength: number
  /** Bounds on the payload given to `applyMapping`. */
  readonly maxPayloadBytes: number
  readonly maxPayloadDepth: number
  /** Bounds on the mapping's result, which becomes the stored `attributes`. */
  readonly maxResultBytes: number
  readonly maxResultDepth: number
}

/**
 * The limits, with the reasons for each number:
 *
 * - 2,048 characters of expression: 30 times the README's example, room for a 30-field mapping.
 *   The library's parser recurses on nesting; at this length even the worst nesting
 *   (`!!!…a`, `((((…))))`) parses with the default stack and 3,000 frames already in use,
 *   while 4,096 characters of `!` overflow it (measured on Node 20).
 * - 500 nodes and 32 levels: a 30-field mapping with functions has about 150 nodes and 10
 *   levels. The evaluator recurses once per level.
 * - 100,000 steps and 100 ms: the README's example takes 10 steps, and a projection over 10,000
 *   elements of a 1 MiB payload about 50,000. Running out of 100,000 steps takes 1–8 ms on a
 *   warm process whatever the expression does (measured for 19 hostile expressions: doubling
 *   flattens, nested multi-selects, to_string and == on shared values, sorts, string
 *   functions on a 200 KB string); cold and on a loaded machine it took up to 40 ms for twice
 *   the steps. The clock is the backstop for a cost the model misses, and sits far enough
 *   above that a mapping's fate does not depend on the machine's load.
 * - 256 Ki characters per built string: far above any identity field, below a 1 MiB payload.
 * - Payload: 1 MiB and 64 levels, as for the WhoAmI body (json-limits.ts).
 * - Result: 64 KiB and 64 levels. `attributes` is stored with every session; a provider with a
 *   larger answer should get a mapping that selects what is needed, and the error says so.
 */
export const MAPPING_LIMITS: MappingLimits = Object.freeze({
  maxExpressionLength: 2048,
  maxNodes: 500,
  maxDepth: 32,
  maxSteps: 100_000,
  maxMillis: 100,
  maxStringLength: 256 * 1024,
  maxPayloadBytes: WHOAMI_MAX_BYTES,
  maxPayloadDepth: WHOAMI_MAX_DEPTH,
  maxResultBytes: 64 * 1024,
  maxResultDepth: 64,
})

const AST = Symbol('ast')

function now(): number {
  return performance.now()
}

/** A checked expression, compiled once and evaluated for every sign-in of the integration. */
export interface CompiledMapping {
  readonly expression: string
  readonly [AST]: Node
}

/** The integration's switch for splitting `fullName`, and the ID token's claims (identity.ts). */
export interface ApplyMappingOptions extends ToIdentityOptions {
  readonly limits?: MappingLimits
  /** Milliseconds, for the time budget; `performance.now` unless a test replaces it. */
  readonly clock?: () => number
}

export interface MappingOutcome {
  readonly identity: Identity | null
  readonly errors: MappingError[]
  readonly warnings: MappingError[]
}

/** For the save-time check: null when the expression is fine; the message follows a field name. */
export function checkMapping(expression: string, limits = MAPPING_LIMITS): MappingError | null {
  const compiled = compileMapping(expression, limits)
  return compiled.ok ? null : compiled.error
}

export function compileMapping(
  expression: string,
  limits = MAPPING_LIMITS,
): Result<CompiledMapping, MappingError> {
  if (expression.trim() === '') return err({ message: 'is empty' })
  if (expression.length > limits.maxExpressionLength) {
    return err({ message: `is longer than ${limits.maxExpressionLength} characters` })
  }
  const nul = expression.indexOf('\u0000')
  if (nul !== -1) return err({ message: `contains a NUL character (at position ${nul})` })
  let parsed: ReturnType<typeof compile>
  try {
    parsed = compile(expression)
  } catch (cause) {
    if (cause instanceof RangeError) return err({ message: 'is nested too deeply to parse' })
    return err({ message: describeSyntaxError(expression, cause) })
  }
  const prepared = prepareExpression(parsed, limits)
  if (!prepared.ok) return err({ message: prepared.problem })
  return ok({ expression, [AST]: prepared.ast })
}

export function applyMapping(
  compiled: CompiledMapping | null,
  payload: unknown,
  options: ApplyMappingOptions,
): MappingOutcome {
  const limits = options.limits ?? MAPPING_LIMITS
  const input = toJsonValue(payload, {
    maxBytes: limits.maxPayloadBytes,
    maxDepth: limits.maxPayloadDepth,
  })
  if (!input.ok) return failure(`payload: ${input.error.message}`)

  let result: JsonValue
  if (compiled === null) {
    if (!isJsonObject(input.value)) {
      return failure(
        `payload: must be a JSON object when there is no mapping, got ${jsonTypeName(input.value)}`,
      )
    }
    result = input.value
  } else {
    try {
      result = evaluateExpression(compiled[AST], input.value, limits, options.clock ?? now).value
    } catch (cause) {
      if (cause instanceof EvaluationError) {
        return failure(
          cause.kind === 'budget'
            ? `mapping: stopped, it ${cause.message}`
            : `mapping: failed on this payload: ${cause.message}`,
        )
      }
      // Stack or allocation limits of the engine: the same verdict as the budget.
      if (cause instanceof RangeError)
        return failure('mapping: stopped, it needs too many resources')
      throw cause
    }
    if (!isJsonObject(result)) {
      return failure(
        `mapping: result must be a JSON object, got ${jsonTypeName(result)}${hint(result)}`,
      )
    }
  }

  const stored = toStoredAttributes(result, limits)
  if (!stored.ok) return failure(stored.error.message)
  const { identity, warnings } = toIdentity(stored.value.attributes, options)
  const repaired = stored.value.repaired
  if (repaired > 0) {
    const what = repaired === 1 ? 'key or value' : 'keys or values'
    warnings.unshift({
      message: `attributes: removed NUL characters or broken UTF-16 from ${repaired} ${what}`,
    })
  }
  return { identity, errors: [], warnings }
}

function failure(message: string): MappingOutcome {
  return { identity: null, errors: [{ message }], warnings: [] }
}

function hint(result: JsonValue): string {
  if (result === null) return ' (it selected nothing: check its field names against the payload)'
  return ' (a mapping builds an object, such as {userName: user.id, email: user.email})'
}

const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g
const MAYBE_UNSTORABLE = /[\u0000\uD800-\uDFFF]/

class ResultTooLarge extends Error {}

/**
 * Copies the result into fresh null-prototype JSON that PostgreSQL accepts, within the result
 * bounds. The walk counts the JSON length as it goes and stops at the bound, so a result that
 * shares one array 2^40 times costs no more than the bound. (A class rather than closures: this
 * runs for every sign-in, and tsx wraps every named closure in a helper call.)
 */
class AttributeCopier {
  private size = 0
  repaired = 0
  private readonly limits: MappingLimits

  constructor(limits: MappingLimits) {
    this.limits = limits
  }

  private grow(by: number): void {
    this.size += by
    if (this.size > this.limits.maxResultBytes) {
      throw new ResultTooLarge(
        `mapping: result is larger than ${formatBytes(this.limits.maxResultBytes)}; ` +
          'select only the fields needed',
      )
    }
  }

  private text(value: string): string {
    this.grow(value.length + 2)
    if (!MAYBE_UNSTORABLE.test(value)) return value
    const clean = value.replace(UNSTORABLE, (found) => (found === '\u0000' ? '' : '\uFFFD'))
    if (clean !== value) this.repaired++
    return clean
  }

  copy(value: JsonValue, depth: number): JsonValue {
    if (typeof value === 'string') return this.text(value)
    if (value === null || typeof value !== 'object') {
      this.grow(typeof value === 'number' ? String(value).length : 5)
      return value
    }
    if (depth >= this.limits.maxResultDepth) {
      throw new ResultTooLarge(
        `mapping: result is nested deeper than ${this.limits.maxResultDepth} levels`,
      )
    }
    this.grow(2)
    if (Array.isArray(value)) {
      const items: JsonValue[] = []
      for (const item of value) {
        this.grow(1)
        items.push(this.copy(item, depth + 1))
      }
      return items
    }
    const out = Object.create(null) as Record<string, JsonValue>
    const source = value as Readonly<Record<string, JsonValue>>
    for (const key of Object.keys(source)) {
      this.grow(2)
      const cleanKey = this.text(key)
      // A key that only differed from another one by a NUL: the first one wins.
      if (!Object.hasOwn(out, cleanKey)) {
        out[cleanKey] = this.copy(source[key] as JsonValue, depth + 1)
      }
    }
    return out
  }
}

function toStoredAttributes(
  result: Readonly<Record<string, JsonValue>>,
  limits: MappingLimits,
): Result<{ attributes: Record<string, JsonValue>; repaired: number }, MappingError> {
  const copier = new AttributeCopier(limits)
  try {
    const attributes = copier.copy(result, 0) as Record<string, JsonValue>
    return ok({ attributes, repaired: copier.repaired })
  } catch (cause) {
    if (cause instanceof ResultTooLarge) return err({ message: cause.message })
    throw cause
  }
}

// ---------------------------------------------------------------------------------------------
// Syntax errors with a position

const TOKEN_TEXT: Readonly<Record<string, string>> = {
  Colon: ':',
  Comma: ',',
  Rbracket: ']',
  Rbrace: '}',
  Rparen: ')',
  Star: '*',
}

/**
 * Turns a parse error into "syntax error at position N: …" (0-based offset into the
 * expression). The library's errors carry no position, so it is found by parsing prefixes:
 * the error sits at the first token whose prefix already fails with the same message
 * (found by binary search; best effort when an earlier prefix fails the same way).
 */
export function describeSyntaxError(expression: string, cause: unknown): string {
  const message = cause instanceof Error ? cause.message : String(cause)
  const name = cause instanceof Error ? cause.name : ''
  // The lexer's literal error ends with the character it stopped at, which depends on the prefix.
  const kind = (text: string): string => text.replace(/(JSON literal):[\s\S]*$/, '$1')
  const fails = (prefix: string, parse: (text: string) => unknown): boolean => {
    try {
      parse(prefix)
      return false
    } catch (other) {
      return other instanceof Error && kind(other.message) === kind(message)
    }
  }

  if (name === 'LexerError') {
    const position = firstFailing(expression.length, (length) =>
      fails(expression.slice(0, length), tokenize),
    )
    const at = position === null ? expression.length : position - 1
    const what = /unknown character/.test(message)
      ? `unexpected character ${JSON.stringify(expression.charAt(at))}`
      : /JSON literal/.test(message)
        ? 'invalid JSON literal between backquotes'
        : 'unterminated or invalid quoted name'
    return `syntax error at position ${at}: ${what}`
  }

  const expected = /\bexpected (\w+), got/.exec(message)?.[1]
  const expecting = expected === undefined ? '' : ` (expected ${quoteToken(expected)})`
  if (/\bEOF\b/.test(message)) {
    const end = expression.trimEnd().length
    return `syntax error at position ${end}: the expression ends too early${expecting}`
  }
  let tokens: ReturnType<typeof tokenize> = []
  try {
    tokens = tokenize(expression)
  } catch {
    // The lexer accepted the text when compile ran; keep going without tokens.
  }
  const endOf = (i: number): number => tokens[i + 1]?.start ?? expression.length
  const index = firstFailing(tokens.length, (count) =>
    fails(expression.slice(0, endOf(count - 1)), compile),
  )
  const token = index === null ? undefined : tokens[index - 1]
  if (token === undefined || index === null) return `syntax error: ${plainMessage(message)}`
  const text = expression.slice(token.start, endOf(index - 1)).trim()
  let what = `unexpected ${JSON.stringify(text)}${expecting}`
  if (/too many colons/.test(message)) what = 'too many colons in a slice'
  else if (/quoted identifier not allowed/.test(message)) {
    what = 'a quoted name cannot be called as a function'
  } else if (/expecting an identifier/.test(message)) {
    what = `unexpected ${JSON.stringify(text)} (expected a key name)`
  }
  return `syntax error at position ${token.start}: ${what}`
}

/** Smallest n in 1..count for which `failsAt(n)` holds, assuming it holds from there on. */
function firstFailing(count: number, failsAt: (n: number) => boolean): number | null {
  if (count < 1 || !failsAt(count)) return null
  let low = 1
  let high = count
  while (low < high) {
    const middle = Math.floor((low + high) / 2)
    if (failsAt(middle)) high = middle
    else low = middle + 1
  }
  return low
}

function quoteToken(tokenType: string): string {
  const text = TOKEN_TEXT[tokenType]
  return text === undefined ? tokenType : `"${text}"`
}

function plainMessage(message: string): string {
  return message.replace(/^Syntax error[:,]?\s*/i, '')
}

// ---------------------------------------------------------------------------------------------
// Pasted mappings

/**
 * Undoes what copying a mapping out of documentation or JSON tends to do to it, and says what it
 * did. Each step runs only while the expression is still not valid (except unwrapping a quoted
 * object, see below), so a valid expression comes back unchanged:
 *
 * 1. Surrounding whitespace and a Markdown code fence are removed.
 * 2. A whole expression in double quotes (a JSON string, `"{\"userName\": user.id}"`), single
 *    quotes or backquotes is unwrapped. A double-quoted or single-quoted text is valid JMESPath
 *    (a quoted field name, a raw string), so it is unwrapped when it holds an object
 *    (`{...}`) or when it is not valid as it is.
 * 3. Typographic quotes become plain ones.
 * 4. Escaped quotes `\"` become `"`.
 * 5. An unmatched `"` at the start or end is removed.
 *
 * The product page's example as it was printed, `{"userName\": user.id, \"fullName\": user.name, \"email\": user.email}"`,
 * goes through steps 4 and 5. When nothing makes the expression valid, the input comes back
 * trimmed and without notes, so the syntax error refers to what the admin typed.
 */
export function normalizePastedMapping(input: string): { expression: string; notes: string[] } {
  const original = input.trim()
  if (original === '' || original.length > 4 * MAPPING_LIMITS.maxExpressionLength) {
    return { expression: original, notes: [] }
  }
  const notes: string[] = []
  let text = original
  const fence = /^```[^\n]*\n([\s\S]*?)\n?```$/.exec(text)
  if (fence?.[1] !== undefined) {
    text = fence[1].trim()
    notes.push('removed the Markdown code fence around it')
  }
  text = unwrap(text, notes)
  const steps: [RegExp, string, string][] = [
    [/[\u201C\u201D\u201E\u2033]/g, '"', 'replaced typographic double quotes with "'],
    [/[\u2018\u2019\u201A\u2032]/g, "'", "replaced typographic single quotes with '"],
    [/\\"/g, '"', 'replaced escaped quotes \\" with "'],
  ]
  for (const [pattern, replacement, note] of steps) {
    if (parses(text)) break
    const next = text.replace(pattern, replacement)
    if (next !== text) {
      text = unwrap(next, notes)
      notes.push(note)
    }
  }
  if (!parses(text)) {
    if (text.endsWith('"') && parses(text.slice(0, -1).trimEnd())) {
      text = text.slice(0, -1).trimEnd()
      notes.push('removed an unmatched " at the end')
    } else if (text.startsWith('"') && parses(text.slice(1).trimStart())) {
      text = text.slice(1).trimStart()
      notes.push('removed an unmatched " at the start')
    }
  }
  return parses(text) ? { expression: text, notes } : { expression: original, notes: [] }
}

function unwrap(text: string, notes: string[]): string {
  const quote = text.charAt(0)
  if (text.length < 2 || !`"'\``.includes(quote) || !text.endsWith(quote)) return text
  let inner: string | null = null
  if (quote === '"') {
    const parsed = parseJsonBounded(text, { maxBytes: text.length * 3, maxDepth: 1 })
    if (parsed.ok && typeof parsed.value === 'string') inner = parsed.value.trim()
  } else {
    inner = text.slice(1, -1).replaceAll(`\\${quote}`, quote).trim()
  }
  if (inner === null || inner === '') return text
  if (inner.startsWith('{') || !parses(text)) {
    const name = quote === '"' ? 'double quotes' : quote === "'" ? 'single quotes' : 'backquotes'
    notes.push(`removed the ${name} around it`)
    return inner
  }
  return text
}

function parses(text: string): boolean {
  if (text === '') return false
  try {
    compile(text)
    return true
  } catch {
    return false
  }
}
