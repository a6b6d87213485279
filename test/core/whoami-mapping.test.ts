import { describe, expect, it } from 'vitest'
import { parseJsonBounded } from '../../src/core/json-limits.ts'
import {
  applyMapping,
  checkMapping,
  compileMapping,
  MAPPING_LIMITS,
  normalizePastedMapping,
  type CompiledMapping,
  type MappingOutcome,
} from '../../src/core/whoami-mapping.ts'

const SEED_PAYLOAD = {
  user: { id: 'billy.bob', name: 'Billy Bob', email: 'billy.bob@example.com', other: 'stuff' },
  roles: ['SomeRole', 'OtherRole'],
  other: 'stuff',
}
const SEED_MAPPING = '{userName: user.id, fullName: user.name, email: user.email}'
/** The product page's example as printed, escaped quotes and stray quote included. */
const SEED_AS_PRINTED =
  '{"userName\\": user.id, \\"fullName\\": user.name, \\"email\\": user.email}"'

const options = { splitFullName: true }

function compiled(expression: string): CompiledMapping {
  const result = compileMapping(expression)
  if (!result.ok) throw new Error(`${expression}: ${result.error.message}`)
  return result.value
}

function run(expression: string | null, payload: unknown): MappingOutcome {
  return applyMapping(expression === null ? null : compiled(expression), payload, options)
}

function errorOf(expression: string | null, payload: unknown): string | undefined {
  const outcome = run(expression, payload)
  expect(outcome.identity).toBeNull()
  expect(outcome.errors).toHaveLength(1)
  return outcome.errors[0]?.message
}

describe('the product page example', () => {
  const expected = {
    subject: null,
    issuer: null,
    emailVerified: null,
    authTime: null,
    acr: null,
    amr: null,
    email: 'billy.bob@example.com',
    userName: 'billy.bob',
    fullName: 'Billy Bob',
    firstName: 'Billy',
    lastName: 'Bob',
    attributes: { userName: 'billy.bob', fullName: 'Billy Bob', email: 'billy.bob@example.com' },
  }

  it('maps the product page payload with its mapping', () => {
    expect(run(SEED_MAPPING, SEED_PAYLOAD)).toEqual({
      identity: expected,
      errors: [],
      // The documentation's mapping gives no subject: worth saying, as testWhoAmIMapping does.
      warnings: [{ message: expect.stringMatching(/^subject: none/) }],
    })
  })

  it('accepts the quoted keys of the product page mapping, which are JMESPath quoted identifiers', () => {
    const quoted = '{"userName": user.id, "fullName": user.name, "email": user.email}'
    expect(checkMapping(quoted)).toBeNull()
    expect(run(quoted, SEED_PAYLOAD).identity).toEqual(expected)
  })

  it('repairs the product page mapping as printed, and says what it did', () => {
    expect(checkMapping(SEED_AS_PRINTED)).not.toBeNull()
    const { expression, notes } = normalizePastedMapping(SEED_AS_PRINTED)
    expect(expression).toBe('{"userName": user.id, "fullName": user.name, "email": user.email}')
    expect(notes).toEqual([
      'replaced escaped quotes \\" with "',
      'removed an unmatched " at the end',
    ])
    expect(run(expression, SEED_PAYLOAD).identity).toEqual(expected)
  })

  it('maps a parsed WhoAmI body the same way as a plain object', () => {
    const body = parseJsonBounded(JSON.stringify(SEED_PAYLOAD))
    expect(body.ok).toBe(true)
    if (body.ok) expect(run(SEED_MAPPING, body.value).identity).toEqual(expected)
  })

  it('keeps everything the mapping produced in attributes', () => {
    const { identity } = run('{userName: user.id, roles: roles, raw: @}', SEED_PAYLOAD)
    expect(identity?.attributes).toEqual({
      userName: 'billy.bob',
      roles: ['SomeRole', 'OtherRole'],
      raw: SEED_PAYLOAD,
    })
  })
})

