/**
 * The JMESPath functions an expression may call: the 26 of the JMESPath specification and the
 * 15 that `@jmespath-community/jmespath` 1.3.0 adds (string functions of JEP-14, `items`,
 * `from_items`, `group_by`, `zip`, ...). Anything else, including functions registered on the
 * library at run time, is refused by prepareExpression (prepare.ts).
 *
 * They are written here rather than taken from the library because each one must pay the
 * evaluation meter for its work before doing it (runtime.ts), and some of the library's
 * cannot be bounded or are unsafe: `replace(s, a, b, n)` allocates an n-element array, `trim_right`
 * uses a regular expression that backtracks quadratically, `merge` and `group_by` write keys from
 * the data such as `__proto__` into ordinary objects, `sort_by` and `max_by` compare strings by
 * allocating their code points on every comparison.
 *
 * Behaviour follows the library, except where the library contradicts the specification:
 * `sort` orders numbers numerically (the library sorts them as text), `contains` on an array
 * compares deeply, `min`/`max` of strings and `max_by`/`min_by` with string keys order by code
 * point, `replace` with a count replaces the first n occurrences left to right, `pad_left('', n)`
 * pads, and `to_number` accepts only JSON number syntax (the library takes `''` as 0 and `'0x1F'`
 * as 31).
 */
import {
  emptyObject,
  isJsonObject,
  type JsonArray,
  type JsonObject,
  type JsonValue,
} from './json.ts'
import {
  article,
  compareStrings,
  deepEqual,
  EvaluationError,
  Expref,
  stringifyJson,
  typeName,
  type Argument,
  type Meter,
} from './runtime.ts'

type ArgType =
  | 'any'
  | 'number'
  | 'string'
  | 'boolean'
  | 'array'
  | 'object'
  | 'expression'
  | 'array-number'
  | 'array-string'
  | 'array-array'

export interface FunctionContext {
  readonly meter: Meter
  applyExpref(ref: Expref, value: JsonValue): JsonValue
}

export interface FunctionSpec {
  /** Allowed types of each parameter; with `variadic`, the last one repeats. */
  readonly params: readonly (readonly ArgType[])[]
  /** How many trailing parameters may be left out. */
  readonly optional?: number
  readonly variadic?: boolean
  readonly call: (args: readonly Argument[], context: FunctionContext) => JsonValue
}

const NUMBER = ['number'] as const
const STRING = ['string'] as const
const ARRAY = ['array'] as const
const OBJECT = ['object'] as const
const ANY = ['any'] as const
const EXPRESSION = ['expression'] as const

const str = (args: readonly Argument[], i: number): string => args[i] as string
const num = (args: readonly Argument[], i: number): number => args[i] as number
const arr = (args: readonly Argument[], i: number): JsonArray => args[i] as JsonArray
const obj = (args: readonly Argument[], i: number): JsonObject => args[i] as JsonObject
const ref = (args: readonly Argument[], i: number): Expref => args[i] as Expref

function finite(name: string, value: number): number {
  if (!Number.isFinite(value)) throw new EvaluationError(`${name}() gave a number out of range`)
  return value
}

function integer(name: string, what: string, value: Argument | undefined, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    const bound = min === 0 ? 'a non-negative integer' : 'an integer'
    throw new EvaluationError(`${name}() ${what} must be ${bound}`)
  }
  return value
}

function log2Ceil(n: number): number {
  return n < 2 ? 1 : Math.ceil(Math.log2(n))
}

function totalLength(strings: readonly string[]): number {
  let total = 0
  for (const s of strings) total += s.length
  return total
}

/** Pays for a sort of `n` items that compares strings of `chars` characters in total. */
function paySort(meter: Meter, n: number, chars: number): void {
  const rounds = log2Ceil(n) + 1
  meter.step(n * rounds)
  meter.chars(chars * rounds)
}

