/**
 * What the evaluator and its functions share: the work meter, the error type, expression
 * references, and value helpers that charge the meter as they go.
 *
 * The meter is the bound on evaluation. `@jmespath-community/jmespath` has no limits of its own
 * (jmespath-community/typescript-jmespath#68), and static limits on the expression cannot bound
 * the work either: `[@,@][] | [@,@][] | ...` doubles its data with every stage, so an expression
 * of a few hundred characters describes 2^100 values. So every piece of work is paid for in
 * *steps* from a fixed allowance, before it is done whenever its size is known in advance:
 *
 * - one step for every node visited, every array element or object key created or scanned,
 *   every comparison made by a sort;
 * - one step per CHARS_PER_STEP characters a string operation reads or builds (those are far
 *   cheaper per unit than a visit); splitting a string into code points costs a step per
 *   character, since it allocates one string each;
 * - no string longer than `maxStringLength` is built.
 *
 * An operation whose size is not known in advance is linear in values that already exist, and is
 * charged right after; since every existing value was itself paid for (or is the input
 * data, which the caller bounds), such an operation overshoots the allowance by at most one value's size. Values are
 * shared, not copied (`[@, @]` holds the same array twice), so nothing may walk a value without
 * paying per node; the helpers below (deep equality, `to_string`) pay as they walk.
 *
 * The wall clock is a second bound, checked every CLOCK_CHECK_STEPS steps (from the first
 * check on, so small evaluations never read it), in case the cost model is wrong somewhere.
 * Evaluation is synchronous: nothing else runs on the thread while one evaluates, so both bounds
 * are what keep a hostile expression from stalling the process.
 */
import type { Node } from './ast.ts'
import { isJsonObject, type JsonObject, type JsonValue } from './json.ts'

export const CHARS_PER_STEP = 16
const CLOCK_CHECK_STEPS = 2048

export interface EvaluationLimits {
  /** The work allowance, in steps (see above). */
  readonly maxSteps: number
  /** Wall-clock budget for one evaluation. */
  readonly maxMillis: number
  /** The longest string evaluation may build, in UTF-16 units. */
  readonly maxStringLength: number
}

/**
 * A reason an expression cannot be evaluated on the given data. Messages name parts of the
 * expression and types of values, never the values themselves, so they may be shown and logged.
 */
export class EvaluationError extends Error {
  override readonly name = 'EvaluationError'
  readonly kind: 'runtime' | 'budget'

  constructor(message: string, kind: 'runtime' | 'budget' = 'runtime') {
    super(message)
    this.kind = kind
  }
}

export class Meter {
  private readonly limits: EvaluationLimits
  private readonly clock: () => number
  private deadline: number | null = null
  private remaining: number
  private checkBelow: number

  constructor(limits: EvaluationLimits, clock: () => number) {
    this.limits = limits
    this.clock = clock
    this.remaining = limits.maxSteps
    this.checkBelow = Math.max(0, this.remaining - CLOCK_CHECK_STEPS)
  }

  get stepsUsed(): number {
    return this.limits.maxSteps - this.remaining
  }

  step(units: number): void {
    this.remaining -= units
    if (this.remaining < this.checkBelow) this.check()
  }

  chars(count: number): void {
    this.step(count / CHARS_PER_STEP)
  }

  /** Refuses to build a string of `length` units, and pays for building it. */
  buildString(length: number): void {
    this.checkStringLength(length)
    this.chars(length)
  }

  checkStringLength(length: number): void {
    if (length > this.limits.maxStringLength) {
      throw new EvaluationError(
        `would build a string longer than ${this.limits.maxStringLength} characters`,
        'budget',
      )
    }
  }

  private check(): void {
    if (this.remaining < 0) {
      throw new EvaluationError(
        `needs more than ${this.limits.maxSteps} steps; an expression that multiplies its data ` +
          '(nested projections, multi-selects or flattens) is the usual cause',
        'budget',
      )
    }
    // The clock starts at the first check rather than at the first step: most evaluations
    // never reach it, and the steps before it take microseconds.
    const now = this.clock()
    this.deadline ??= now + this.limits.maxMillis
    if (now > this.deadline) {
      throw new EvaluationError(`took longer than ${this.limits.maxMillis} ms`, 'budget')
    }
    this.checkBelow = Math.max(0, this.remaining - CLOCK_CHECK_STEPS)
  }
}