describe('without a mapping', () => {
  it('uses the payload object as the attribute set as is', () => {
    const payload = { email: 'a@example.com', fullName: 'Ann Lee', custom: [1, { x: null }] }
    const { identity } = run(null, payload)
    expect(identity).toEqual({
      subject: null,
      issuer: null,
      emailVerified: null,
      authTime: null,
      acr: null,
      amr: null,
      email: 'a@example.com',
      userName: null,
      fullName: 'Ann Lee',
      firstName: 'Ann',
      lastName: 'Lee',
      attributes: payload,
    })
  })

  it('requires the payload to be an object', () => {
    expect(errorOf(null, ['a'])).toBe(
      'payload: must be a JSON object when there is no mapping, got an array',
    )
    expect(errorOf(null, 'text')).toBe(
      'payload: must be a JSON object when there is no mapping, got a string',
    )
    expect(errorOf(null, null)).toBe(
      'payload: must be a JSON object when there is no mapping, got null',
    )
  })
})

describe('a mapping that does not produce an object', () => {
  it('reports null, with a hint', () => {
    expect(errorOf('nothing.here', SEED_PAYLOAD)).toBe(
      'mapping: result must be a JSON object, got null (it selected nothing: check its field names against the payload)',
    )
  })

  it('reports an array', () => {
    expect(errorOf('roles', SEED_PAYLOAD)).toMatch(
      /^mapping: result must be a JSON object, got an array/,
    )
    expect(errorOf('[user.id, user.name]', SEED_PAYLOAD)).toMatch(/got an array/)
  })

  it('reports a string, a number and a boolean', () => {
    expect(errorOf('user.id', SEED_PAYLOAD)).toBe(
      'mapping: result must be a JSON object, got a string (a mapping builds an object, such as {userName: user.id, email: user.email})',
    )
    expect(errorOf('length(roles)', SEED_PAYLOAD)).toMatch(/got a number/)
    expect(errorOf('contains(roles, `"SomeRole"`)', SEED_PAYLOAD)).toMatch(/got a boolean/)
  })

  it('reports a function given the wrong type of payload value, without throwing', () => {
    expect(errorOf('{n: join(`", "`, user)}', SEED_PAYLOAD)).toBe(
      'mapping: failed on this payload: join() argument 2 must be an array of strings, got an object',
    )
    expect(errorOf('{n: join(`", "`, [user.id, `1`])}', SEED_PAYLOAD)).toBe(
      'mapping: failed on this payload: join() argument 2 must be an array of strings, got an array containing a number',
    )
  })
})

describe('guards on the payload', () => {
  it('refuses a payload nested 10,000 deep before the mapper sees it', () => {
    let deep: unknown = { id: 'x' }
    for (let i = 0; i < 10_000; i++) deep = { user: deep }
    expect(errorOf(SEED_MAPPING, deep)).toBe('payload: is nested deeper than 64 levels')
    expect(errorOf(null, deep)).toBe('payload: is nested deeper than 64 levels')
    const text = '{"user":'.repeat(10_000) + '{}' + '}'.repeat(10_000)
    expect(parseJsonBounded(text).ok).toBe(false)
  })

  it('refuses a 5 MB payload', () => {
    const payload = { user: { id: 'x', bio: 'x'.repeat(5 * 1024 * 1024) } }
    expect(errorOf(SEED_MAPPING, payload)).toBe('payload: is larger than 1 MiB')
    expect(parseJsonBounded(JSON.stringify(payload)).ok).toBe(false)
  })

  it('refuses a result larger than the stored attributes may be', () => {
    const payload = { blob: 'x'.repeat(100 * 1024) }
    expect(errorOf(null, payload)).toBe(
      'mapping: result is larger than 64 KiB; select only the fields needed',
    )
    expect(run('{userName: `"x"`}', payload).errors).toEqual([])
  })
})

