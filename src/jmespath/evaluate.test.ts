import { compile, search } from '@jmespath-community/jmespath'
import { describe, expect, it } from 'vitest'
import {
  evaluateExpression,
  EvaluationError,
  prepareExpression,
  type EvaluationLimits,
  type JsonValue,
} from './index.ts'
import { copyJson } from './json.ts'

const LIMITS: EvaluationLimits = {
  maxSteps: 1_000_000,
  maxMillis: 60_000,
  maxStringLength: 1_000_000,
}

function evaluate(
  expression: string,
  data: unknown,
  limits = LIMITS,
): { value: JsonValue; steps: number } {
  const prepared = prepareExpression(compile(expression), { maxNodes: 500, maxDepth: 32 })
  if (!prepared.ok) throw new Error(prepared.problem)
  // Null-prototype JSON, as the engine's callers are expected to pass.
  const payload = copyJson(data, 64)
  if (!payload.ok) throw new Error(payload.problem)
  return evaluateExpression(prepared.ast, payload.value, limits, () => performance.now())
}

const value = (expression: string, data: unknown = null): unknown =>
  JSON.parse(JSON.stringify(evaluate(expression, data).value)) as unknown

function failure(expression: string, data: unknown = null): string {
  try {
    evaluate(expression, data)
  } catch (cause) {
    if (cause instanceof EvaluationError) return cause.message
    throw cause
  }
  throw new Error(`${expression} did not fail`)
}

const DATA = {
  foo: {
    bar: { baz: [1, 2, 3] },
    list: [{ a: 1, b: 'x' }, { a: 2, b: 'y' }, { a: 3 }],
    empty: [],
    obj: {},
  },
  people: [
    { name: 'b', age: 30, tags: ['x', 'y'] },
    { name: 'a', age: 25, tags: [] },
    { name: 'c', age: 35, tags: ['z'] },
  ],
  nums: [3, 1, 2],
  strs: ['b', 'a', 'c'],
  nested: [[1, 2], [3, [4]], 5],
  s: 'hello world',
  n: null,
  t: true,
  f: false,
  z: 0,
  user: { id: 'billy.bob', name: 'Billy Bob', email: 'b@example.com' },
}

/** Expressions whose result must be the library's, on DATA. */
const SAME_AS_LIBRARY = [
  'foo.bar.baz',
  'foo.bar.baz[0]',
  'foo.bar.baz[-1]',
  'foo.bar.baz[5]',
  'foo.list[*].a',
  'foo.list[*].b',
  'foo.list[?a > `1`].a',
  'foo.list[?b].b',
  'foo.list[?b == `"x"`]',
  'foo.*',
  'foo.*.baz',
  '*.bar',
  'nested[]',
  'nested[][]',
  'nested[0]',
  'foo.list[].a',
  'people[*].name',
  'people[?age >= `30`].name',
  'people[?!tags]',
  'people[?tags]',
  'people | [0]',
  'people[0:2]',
  'people[::-1].name',
  'people[1:]',
  'nums[::2]',
  'nums[5:1:-1]',
  'nums[-2:]',
  's[::-1]',
  's[0:5]',
  "'abc'",
  '`[1, {"a": 2}]`',
  '`"x"`',
  '{a: foo.bar, b: nums}',
  '[s, n, t]',
  'n || s',
  's && n',
  't && f',
  '!f',
  '!s',
  '!z',
  'foo.empty || `"d"`',
  'foo.obj || `"d"`',
  'z || `1`',
  'a == b',
  'nums == `[3,1,2]`',
  'nums != strs',
  'foo.list[0] == `{"a": 1, "b": "x"}`',
  '`1` < `2`',
  's < `1`',
  'people[?age > `25` && age < `35`].name',
  'people[?age < `26` || age > `34`].name',
  't ? s : n',
  'f ? s : n',
  'length(s)',
  'length(people)',
  'length(foo)',
  'abs(`-3`)',
  'avg(nums)',
  'ceil(`1.2`)',
  'floor(`1.8`)',
  'contains(strs, `"a"`)',
  'contains(s, `"world"`)',
  "ends_with(s, 'world')",
  "starts_with(s, 'hell')",
  'join(`", "`, strs)',
  'keys(user)',
  'values(user)',
  'max(nums)',
  'min(nums)',
  'max(strs)',
  'min(strs)',
  'max_by(people, &age).name',
  'min_by(people, &age).name',
  'merge(user, `{"x": 1}`)',
  'not_null(n, s)',
  'reverse(nums)',
  'reverse(s)',
  'sort(strs)',
  'sort_by(people, &age)[*].name',
  'sort_by(people, &name)[*].name',
  'sum(nums)',
  'to_array(s)',
  'to_array(nums)',
  'to_number(`"12"`)',
  'to_number(`"1.5e2"`)',
  'to_string(nums)',
  'to_string(user)',
  'type(s)',
  'type(n)',
  'type(people)',
  'map(&name, people)',
  'lower(user.name)',
  'upper(s)',
  "split(s, ' ')",
  "split(s, 'o', `1`)",
  "split(s, '')",
  "replace(s, 'o', '0')",
  "replace('aabaaabaaaab', 'aa', '-', `2`)",
  "trim('  x  ')",
  "trim_left('  x  ')",
  "trim_right('  x  ')",
  "trim('xxaxx', 'x')",
  'pad_left(s, `15`)',
  "pad_right(s, `15`, '-')",
  "find_first(s, 'o')",
  "find_last(s, 'o')",
  "find_first(s, 'o', `5`)",
  'items(user)',
  'from_items(items(user))',
  'zip(nums, strs)',
  'group_by(people, &name)',
  '{userName: user.id, fullName: user.name, email: user.email}',
  '{"userName": user.id, "fullName": user.name}',
  'user.{id: id, n: name}',
  'people[*].[name, age]',
  'people[].tags[]',
  'foo.list[*].{a: a}',
  'people[?contains(tags, `"x"`)].name',
  'let $x = user in $x.name',
  'let $a = `1`, $b = `2` in [$a, $b]',
  '$.user.id',
  'people[*].[$.s]',
  '`1` + `2`',
  '`5` - `2`',
  '`2` * `3`',
  '`7` / `2`',
  '`7` // `2`',
  '`7` % `2`',
  '-`3`',
  'foo.bar.nope',
  'nope[*]',
  'nope[]',
  'people[*].nope',
  'length(`[]`)',
  'user.id.x',
  's.x',
  'nums[*] | [0]',
  'people[*].age | sum(@)',
  'people[?name == `"a"`] | [0].age',
  'foo.list[?a == `2`] | [0]',
  'to_string(`"x"`)',
  'not_null(n, n)',
  '{a: n}',
  '[n]',
  'foo.list[?a > `1`] | length(@)',
  'people[*].tags[0]',
]