/** Lexical scope of `let` variables (JEP-18). */
export interface Scope {
  readonly variables: ReadonlyMap<string, JsonValue>
  readonly parent: Scope | null
}

/** `&expr` as a function argument; it keeps the scope it was written in. */
export class Expref {
  readonly node: Node
  readonly scope: Scope | null

  constructor(node: Node, scope: Scope | null) {
    this.node = node
    this.scope = scope
  }
}

export type Argument = JsonValue | Expref

export function isFalse(value: JsonValue, meter: Meter): boolean {
  if (value === null || value === false || value === '') return true
  if (Array.isArray(value)) return value.length === 0
  if (typeof value === 'object') {
    const size = Object.keys(value).length
    meter.step(size)
    return size === 0
  }
  return false
}

export function typeName(value: Argument): string {
  if (value instanceof Expref) return 'expression'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  return typeof value
}

/** A type name for messages: "a string", "an array", "null". */
export function article(name: string): string {
  if (name === 'null') return 'null'
  return /^[aeiou]/.test(name) ? `an ${name}` : `a ${name}`
}

/** JMESPath equality: deep, on JSON values. Pays one step per node compared. */
export function deepEqual(a: JsonValue, b: JsonValue, meter: Meter): boolean {
  if (typeof a === 'string' && typeof b === 'string') {
    // Paid before `===`: two equal strings that are not the same object compare char by char.
    meter.step(1)
    meter.chars(Math.min(a.length, b.length))
    return a === b
  }
  if (a === b) return true
  meter.step(1)
  if (typeof a === 'string' || typeof b === 'string') return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) {
      if (!deepEqual(a[i] as JsonValue, b[i] as JsonValue, meter)) return false
    }
    return true
  }
  if (isJsonObject(a)) {
    if (!isJsonObject(b)) return false
    const keys = Object.keys(a)
    const otherSize = Object.keys(b).length
    meter.step(keys.length + otherSize)
    if (keys.length !== otherSize) return false
    for (const key of keys) {
      if (!Object.hasOwn(b, key)) return false
      if (!deepEqual(a[key] as JsonValue, b[key] as JsonValue, meter)) return false
    }
    return true
  }
  return false
}

/**
 * Orders strings by code point, as JMESPath requires (UTF-16 order differs for characters
 * above U+FFFF versus U+E000–U+FFFF). Callers pay for the characters compared.
 */
export function compareStrings(a: string, b: string): number {
  const length = Math.min(a.length, b.length)
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return codeUnitRank(x) - codeUnitRank(y)
  }
  return a.length - b.length
}

function codeUnitRank(unit: number): number {
  if (unit < 0xd800) return unit
  return unit <= 0xdfff ? unit + 0x2000 : unit - 0x800
}

/** `JSON.stringify` for JSON values that pays as it writes and stops at the string bound. */
export function stringifyJson(value: JsonValue, meter: Meter): string {
  const parts: string[] = []
  let length = 0
  const write = (text: string): void => {
    length += text.length
    meter.checkStringLength(length)
    meter.chars(text.length)
    parts.push(text)
  }
  const walk = (current: JsonValue): void => {
    meter.step(1)
    if (current === null || typeof current !== 'object') {
      write(JSON.stringify(current))
    } else if (Array.isArray(current)) {
      write('[')
      for (let i = 0; i < current.length; i++) {
        if (i > 0) write(',')
        walk(current[i] as JsonValue)
      }
      write(']')
    } else {
      write('{')
      let first = true
      for (const key of Object.keys(current)) {
        write(first ? JSON.stringify(key) + ':' : ',' + JSON.stringify(key) + ':')
        first = false
        walk((current as JsonObject)[key] as JsonValue)
      }
      write('}')
    }
  }
  walk(value)
  return parts.join('')
}
