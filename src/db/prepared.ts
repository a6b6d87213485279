/**
 * Statements run on every request, compiled by Kysely once and then executed with each call's
 * values. Kysely builds and compiles a fresh query object on every call; for startEndUserAuth
 * that was about a fifth of the service's CPU per request under `npm run bench` (which is what
 * this saves). The query is still written with Kysely's builder, and its SQL is Kysely's.
 *
 * `build` is called once, with a placeholder for each argument; the SQL it compiles to is kept,
 * and each call puts its values where the placeholders were (constants such as status lists stay
 * as they were compiled). So the statement must have the same shape for any arguments: no clause
 * that depends on an argument, no list built from one. Arguments must not be `undefined` (Kysely
 * would drop such a column from an insert; here it would be sent as NULL).
 */
import { CompiledQuery, type Compilable } from 'kysely'
import type { Db } from './database.ts'

const PLACEHOLDER = Symbol('prepared statement argument')

interface Placeholder {
  readonly [PLACEHOLDER]: string
}

function isPlaceholder(value: unknown): value is Placeholder {
  return typeof value === 'object' && value !== null && PLACEHOLDER in value
}

type Slot = { readonly argument: string } | { readonly constant: unknown }

/**
 * The SQL of every statement compiled here, with the name it is prepared under on PostgreSQL
 * (database.ts): each connection parses and plans it once instead of on every call, and each call
 * sends only its values, not the text again.
 */
const NAMES = new Map<string, string>()

/** The server-side name of a statement compiled by `prepared`; undefined for any other SQL. */
export function statementName(text: string): string | undefined {
  return NAMES.get(text)
}

export function prepared<A extends Record<string, unknown>, R>(
  build: (db: Db, args: A) => Compilable<R>,
): (db: Db, args: A) => Promise<R[]> {
  let compiled: { sql: string; slots: Slot[] } | undefined
  return async (db, args) => {
    if (!compiled) {
      const placeholders = Object.fromEntries(
        Object.keys(args).map((name) => [name, { [PLACEHOLDER]: name }]),
      ) as unknown as A
      const query = build(db, placeholders).compile()
      compiled = {
        sql: query.sql,
        slots: query.parameters.map((value) =>
          isPlaceholder(value) ? { argument: value[PLACEHOLDER] } : { constant: value },
        ),
      }
      if (!NAMES.has(query.sql)) NAMES.set(query.sql, `euo_${NAMES.size + 1}`)
    }
    const parameters = compiled.slots.map((slot) =>
      'argument' in slot ? args[slot.argument] : slot.constant,
    )
    const result = await db.executeQuery<R>(CompiledQuery.raw(compiled.sql, parameters))
    return result.rows
  }
}