/** Keys for `sort_by`, `min_by`, `max_by`: all numbers or all strings, as the spec requires. */
function sortKeys(
  name: string,
  items: JsonArray,
  expref: Expref,
  context: FunctionContext,
): { keys: (number | string)[]; strings: boolean } {
  context.meter.step(items.length)
  const keys: (number | string)[] = []
  let kind: 'number' | 'string' | null = null
  for (const item of items) {
    const key = context.applyExpref(expref, item)
    if (typeof key !== 'number' && typeof key !== 'string') {
      throw new EvaluationError(
        `${name}() expression must give numbers or strings, got ${typeName(key)}`,
      )
    }
    const keyKind = typeof key === 'number' ? 'number' : 'string'
    if (kind !== null && keyKind !== kind) {
      throw new EvaluationError(`${name}() expression gave both numbers and strings`)
    }
    kind = keyKind
    keys.push(key)
  }
  return { keys, strings: kind === 'string' }
}

function compareKeys(a: number | string, b: number | string): number {
  return typeof a === 'number' ? a - (b as number) : compareStrings(a, b as string)
}

function extremeBy(
  name: string,
  args: readonly Argument[],
  context: FunctionContext,
  sign: number,
): JsonValue {
  const items = arr(args, 0)
  if (items.length === 0) return null
  const { keys, strings } = sortKeys(name, items, ref(args, 1), context)
  if (strings) context.meter.chars(totalLength(keys as string[]))
  let best = 0
  for (let i = 1; i < keys.length; i++) {
    if (sign * compareKeys(keys[i] as number | string, keys[best] as number | string) > 0) best = i
  }
  return items[best] as JsonValue
}

function extreme(args: readonly Argument[], meter: Meter, sign: number): JsonValue {
  const items = arr(args, 0)
  if (items.length === 0) return null
  meter.step(items.length)
  if (typeof items[0] === 'string') meter.chars(totalLength(items as string[]))
  let best = items[0] as number | string
  for (let i = 1; i < items.length; i++) {
    const item = items[i] as number | string
    if (sign * compareKeys(item, best) > 0) best = item
  }
  return best
}

const isWhitespace = (char: string): boolean => /^[\s\u0085]$/.test(char)

function trimWith(args: readonly Argument[], meter: Meter, left: boolean, right: boolean): string {
  const subject = str(args, 0)
  const chars = args.length > 1 ? str(args, 1) : ''
  meter.chars(subject.length)
  meter.step(chars.length)
  const set = chars === '' ? null : new Set(Array.from(chars))
  const strip = (char: string): boolean => (set === null ? isWhitespace(char) : set.has(char))
  const points = Array.from(subject)
  meter.step(points.length)
  let start = 0
  let end = points.length
  if (left) while (start < end && strip(points[start] as string)) start++
  if (right) while (end > start && strip(points[end - 1] as string)) end--
  return points.slice(start, end).join('')
}

function pad(args: readonly Argument[], meter: Meter, name: string, atStart: boolean): string {
  const subject = str(args, 0)
  const width = integer(name, 'width', args[1], 0)
  const filler = args.length > 2 && str(args, 2) !== '' ? str(args, 2) : ' '
  if (filler.length > 2 || Array.from(filler).length !== 1) {
    throw new EvaluationError(`${name}() pad must be a single character`)
  }
  meter.buildString(Math.max(width * filler.length, subject.length))
  return atStart ? subject.padStart(width, filler) : subject.padEnd(width, filler)
}

function replace(args: readonly Argument[], meter: Meter): string {
  const subject = str(args, 0)
  const old = str(args, 1)
  const replacement = str(args, 2)
  const count = args.length > 3 ? integer('replace', 'count', args[3], 0) : Infinity
  if (count === 0) return subject
  meter.chars(subject.length)
  if (old === '') {
    // Between every two characters, as the library does with `split('').join(new)`.
    const points = Array.from(subject)
    meter.step(points.length)
    const gaps = Math.min(count, Math.max(points.length - 1, 0))
    meter.buildString(subject.length + gaps * replacement.length)
    return points.slice(0, gaps + 1).join(replacement) + points.slice(gaps + 1).join('')
  }
  const found: number[] = []
  for (let at = subject.indexOf(old); at !== -1 && found.length < count;) {
    found.push(at)
    at = subject.indexOf(old, at + old.length)
  }
  meter.step(found.length)
  meter.buildString(subject.length + found.length * (replacement.length - old.length))
  let out = ''
  let from = 0
  for (const at of found) {
    out += subject.slice(from, at) + replacement
    from = at + old.length
  }
  return out + subject.slice(from)
}