describe('guards on evaluation', () => {
  const STOPPED = /^mapping: stopped, it (needs more than \d+ steps|took longer than \d+ ms)/
  // 24 stages: the most that fits the depth bound of 32, since each `|` nests one level.
  const doubling = `{a: ${'[@, @][] | '.repeat(24)}@}`

  it('stops an expression that doubles its data 24 times, quickly, with an error', () => {
    expect(checkMapping(doubling)).toBeNull()
    const started = performance.now()
    const outcome = run(doubling, SEED_PAYLOAD)
    const elapsed = performance.now() - started
    expect(outcome.identity).toBeNull()
    // On a loaded machine the clock may stop it first; either way it stops.
    expect(outcome.errors[0]?.message).toMatch(STOPPED)
    expect([
      `mapping: stopped, it needs more than ${MAPPING_LIMITS.maxSteps} steps; an expression ` +
        'that multiplies its data (nested projections, multi-selects or flattens) is the usual cause',
      `mapping: stopped, it took longer than ${MAPPING_LIMITS.maxMillis} ms`,
    ]).toContain(outcome.errors[0]?.message)
    // Measured at a few milliseconds; the bound here only catches a hang.
    expect(elapsed).toBeLessThan(2_000)
  })

  it('stops nested multi-selects whose result would be an exponentially large JSON text', () => {
    // Each level holds the level below twice: 2^24 copies of the payload when written out,
    // while the value itself is 24 small shared arrays.
    const nested = `{a: ${'[@, @] | '.repeat(24)}@}`
    const outcome = run(nested, SEED_PAYLOAD)
    expect(outcome.errors[0]?.message).toBe(
      'mapping: result is larger than 64 KiB; select only the fields needed',
    )
    const hashes = `{a: ${'{a: @, b: @} | '.repeat(24)}@}`
    expect(run(hashes, SEED_PAYLOAD).errors[0]?.message).toMatch(/^mapping: result is larger/)
  })

  it('stops to_string and deep comparison of shared values by the step bound', () => {
    const shared = `${'[@, @] | '.repeat(24)}@`
    expect(run(`{a: to_string(${shared})}`, SEED_PAYLOAD).errors[0]?.message).toBe(
      'mapping: stopped, it would build a string longer than 262144 characters',
    )
    expect(run(`{a: (${shared}) == (${shared})}`, SEED_PAYLOAD).errors[0]?.message).toMatch(STOPPED)
  })

  it('stops a projection that crosses a moderate payload with itself', () => {
    const payload = { items: Array.from({ length: 2_000 }, (_, i) => ({ id: i })) }
    const outcome = run('{a: map(&$.items[*].id, items)}', payload)
    expect(outcome.errors[0]?.message).toMatch(STOPPED)
  })

  it('stops a string that would grow past the string bound', () => {
    expect(run("{a: pad_left('x', `100000000`)}", {}).errors[0]?.message).toBe(
      'mapping: stopped, it would build a string longer than 262144 characters',
    )
    const payload = { s: 'x'.repeat(200_000) }
    expect(run("{a: replace(s, 'x', 'yy')}", payload).errors[0]?.message).toMatch(STOPPED)
  })

  it('keeps a long search in find_last linear (V8 compares lastIndexOf naively)', () => {
    const payload = { s: 'a'.repeat(50_000), p: 'a'.repeat(10_000) + 'b' }
    const started = performance.now()
    const outcome = run('{a: find_last(s, p), b: find_first(s, p)}', payload)
    expect(outcome.identity?.attributes).toEqual({ a: null, b: null })
    expect(performance.now() - started).toBeLessThan(2_000)
  })

  it('stops at the time budget, measured by the clock it is given', () => {
    let now = 0
    // Every look at the clock (one per 2,048 steps) finds 20 ms more.
    const clock = (): number => (now += 20)
    const payload = { items: Array.from({ length: 5_000 }, (_, i) => ({ id: i, name: `n${i}` })) }
    const outcome = applyMapping(compiled('{a: length(items[*].[id, name, id, name])}'), payload, {
      ...options,
      clock,
    })
    expect(outcome.errors).toEqual([{ message: 'mapping: stopped, it took longer than 100 ms' }])
    // With a clock that does not move, the same mapping finishes.
    const still = applyMapping(compiled('{a: length(items[*].[id, name, id, name])}'), payload, {
      ...options,
      clock: () => 0,
    })
    expect(still.errors).toEqual([])
  })

  it('stops a slow evaluation by the real clock too', () => {
    const payload = { items: Array.from({ length: 2_000 }, (_, i) => ({ id: i })) }
    const limits = { ...MAPPING_LIMITS, maxSteps: Number.MAX_SAFE_INTEGER, maxMillis: 20 }
    const started = performance.now()
    const outcome = applyMapping(compiled('{a: map(&$.items[*].id, items)}'), payload, {
      ...options,
      limits,
    })
    expect(outcome.errors).toEqual([{ message: 'mapping: stopped, it took longer than 20 ms' }])
    expect(performance.now() - started).toBeLessThan(2_000)
  })
})