describe('evaluation matches the library', () => {
  for (const expression of SAME_AS_LIBRARY) {
    it(expression, () => {
      const expected = search(JSON.parse(JSON.stringify(DATA)) as never, expression)
      expect(value(expression, DATA)).toEqual(JSON.parse(JSON.stringify(expected)) as unknown)
    })
  }
})

describe('JEP-14 string function examples', () => {
  const subject = 'subject string'
  const padded = '   subject string   '
  const cases: [string, unknown, unknown][] = [
    ["find_first(@, 'string')", subject, 8],
    ["find_first(@, 'string', `0`, `13`)", subject, null],
    ["find_first(@, 'string', `-99`, `100`)", subject, 8],
    ["find_first(@, 'string', `9`)", subject, null],
    ["find_first(@, 's', `1`)", subject, 8],
    ["find_last(@, 'string')", subject, 8],
    ['lower(@)', 'STRING', 'string'],
    ['pad_left(@, `5`)', 'string', 'string'],
    ['pad_left(@, `10`)', 'string', '    string'],
    ["pad_left(@, `10`, '-')", 'string', '----string'],
    ["pad_right(@, `10`, '-')", 'string', 'string----'],
    ["replace(@, 'aa', '-', `0`)", 'aabaaabaaaab', 'aabaaabaaaab'],
    ["replace(@, 'aa', '-', `1`)", 'aabaaabaaaab', '-baaabaaaab'],
    ["replace(@, 'aa', '-', `3`)", 'aabaaabaaaab', '-b-ab-aab'],
    ["replace(@, 'aa', '-')", 'aabaaabaaaab', '-b-ab--b'],
    ["split('all chars', '')", null, ['a', 'l', 'l', ' ', 'c', 'h', 'a', 'r', 's']],
    ["split('/', '/')", null, ['', '']],
    ["split('average|-|min|-|max', '|-|', `1`)", null, ['average', 'min|-|max']],
    ["split('average|-|min|-|max', '|-|', `0`)", null, ['average|-|min|-|max']],
    ['trim(@)', padded, 'subject string'],
    ["trim(@, '')", padded, 'subject string'],
    ["trim(@, 's')", padded, padded],
    ["trim(@, 'su ')", padded, 'bject string'],
    ["trim(@, 'gsu ')", padded, 'bject strin'],
    ["trim_left(@, 'gsu ')", padded, 'bject string   '],
    ["trim_right(@, 'gsu ')", padded, '   subject strin'],
    ['upper(@)', 'string', 'STRING'],
  ]
  for (const [expression, data, expected] of cases) {
    it(`${expression} on ${JSON.stringify(data)}`, () => {
      expect(value(expression, data)).toEqual(expected)
    })
  }
})