function split(args: readonly Argument[], meter: Meter): JsonValue {
  const subject = str(args, 0)
  const separator = str(args, 1)
  const count = args.length > 2 ? integer('split', 'count', args[2], 0) : Infinity
  meter.chars(subject.length)
  if (subject === '' && separator === '') return []
  if (count === 0) return [subject]
  const pieces = separator === '' ? Array.from(subject) : subject.split(separator)
  meter.step(pieces.length)
  if (pieces.length <= count + 1) return pieces
  return [...pieces.slice(0, count), pieces.slice(count).join(separator)]
}

const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/

export const FUNCTIONS: ReadonlyMap<string, FunctionSpec> = new Map<string, FunctionSpec>([
  ['abs', { params: [NUMBER], call: (a) => Math.abs(num(a, 0)) }],
  [
    'avg',
    {
      params: [['array-number']],
      call: (a, { meter }) => {
        const items = arr(a, 0) as readonly number[]
        if (items.length === 0) return null
        meter.step(items.length)
        let sum = 0
        for (const n of items) sum += n
        return finite('avg', sum / items.length)
      },
    },
  ],
  ['ceil', { params: [NUMBER], call: (a) => Math.ceil(num(a, 0)) }],
  [
    'contains',
    {
      params: [['array', 'string'], ANY],
      call: (a, { meter }) => {
        const subject = a[0] as JsonValue
        const search = a[1] as JsonValue
        if (typeof subject === 'string') {
          if (typeof search !== 'string') return null
          meter.chars(subject.length)
          return subject.includes(search)
        }
        meter.step((subject as JsonArray).length)
        return (subject as JsonArray).some((item) => deepEqual(item, search, meter))
      },
    },
  ],
  [
    'ends_with',
    {
      params: [STRING, STRING],
      call: (a, { meter }) => (meter.chars(str(a, 1).length), str(a, 0).endsWith(str(a, 1))),
    },
  ],
  [
    'find_first',
    {
      params: [STRING, STRING, NUMBER, NUMBER],
      optional: 2,
      call: (a, { meter }) => find(a, meter, 'find_first', false),
    },
  ],
  [
    'find_last',
    {
      params: [STRING, STRING, NUMBER, NUMBER],
      optional: 2,
      call: (a, { meter }) => find(a, meter, 'find_last', true),
    },
  ],
  ['floor', { params: [NUMBER], call: (a) => Math.floor(num(a, 0)) }],
  [
    'from_items',
    {
      params: [['array-array']],
      call: (a, { meter }) => {
        const pairs = arr(a, 0) as readonly JsonArray[]
        meter.step(pairs.length)
        const out = emptyObject()
        for (const pair of pairs) {
          if (pair.length !== 2 || typeof pair[0] !== 'string') {
            throw new EvaluationError('from_items() needs [key, value] pairs with a string key')
          }
          out[pair[0]] = pair[1] as JsonValue
        }
        return out
      },
    },
  ],
  [
    'group_by',
    {
      params: [ARRAY, EXPRESSION],
      call: (a, context) => {
        const items = arr(a, 0)
        context.meter.step(items.length)
        const groups = Object.create(null) as Record<string, JsonValue[]>
        for (const item of items) {
          const key = context.applyExpref(ref(a, 1), item)
          if (typeof key !== 'string') {
            throw new EvaluationError(
              `group_by() expression must give strings, got ${typeName(key)}`,
            )
          }
          ;(groups[key] ??= []).push(item)
        }
        return groups
      },
    },
  ],
  [
    'items',
    {
      params: [OBJECT],
      call: (a, { meter }) => {
        const source = obj(a, 0)
        const keys = Object.keys(source)
        meter.step(2 * keys.length)
        return keys.map((key) => [key, source[key] as JsonValue])
      },
    },
  ],
  [
    'join',
    {
      params: [STRING, ['array-string']],
      call: (a, { meter }) => {
        const glue = str(a, 0)
        const parts = arr(a, 1) as readonly string[]
        meter.step(parts.length)
        meter.buildString(totalLength(parts) + glue.length * Math.max(parts.length - 1, 0))
        return parts.join(glue)
      },
    },
  ],
  [
    'keys',
    {
      params: [OBJECT],
      call: (a, { meter }) => {
        const keys = Object.keys(obj(a, 0))
        meter.step(keys.length)
        return keys
      },
    },
  ],
  [
    'length',
    {
      params: [['string', 'array', 'object']],
      call: (a, { meter }) => {
        const subject = a[0] as JsonValue
        if (typeof subject === 'string') {
          meter.chars(subject.length)
          let count = 0
          for (let i = 0; i < subject.length; i++) {
            const unit = subject.charCodeAt(i)
            if (unit < 0xdc00 || unit > 0xdfff) count++
          }
          return count
        }
        if (Array.isArray(subject)) return subject.length
        const keys = Object.keys(subject as JsonObject)
        meter.step(keys.length)
        return keys.length
      },
    },
  ],
  [
    'lower',
    {
      params: [STRING],
      call: (a, { meter }) => {
        meter.chars(str(a, 0).length)
        const out = str(a, 0).toLowerCase()
        meter.buildString(out.length)
        return out
      },
    },
  ],
  [
    'map',
    {
      params: [EXPRESSION, ARRAY],
      call: (a, context) => {
        const items = arr(a, 1)
        context.meter.step(items.length)
        return items.map((item) => context.applyExpref(ref(a, 0), item))
      },
    },
  ],
  [
    'max',
    { params: [['array-number', 'array-string']], call: (a, { meter }) => extreme(a, meter, 1) },
  ],
  [
    'max_by',
    { params: [ARRAY, EXPRESSION], call: (a, context) => extremeBy('max_by', a, context, 1) },
  ],
  [
    'merge',
    {
      params: [OBJECT],
      variadic: true,
      call: (a, { meter }) => {
        const out = emptyObject()
        for (const source of a as readonly JsonObject[]) {
          const keys = Object.keys(source)
          meter.step(keys.length)
          for (const key of keys) out[key] = source[key] as JsonValue
        }
        return out
      },
    },
  ],
  [
    'min',
    { params: [['array-number', 'array-string']], call: (a, { meter }) => extreme(a, meter, -1) },
  ],
  [
    'min_by',
    { params: [ARRAY, EXPRESSION], call: (a, context) => extremeBy('min_by', a, context, -1) },
  ],
  [
    'not_null',
    {
      params: [ANY],
      variadic: true,
      call: (a) => (a as readonly JsonValue[]).find((value) => value !== null) ?? null,
    },
  ],
  [
    'pad_left',
    {
      params: [STRING, NUMBER, STRING],
      optional: 1,
      call: (a, { meter }) => pad(a, meter, 'pad_left', true),
    },
  ],
  [
    'pad_right',
    {
      params: [STRING, NUMBER, STRING],
      optional: 1,
      call: (a, { meter }) => pad(a, meter, 'pad_right', false),
    },
  ],
  [
    'replace',
    {
      params: [STRING, STRING, STRING, NUMBER],
      optional: 1,
      call: (a, { meter }) => replace(a, meter),
    },
  ],
  [
    'reverse',
    {
      params: [['string', 'array']],
      call: (a, { meter }) => {
        const subject = a[0] as string | JsonArray
        if (typeof subject === 'string') {
          meter.step(subject.length)
          return Array.from(subject).reverse().join('')
        }
        meter.step(subject.length)
        return [...subject].reverse()
      },
    },
  ],
  [
    'sort',
    {
      params: [['array-number', 'array-string']],
      call: (a, { meter }) => {
        const items = arr(a, 0)
        if (items.length === 0) return []
        if (typeof items[0] === 'number') {
          paySort(meter, items.length, 0)
          return [...(items as readonly number[])].sort((x, y) => x - y)
        }
        paySort(meter, items.length, totalLength(items as readonly string[]))
        return [...(items as readonly string[])].sort(compareStrings)
      },
    },
  ],
  [
    'sort_by',
    {
      params: [ARRAY, EXPRESSION],
      call: (a, context) => {
        const items = arr(a, 0)
        if (items.length === 0) return []
        const { keys, strings } = sortKeys('sort_by', items, ref(a, 1), context)
        paySort(context.meter, items.length, strings ? totalLength(keys as string[]) : 0)
        const order = keys.map((_, i) => i)
        // Array.prototype.sort is stable, so equal keys keep their order, as the spec asks.
        order.sort((i, j) => compareKeys(keys[i] as number | string, keys[j] as number | string))
        return order.map((i) => items[i] as JsonValue)
      },
    },
  ],
  [
    'split',
    { params: [STRING, STRING, NUMBER], optional: 1, call: (a, { meter }) => split(a, meter) },
  ],
  [
    'starts_with',
    {
      params: [STRING, STRING],
      call: (a, { meter }) => (meter.chars(str(a, 1).length), str(a, 0).startsWith(str(a, 1))),
    },
  ],
  [
    'sum',
    {
      params: [['array-number']],
      call: (a, { meter }) => {
        const items = arr(a, 0) as readonly number[]
        meter.step(items.length)
        let sum = 0
        for (const n of items) sum += n
        return finite('sum', sum)
      },
    },
  ],
  [
    'to_array',
    {
      params: [ANY],
      call: (a) => (Array.isArray(a[0]) ? (a[0] as JsonArray) : [a[0] as JsonValue]),
    },
  ],
  [
    'to_number',
    {
      params: [ANY],
      call: (a, { meter }) => {
        const value = a[0]
        if (typeof value === 'number') return value
        if (typeof value !== 'string') return null
        meter.chars(value.length)
        if (!JSON_NUMBER.test(value)) return null
        const parsed = Number(value)
        return Number.isFinite(parsed) ? parsed : null
      },
    },
  ],
  [
    'to_string',
    {
      params: [ANY],
      call: (a, { meter }) => {
        const value = a[0] as JsonValue
        return typeof value === 'string' ? value : stringifyJson(value, meter)
      },
    },
  ],
  [
    'trim',
    {
      params: [STRING, STRING],
      optional: 1,
      call: (a, { meter }) => trimWith(a, meter, true, true),
    },
  ],
  [
    'trim_left',
    {
      params: [STRING, STRING],
      optional: 1,
      call: (a, { meter }) => trimWith(a, meter, true, false),
    },
  ],
  [
    'trim_right',
    {
      params: [STRING, STRING],
      optional: 1,
      call: (a, { meter }) => trimWith(a, meter, false, true),
    },
  ],
  ['type', { params: [ANY], call: (a) => typeName(a[0] as JsonValue) }],
  [
    'upper',
    {
      params: [STRING],
      call: (a, { meter }) => {
        meter.chars(str(a, 0).length)
        const out = str(a, 0).toUpperCase()
        meter.buildString(out.length)
        return out
      },
    },
  ],
  [
    'values',
    {
      params: [OBJECT],
      call: (a, { meter }) => {
        const values = Object.values(obj(a, 0))
        meter.step(values.length)
        return values
      },
    },
  ],
  [
    'zip',
    {
      params: [ARRAY],
      variadic: true,
      call: (a, { meter }) => {
        const lists = a as readonly JsonArray[]
        const length = Math.min(...lists.map((list) => list.length))
        meter.step(length * lists.length)
        const out: JsonValue[] = []
        for (let i = 0; i < length; i++) out.push(lists.map((list) => list[i] as JsonValue))
        return out
      },
    },
  ],
])

