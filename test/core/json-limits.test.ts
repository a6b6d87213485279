import { describe, expect, it } from 'vitest'
import {
  findExcessiveNesting,
  parseJsonBounded,
  toJsonValue,
  utf8Length,
  WHOAMI_JSON_LIMITS,
  WHOAMI_MAX_BYTES,
  WHOAMI_MAX_DEPTH,
} from '../../src/core/json-limits.ts'

const limits = WHOAMI_JSON_LIMITS

describe('parseJsonBounded', () => {
  it('parses a WhoAmI body into null-prototype objects', () => {
    const parsed = parseJsonBounded(
      '{"user": {"id": "billy.bob"}, "roles": ["a", {"b": 1}]}',
      limits,
    )
    expect(parsed).toEqual({
      ok: true,
      value: { user: { id: 'billy.bob' }, roles: ['a', { b: 1 }] },
    })
    if (!parsed.ok) return
    const value = parsed.value as Record<string, Record<string, unknown>>
    expect(Object.getPrototypeOf(value)).toBeNull()
    expect(Object.getPrototypeOf(value.user)).toBeNull()
    expect(Object.getPrototypeOf((value.roles as unknown as unknown[])[1])).toBeNull()
  })

  it('refuses a body nested 10,000 deep before parsing it, without touching the stack', () => {
    const text = '['.repeat(10_000) + ']'.repeat(10_000)
    expect(parseJsonBounded(text, limits)).toEqual({
      ok: false,
      error: { message: `is nested deeper than ${WHOAMI_MAX_DEPTH} levels (at position 64)` },
    })
    const objects = '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000)
    expect(parseJsonBounded(objects, limits).ok).toBe(false)
  })

  it('accepts exactly the maximum depth and refuses one more', () => {
    const at = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)
    expect(parseJsonBounded(at(WHOAMI_MAX_DEPTH), limits).ok).toBe(true)
    expect(parseJsonBounded(at(WHOAMI_MAX_DEPTH + 1), limits).ok).toBe(false)
  })

  it('does not count brackets inside strings, escaped quotes included', () => {
    const text = JSON.stringify({ name: '[[[[{{{{"\\' + '['.repeat(500) })
    expect(parseJsonBounded(text, { maxBytes: 10_000, maxDepth: 1 }).ok).toBe(true)
    expect(findExcessiveNesting('"\\"[[[" [[', 1)).toBe(9)
  })

  it('refuses a 5 MB body', () => {
    const text = JSON.stringify({ blob: 'x'.repeat(5 * 1024 * 1024) })
    expect(parseJsonBounded(text, limits)).toEqual({
      ok: false,
      error: { message: 'is larger than 1 MiB' },
    })
  })

  it('measures the size in UTF-8 bytes, not UTF-16 units', () => {
    const text = JSON.stringify({ name: 'é'.repeat(600_000) }) // 1.2 MB of UTF-8, 0.6 M units
    expect(text.length).toBeLessThan(WHOAMI_MAX_BYTES)
    expect(parseJsonBounded(text, limits).ok).toBe(false)
    expect(utf8Length('aé€😀')).toBe(1 + 2 + 3 + 4)
    expect(utf8Length('\uD800')).toBe(3)
  })

  it('keeps __proto__ and constructor as plain data and pollutes nothing', () => {
    const parsed = parseJsonBounded(
      '{"__proto__": {"isAdmin": true}, "constructor": {"prototype": {"x": 1}}, "sub": "1"}',
      limits,
    )
    expect(parsed.ok).toBe(true)
    if (!parsed.ok) return
    const value = parsed.value as Record<string, unknown>
    expect(Object.keys(value)).toEqual(['__proto__', 'constructor', 'sub'])
    expect(value.isAdmin).toBeUndefined()
    expect(Object.getPrototypeOf(value)).toBeNull()
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined()
    expect(({} as Record<string, unknown>).x).toBeUndefined()
  })

  it('reports invalid JSON with a position but without quoting the body', () => {
    const result = parseJsonBounded('{"email": "secret@example.com", }', limits)
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.error.message).toMatch(/^is not valid JSON/)
    expect(result.error.message).not.toContain('secret')
    expect(parseJsonBounded('{"a": 1 "b": 2}', limits)).toEqual({
      ok: false,
      error: { message: 'is not valid JSON (at position 8)' },
    })
    expect(parseJsonBounded('{"user": ', limits)).toEqual({
      ok: false,
      error: { message: 'is not valid JSON' },
    })
  })

  it('ignores a byte order mark', () => {
    expect(parseJsonBounded('\uFEFF{"a": 1}', limits)).toEqual({ ok: true, value: { a: 1 } })
  })
})

describe('toJsonValue', () => {
  it('copies parsed JSON into null-prototype objects', () => {
    const source = JSON.parse('{"__proto__": {"x": 1}, "a": [{"b": null}]}') as unknown
    const copied = toJsonValue(source, limits)
    expect(copied.ok).toBe(true)
    if (!copied.ok) return
    const value = copied.value as Record<string, unknown>
    expect(Object.getPrototypeOf(value)).toBeNull()
    expect(Object.keys(value)).toEqual(['__proto__', 'a'])
    expect(value.x).toBeUndefined()
  })

  it('refuses values that are not JSON', () => {
    const message = (value: unknown): string | undefined => {
      const result = toJsonValue(value, limits)
      return result.ok ? undefined : result.error.message
    }
    expect(message({ a: Number.NaN })).toBe('contains a number that is not finite')
    expect(message({ a: undefined })).toBe('contains a value that is not JSON (undefined)')
    expect(message({ a: () => 1 })).toBe('contains a value that is not JSON (function)')
    expect(message({ a: new Date(0) })).toBe('contains a value that is not JSON')
    expect(message({ a: 1n })).toBe('contains a value that is not JSON (bigint)')
  })

  it('refuses a value nested 10,000 deep and a cyclic one, without a stack overflow', () => {
    let deep: unknown = 'leaf'
    for (let i = 0; i < 10_000; i++) deep = { a: deep }
    expect(toJsonValue(deep, limits)).toEqual({
      ok: false,
      error: { message: 'is nested deeper than 64 levels' },
    })
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    expect(toJsonValue(cyclic, limits).ok).toBe(false)
  })

  it('refuses a 5 MB value, and stops walking once past the bound', () => {
    expect(toJsonValue({ blob: 'x'.repeat(5 * 1024 * 1024) }, limits)).toEqual({
      ok: false,
      error: { message: 'is larger than 1 MiB' },
    })
    // A value that shares one array 2^30 times would be 8 GB of JSON; the walk stops early.
    let shared: unknown = ['x']
    for (let i = 0; i < 30; i++) shared = [shared, shared]
    const started = performance.now()
    expect(toJsonValue(shared, limits).ok).toBe(false)
    expect(performance.now() - started).toBeLessThan(2_000)
  })
})
