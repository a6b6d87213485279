/**
 * pg's Query for the named statements of prepared.ts, reusing the shape of their rows (column
 * names and the parser of each column) from one execution to the next.
 *
 * For every result pg's own `Result.addFields` builds the shape again: an object of the column
 * names made key by key as a dictionary and then copied, and a type parser looked up per column.
 * In CPU profiles of whole sign-ins that was the largest single item of the driver (about 2 % of
 * the samples, at 23 to 31 columns per session row). A named statement describes the same
 * columns every time, so the shape is kept per statement name, and used only for a description
 * that matches it column by column (name, type, format): a statement whose columns changed under
 * it (a migration run by another instance) gets a new shape.
 *
 * This relies on pg 8.23's Query (package.json pins it): the Submittable protocol its Client
 * calls (`handleRowDescription`, `handleDataRow`, the ones pg-cursor implements too) and the
 * Result it keeps in `_result`, whose public `fields` and `rows` are what callers read.
 * test/db/row-shapes.test.ts compares every row with what pg's own Query returns.
 */
import pg from 'pg'

type FieldDef = pg.FieldDef
type Parser = (value: string) => unknown

interface Shape {
  readonly fields: readonly FieldDef[]
  readonly names: readonly string[]
  readonly parsers: readonly Parser[]
  /** Every column null: copied for each row, so that each row has the same properties in order. */
  readonly empty: Readonly<Record<string, null>>
}

/** What of pg's Query this subclass reads and writes (pg/lib/query.js, pg/lib/result.js). */
interface QueryInternals {
  readonly name?: string
  readonly _result: pg.Result & { addRow(row: unknown): void }
  _accumulateRows: boolean
  _canceledDueToError: unknown
  _checkForMultirow(): void
}

/** Shapes by statement name; names are a fixed set (prepared.ts), so this stays small. */
const shapes = new Map<string, Shape>()

function sameFields(a: readonly FieldDef[], b: readonly FieldDef[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as FieldDef
    const y = b[i] as FieldDef
    if (x.name !== y.name || x.dataTypeID !== y.dataTypeID || x.format !== y.format) return false
  }
  return true
}

function shapeOf(fields: readonly FieldDef[]): Shape {
  const empty: Record<string, null> = {}
  for (const field of fields) empty[field.name] = null
  return {
    fields,
    names: fields.map((field) => field.name),
    parsers: fields.map((field) => pg.types.getTypeParser(field.dataTypeID, 'text') as Parser),
    empty,
  }
}

/** pg's own handlers, for results this class leaves to it. */
const base = pg.Query.prototype as unknown as {
  handleRowDescription(this: pg.Query, message: { fields: FieldDef[] }): void
  handleDataRow(this: pg.Query, message: { fields: unknown[] }): void
}

export class ShapedQuery extends pg.Query {
  #shape: Shape | undefined
  /** A result with binary columns (never asked for here) is parsed by pg itself. */
  #pgParses = false

  constructor(
    name: string,
    text: string,
    values: unknown[],
    callback: (error: Error | undefined, result: pg.QueryResult) => void,
  ) {
    // The text, not a config object: pg copies a config object property by property
    // (cloneQueryConfig, 0.7 % of a flow profile's samples); the name is set as pg would set it.
    super(text, values, callback as never)
    ;(this as unknown as { name: string }).name = name
  }

  /** pg calls this once per result, with the columns of the statement's RowDescription. */
  handleRowDescription(message: { fields: FieldDef[] }): void {
    if (message.fields.some((field) => field.format === 'binary')) {
      this.#pgParses = true
      base.handleRowDescription.call(this, message)
      return
    }
    const self = this as unknown as QueryInternals
    // A named statement is one statement: a second result would be pg's business, not ours.
    self._checkForMultirow()
    const name = self.name ?? ''
    let shape = shapes.get(name)
    if (shape === undefined || !sameFields(shape.fields, message.fields)) {
      shape = shapeOf(message.fields)
      shapes.set(name, shape)
    }
    this.#shape = shape
    self._result.fields = message.fields
    // As pg's Query: rows are kept for the callback, which every caller here gives.
    self._accumulateRows = true
  }

  /** pg calls this for each row, with the columns' text values (null for NULL). */
  handleDataRow(message: { fields: Array<string | null> }): void {
    if (this.#pgParses) {
      base.handleDataRow.call(this, message)
      return
    }
    const self = this as unknown as QueryInternals
    if (self._canceledDueToError) return
    const shape = this.#shape
    if (shape === undefined) {
      self._canceledDueToError = new Error('a data row arrived before its row description')
      return
    }
    const row: Record<string, unknown> = { ...shape.empty }
    const values = message.fields
    try {
      for (let i = 0; i < values.length; i++) {
        const value = values[i]
        if (value !== null && value !== undefined) {
          row[shape.names[i] as string] = (shape.parsers[i] as Parser)(value)
        }
      }
    } catch (error) {
      // As pg's Query: the statement's callback gets the parser's error once it completes.
      self._canceledDueToError = error
      return
    }
    self._result.addRow(row)
  }
}

/** Runs a named statement on `client` with ShapedQuery; resolves as `client.query` would. */
export function queryNamed(
  client: pg.ClientBase,
  name: string,
  text: string,
  values: unknown[],
): Promise<pg.QueryResult> {
  return new Promise((resolve, reject) => {
    client.query(
      new ShapedQuery(name, text, values, (error, result) =>
        error ? reject(error) : resolve(result),
      ),
    )
  })
}