function find(args: readonly Argument[], meter: Meter, name: string, last: boolean): JsonValue {
  const subject = str(args, 0)
  const search = str(args, 1)
  // As the library: an empty subject or search finds nothing, and an end of 0 means "the end".
  const start = Math.max(args.length > 2 ? integer(name, 'start', args[2], -Infinity) : 0, 0)
  const endArg = args.length > 3 ? integer(name, 'end', args[3], -Infinity) : 0
  const end = Math.min(endArg === 0 ? subject.length : endArg, subject.length)
  if (subject === '' || search === '') return null
  meter.chars(subject.length)
  const window = subject.slice(start, end)
  let offset: number
  if (!last) offset = window.indexOf(search)
  else if (search.length <= 32) {
    // V8's lastIndexOf compares naively, in time proportional to both lengths.
    meter.chars(window.length * search.length)
    offset = window.lastIndexOf(search)
  } else {
    // For a long search, reverse both and use indexOf, which is linear.
    meter.step(window.length + search.length)
    const reversed = window.split('').reverse().join('')
    const at = reversed.indexOf(search.split('').reverse().join(''))
    offset = at === -1 ? -1 : window.length - at - search.length
  }
  return offset === -1 ? null : offset + start
}

/** The number of arguments a function takes, for messages: "1", "2 or 3", "at least 1". */
function arity(spec: FunctionSpec): { min: number; max: number; text: string } {
  const max = spec.params.length
  const min = max - (spec.optional ?? 0)
  if (spec.variadic) return { min, max: Infinity, text: `at least ${min}` }
  if (min === max) return { min, max, text: String(min) }
  return { min, max, text: max === min + 1 ? `${min} or ${max}` : `${min} to ${max}` }
}