describe('prototype safety', () => {
  const hostile = JSON.parse(
    '{"__proto__": {"isAdmin": true}, "constructor": {"prototype": {"x": 1}}, "sub": "1", "user": {"toString": "t"}}',
  ) as unknown

  it('keeps __proto__ and constructor keys as data, without mapping', () => {
    const { identity } = run(null, hostile)
    expect(identity?.attributes).toEqual({
      ['__proto__']: { isAdmin: true },
      constructor: { prototype: { x: 1 } },
      sub: '1',
      user: { toString: 't' },
    })
    expect(Object.keys(identity?.attributes ?? {})).toEqual([
      '__proto__',
      'constructor',
      'sub',
      'user',
    ])
    expect(Object.getPrototypeOf(identity?.attributes)).toBeNull()
    expect((identity?.attributes as Record<string, unknown>).isAdmin).toBeUndefined()
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined()
    expect(({} as Record<string, unknown>).x).toBeUndefined()
  })

  it('survives merge, from_items, group_by and multi-select keys named __proto__', () => {
    const { identity, errors } = run(
      '{"__proto__": sub, merged: merge(@, `{"a": 1}`), items: from_items(items(@)), ' +
        'groups: group_by([`{"k": "__proto__"}`, `{"k": "constructor"}`], &k), userName: sub}',
      hostile,
    )
    expect(errors).toEqual([])
    const attributes = identity?.attributes as Record<string, Record<string, unknown>>
    expect(Object.keys(attributes)).toEqual(['__proto__', 'merged', 'items', 'groups', 'userName'])
    expect(attributes.merged?.isAdmin).toBeUndefined()
    expect(Object.keys(attributes.merged ?? {})).toEqual([
      '__proto__',
      'constructor',
      'sub',
      'user',
      'a',
    ])
    expect(Object.keys(attributes.groups ?? {})).toEqual(['__proto__', 'constructor'])
    expect(identity?.userName).toBe('1')
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined()
  })

  it('does not read inherited properties such as constructor or toString', () => {
    const { identity } = run(
      '{a: constructor, b: `{}`.constructor, c: sub.length, d: toString, e: user.toString}',
      { sub: 'x' },
    )
    expect(identity?.attributes).toEqual({ a: null, b: null, c: null, d: null, e: null })
  })
})

describe('characters PostgreSQL refuses and characters that deceive', () => {
  it('removes NUL and lone surrogates from attributes, keys included, with a warning', () => {
    const { identity, warnings } = run(null, {
      ['na\u0000me']: 'a\u0000b',
      list: ['\uD800x'],
      fine: 'ok',
    })
    expect(identity?.attributes).toEqual({ name: 'ab', list: ['\uFFFDx'], fine: 'ok' })
    expect(warnings).toEqual([
      { message: 'attributes: removed NUL characters or broken UTF-16 from 3 keys or values' },
      { message: expect.stringMatching(/^subject: none/) },
    ])
  })

  it('cleans NUL and bidirectional controls out of the standard fields', () => {
    const { identity, warnings } = run(null, {
      fullName: 'Bil\u0000ly \u202EBob',
      email: 'x\u202Ey@example.com',
    })
    expect(identity).toMatchObject({ fullName: 'Billy Bob', firstName: 'Billy', lastName: 'Bob' })
    expect(identity?.email).toBe('xy@example.com')
    expect(identity?.attributes.email).toBe('x\u202Ey@example.com')
    expect(warnings.map((w) => w.message)).toEqual([
      'attributes: removed NUL characters or broken UTF-16 from 1 key or value',
      'email: removed 1 control, invisible or bidirectional formatting character',
      'fullName: removed 1 control, invisible or bidirectional formatting character',
      expect.stringMatching(/^subject: none/),
    ])
  })
})

