/**
 * The JSON values the engine reads and builds.
 *
 * Declared here rather than imported so that the engine depends on nothing outside itself.
 * TypeScript types are structural, so a caller's own JSON type of the same shape is the same
 * type: values pass in and out without conversion, and a caller whose type drifts from this one
 * stops compiling where it calls the engine.
 *
 * Every object the engine builds has a null prototype and it reads only own properties, so keys
 * such as `__proto__` or `constructor` are plain data.
 */
export type JsonValue = null | boolean | number | string | JsonArray | JsonObject
export type JsonArray = readonly JsonValue[]
export interface JsonObject {
  readonly [key: string]: JsonValue
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function emptyObject(): Record<string, JsonValue> {
  return Object.create(null) as Record<string, JsonValue>
}

class NotJson extends Error {}

/**
 * Copies a parsed value into JSON with null-prototype objects, refusing what is not JSON (such
 * as a number too large to be finite) and nesting deeper than `maxDepth` (`{}` is depth 1). The
 * problem is phrased to follow a noun ("… is nested deeper than 32 levels").
 */
export function copyJson(
  value: unknown,
  maxDepth: number,
):
  | { readonly ok: true; readonly value: JsonValue }
  | { readonly ok: false; readonly problem: string } {
  try {
    return { ok: true, value: copy(value, 0, maxDepth) }
  } catch (cause) {
    if (cause instanceof NotJson) return { ok: false, problem: cause.message }
    throw cause
  }
}

// Recursion is bounded by maxDepth: the depth is checked before descending.
function copy(value: unknown, depth: number, maxDepth: number): JsonValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value
    case 'number':
      if (!Number.isFinite(value)) throw new NotJson('contains a number that is not finite')
      return value
    case 'object': {
      if (value === null) return null
      if (depth + 1 > maxDepth) throw new NotJson(`is nested deeper than ${maxDepth} levels`)
      if (Array.isArray(value)) {
        const items: JsonValue[] = []
        for (const item of value as readonly unknown[]) items.push(copy(item, depth + 1, maxDepth))
        return items
      }
      const proto: unknown = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) {
        throw new NotJson('contains a value that is not JSON')
      }
      const source = value as Readonly<Record<string, unknown>>
      const out = emptyObject()
      for (const key of Object.keys(source)) out[key] = copy(source[key], depth + 1, maxDepth)
      return out
    }
    default:
      throw new NotJson(`contains a value that is not JSON (${typeof value})`)
  }
}