/** A problem with the number of arguments, or null; prepareExpression checks it too. */
export function arityProblem(name: string, spec: FunctionSpec, count: number): string | null {
  const { min, max, text } = arity(spec)
  if (count >= min && count <= max) return null
  const noun = text.endsWith(' 1') || text === '1' ? 'argument' : 'arguments'
  return `${name}() takes ${text} ${noun}, got ${count}`
}

/** Whether a parameter takes an expression reference (`&expr`) rather than a value. */
export function takesExpression(spec: FunctionSpec, index: number): boolean {
  const types = spec.params[Math.min(index, spec.params.length - 1)] ?? []
  return types.includes('expression')
}

export function checkArguments(
  name: string,
  spec: FunctionSpec,
  args: readonly Argument[],
  meter: Meter,
): void {
  const problem = arityProblem(name, spec, args.length)
  if (problem !== null) throw new EvaluationError(problem)
  for (let i = 0; i < args.length; i++) {
    const types = spec.params[Math.min(i, spec.params.length - 1)] ?? ANY
    const arg = args[i] as Argument
    if (!types.some((type) => matches(type, arg, meter))) {
      throw new EvaluationError(
        `${name}() argument ${i + 1} must be ${types.map(describeType).join(' or ')}, ` +
          `got ${describeArgument(arg, types)}`,
      )
    }
  }
}