describe('explicit names and the split switch through a mapping', () => {
  it('lets mapped firstName and lastName win over the split', () => {
    const { identity } = run(
      '{fullName: user.name, firstName: `"William"`, lastName: `"Roberts"`}',
      SEED_PAYLOAD,
    )
    expect(identity).toMatchObject({
      fullName: 'Billy Bob',
      firstName: 'William',
      lastName: 'Roberts',
    })
  })

  it('does not split when the integration turned it off', () => {
    const outcome = applyMapping(compiled(SEED_MAPPING), SEED_PAYLOAD, { splitFullName: false })
    expect(outcome.identity).toMatchObject({
      fullName: 'Billy Bob',
      firstName: null,
      lastName: null,
    })
  })
})

describe('checkMapping', () => {
  it('accepts typical mappings', () => {
    for (const expression of [
      SEED_MAPPING,
      '{userName: login, fullName: name, email: email}',
      '{email: emails[?primary].email | [0], userName: to_string(id)}',
      "{fullName: join(' ', [given_name, family_name]), email: lower(email)}",
      'merge(@, {userName: preferred_username})',
      '{groups: groups[*].name, userName: not_null(upn, email)}',
      'let $u = data.user in {userName: $u.id, roles: map(&name, $u.roles)}',
    ]) {
      expect(checkMapping(expression), expression).toBeNull()
    }
  })

  it('gives the position of a syntax error', () => {
    expect(checkMapping('foo[?a==]')).toEqual({
      message: 'syntax error at position 8: unexpected "]"',
    })
    expect(checkMapping('{userName: user..id}')).toEqual({
      message: 'syntax error at position 16: unexpected "."',
    })
    expect(checkMapping('{userName user.id}')).toEqual({
      message: 'syntax error at position 10: unexpected "user" (expected ":")',
    })
    expect(checkMapping('{userName: user.id, }')).toEqual({
      message: 'syntax error at position 20: unexpected "}" (expected a key name)',
    })
    expect(checkMapping('{userName: user.id')).toEqual({
      message: 'syntax error at position 18: the expression ends too early',
    })
    expect(checkMapping('{userName: user#id}')).toEqual({
      message: 'syntax error at position 15: unexpected character "#"',
    })
    expect(checkMapping('{a: `{"ok": 1}`, b: `{bad}`}')).toEqual({
      message: 'syntax error at position 20: invalid JSON literal between backquotes',
    })
    expect(checkMapping('{a: b, "c: d}')).toEqual({
      message: 'syntax error at position 7: unterminated or invalid quoted name',
    })
  })

  it('reads well after a field prefix', () => {
    const problem = checkMapping('foo[?a==]')
    expect(`input.whoAmIMapping: ${problem?.message}`).toBe(
      'input.whoAmIMapping: syntax error at position 8: unexpected "]"',
    )
  })

  it('refuses unknown functions, with a suggestion, and wrong arity', () => {
    expect(checkMapping('{n: lenght(name)}')).toEqual({
      message: 'uses an unknown function lenght() (did you mean length()?)',
    })
    expect(checkMapping('{n: nosuch(name)}')).toEqual({
      message: 'uses an unknown function nosuch()',
    })
    expect(checkMapping('{n: length(a, b)}')).toEqual({
      message: 'length() takes 1 argument, got 2',
    })
    expect(checkMapping('{n: join(a)}')).toEqual({ message: 'join() takes 2 arguments, got 1' })
    expect(checkMapping('{n: split(a)}')).toEqual({
      message: 'split() takes 2 or 3 arguments, got 1',
    })
    expect(checkMapping('{n: merge()}')).toEqual({
      message: 'merge() takes at least 1 argument, got 0',
    })
    expect(checkMapping('{n: sort_by(a, b)}')).toEqual({
      message: 'sort_by() argument 2 must be an expression reference such as &name',
    })
    expect(checkMapping('{n: length(&a)}')).toEqual({
      message: 'length() argument 1 cannot be an expression reference (&)',
    })
    expect(checkMapping('{n: &a}')).toEqual({
      message: 'uses &expr outside a function argument that takes one',
    })
    expect(checkMapping('{n: $x}')).toEqual({ message: 'uses $x, which no enclosing let defines' })
    expect(checkMapping('{n: a[::0]}')).toEqual({ message: 'has a slice with a step of 0' })
  })

  it('bounds the length, the depth and the size of the expression', () => {
    expect(checkMapping('a'.repeat(2049))).toEqual({ message: 'is longer than 2048 characters' })
    expect(checkMapping('[['.repeat(20) + 'a' + ']]'.repeat(20))).toEqual({
      message: 'is nested too deeply (more than 32 levels)',
    })
    expect(checkMapping('!'.repeat(2000) + 'a')).toEqual({
      message: 'is nested too deeply (more than 32 levels)',
    })
    const wide = `{${Array.from({ length: 260 }, (_, i) => `k${i}:a`).join(',')}}`
    expect(wide.length).toBeLessThan(2048)
    expect(checkMapping(wide)).toEqual({ message: 'is too large (more than 500 syntax nodes)' })
    expect(checkMapping('{a: `' + '['.repeat(40) + ']'.repeat(40) + '`}')).toEqual({
      message: 'has a literal that is nested deeper than 32 levels',
    })
  })

  it('refuses an empty expression and a NUL character', () => {
    expect(checkMapping('  ')).toEqual({ message: 'is empty' })
    expect(checkMapping('{a: b}\u0000')).toEqual({
      message: 'contains a NUL character (at position 6)',
    })
  })

  it('compiles once and evaluates many times', () => {
    const mapping = compiled(SEED_MAPPING)
    for (const id of ['a', 'b', 'c']) {
      const { identity } = applyMapping(mapping, { user: { id } }, options)
      expect(identity?.userName).toBe(id)
    }
  })
})