describe('where the specification is followed rather than the library', () => {
  it('sorts numbers numerically', () => {
    expect(value('sort(@)', [10, 9, 1, 100])).toEqual([1, 9, 10, 100])
  })

  it('orders strings by code point, above U+FFFF included', () => {
    expect(value('sort(@)', ['\uFFFD', '😀', 'a'])).toEqual(['a', '\uFFFD', '😀'])
    expect(value('max(@)', ['\uFFFD', '😀'])).toBe('😀')
    expect(value('max_by(@, &n).n', [{ n: 'b' }, { n: 'c' }, { n: 'a' }])).toBe('c')
  })

  it('compares deeply in contains', () => {
    expect(value('contains(@, `{"a": 1}`)', [{ a: 1 }])).toBe(true)
  })

  it('pads an empty string and replaces occurrences left to right', () => {
    expect(value("pad_left('', `3`)")).toBe('   ')
    expect(value("replace('aaa', 'a', 'ba', `2`)")).toBe('babaa')
  })

  it('accepts only JSON number syntax in to_number', () => {
    expect(
      value("[to_number(''), to_number('0x1F'), to_number(' 1'), to_number('-1.5e3')]"),
    ).toEqual([null, null, null, -1500])
  })

  it('keeps let variables visible inside expression references', () => {
    expect(value('let $k = `10` in map(&[a, $k], @)', [{ a: 1 }, { a: 2 }])).toEqual([
      [1, 10],
      [2, 10],
    ])
  })

  it('refuses arithmetic that leaves the finite numbers', () => {
    expect(failure('`1` / `0`')).toBe('division by zero')
    expect(failure('`1e308` * `10`')).toBe('arithmetic gave a number out of range')
    expect(failure('`1` + `"a"`')).toBe('arithmetic needs numbers, got a number and a string')
  })
})

describe('function argument errors say what was expected and what came', () => {
  it('names the argument, the expected type and the given type', () => {
    expect(failure('length(`1`)')).toBe(
      'length() argument 1 must be a string or an array or an object, got a number',
    )
    expect(failure('sum(@)', [1, 'a'])).toBe(
      'sum() argument 1 must be an array of numbers, got an array containing a string',
    )
    expect(failure('sort_by(@, &a)', [{ a: 1 }, { a: 'x' }])).toBe(
      'sort_by() expression gave both numbers and strings',
    )
    expect(failure("pad_left('x', `1.5`)")).toBe('pad_left() width must be a non-negative integer')
    expect(failure("pad_left('x', `3`, 'ab')")).toBe('pad_left() pad must be a single character')
    expect(failure('from_items(`[["a"]]`)')).toBe(
      'from_items() needs [key, value] pairs with a string key',
    )
  })
})

describe('the meter', () => {
  it('counts a handful of steps for the README example mapping', () => {
    const { steps } = evaluate('{userName: user.id, fullName: user.name, email: user.email}', DATA)
    expect(steps).toBe(10)
  })

  it('pays for the elements a flatten creates before creating them', () => {
    const limits = { ...LIMITS, maxSteps: 1_000 }
    const data = Array.from({ length: 100 }, () => Array.from({ length: 100 }, () => 1))
    expect(() => evaluate('@[]', data, limits)).toThrow(/needs more than 1000 steps/)
  })

  it('pays per node when comparing shared values', () => {
    const limits = { ...LIMITS, maxSteps: 10_000 }
    const shared = `${'[@, @] | '.repeat(20)}@`
    // Two equal values built separately: 2^20 leaves to compare.
    expect(() => evaluate(`(${shared}) == (${shared})`, 1, limits)).toThrow(/needs more than/)
    // The same value twice compares by identity, for free.
    expect(evaluate(`let $x = ${shared} in $x == $x`, 1, limits).value).toBe(true)
  })

  it('pays for the characters of equal strings, which are compared by content', () => {
    const limits = { ...LIMITS, maxSteps: 10_000 }
    const text = 'x'.repeat(100_000)
    // Equal but distinct strings: `===` reads all 100,000 characters each time.
    const data = { a: text, b: text.slice(0, -1) + 'x' }
    expect(() => evaluate('[a == b, a == b, a == b, a == b, a == b]', data, limits)).toThrow(
      /needs more than 10000 steps/,
    )
    expect(evaluate('a == b', data).value).toBe(true)
    expect(evaluate('a == `"x"`', data).value).toBe(false)
  })

  it('pays for sorting by the number of items and their text', () => {
    const words = Array.from({ length: 1_000 }, (_, i) => `word-${(i * 7919) % 1000}`)
    const { steps } = evaluate('sort(@)', words)
    expect(steps).toBeGreaterThan(1_000 * 10)
    expect(steps).toBeLessThan(100_000)
  })
})