function matches(type: ArgType, arg: Argument, meter: Meter): boolean {
  if (type === 'expression') return arg instanceof Expref
  if (arg instanceof Expref) return false
  switch (type) {
    case 'any':
      return true
    case 'array':
      return Array.isArray(arg)
    case 'object':
      return isJsonObject(arg)
    case 'number':
    case 'string':
    case 'boolean':
      return typeof arg === type
    default: {
      if (!Array.isArray(arg)) return false
      meter.step(arg.length)
      const element =
        type === 'array-number' ? 'number' : type === 'array-string' ? 'string' : 'array'
      return arg.every((item) => typeName(item) === element)
    }
  }
}

function describeType(type: ArgType): string {
  switch (type) {
    case 'any':
      return 'any value'
    case 'expression':
      return 'an expression reference (&expr)'
    case 'array-number':
      return 'an array of numbers'
    case 'array-string':
      return 'an array of strings'
    case 'array-array':
      return 'an array of arrays'
    case 'array':
    case 'object':
      return `an ${type}`
    default:
      return `a ${type}`
  }
}

function describeArgument(arg: Argument, types: readonly ArgType[]): string {
  const elements = types.filter((type) => type.startsWith('array-')).map((type) => type.slice(6))
  if (Array.isArray(arg) && elements.length > 0) {
    const odd = arg.find((item) => !elements.includes(typeName(item)))
    if (odd !== undefined) return `an array containing ${article(typeName(odd))}`
  }
  return article(typeName(arg))
}