describe('normalizePastedMapping', () => {
  it('leaves a valid expression alone', () => {
    expect(normalizePastedMapping(SEED_MAPPING)).toEqual({ expression: SEED_MAPPING, notes: [] })
    expect(normalizePastedMapping('"email"')).toEqual({ expression: '"email"', notes: [] })
  })

  it('unwraps a mapping pasted as a JSON string', () => {
    const pasted = JSON.stringify('{"userName": user.id, "email": user.email}')
    expect(normalizePastedMapping(pasted)).toEqual({
      expression: '{"userName": user.id, "email": user.email}',
      notes: ['removed the double quotes around it'],
    })
  })

  it('unwraps single quotes and backquotes', () => {
    expect(normalizePastedMapping("'{userName: user.id}'")).toEqual({
      expression: '{userName: user.id}',
      notes: ['removed the single quotes around it'],
    })
    expect(normalizePastedMapping('`{userName: user.id}`')).toEqual({
      expression: '{userName: user.id}',
      notes: ['removed the backquotes around it'],
    })
  })

  it('replaces typographic quotes and removes a code fence', () => {
    expect(normalizePastedMapping('{“userName”: user.id}')).toEqual({
      expression: '{"userName": user.id}',
      notes: ['replaced typographic double quotes with "'],
    })
    expect(normalizePastedMapping('```jmespath\n{userName: user.id}\n```')).toEqual({
      expression: '{userName: user.id}',
      notes: ['removed the Markdown code fence around it'],
    })
  })

  it('gives back the input when nothing helps', () => {
    expect(normalizePastedMapping('  {userName: \\"user.id  ')).toEqual({
      expression: '{userName: \\"user.id',
      notes: [],
    })
  })
})
