/**
 * ShapedQuery (src/db/row-shapes.ts), the named statements' pg Query that keeps each statement's
 * row shape: its results are pg's own, column for column, whatever the types, NULLs and number
 * of rows; a statement name whose columns differ from one execution to the next gets the right
 * shape each time; an error of the statement reaches the caller and leaves the connection usable.
 * PostgreSQL only: on the embedded database no pg Query runs.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sql } from 'kysely'
import { prepared } from '../../src/db/prepared.ts'
import { queryNamed } from '../../src/db/row-shapes.ts'
import { createTestDatabase, TEST_DATABASE_URL } from '../helpers/test-db.ts'

const TYPES = `select $1::uuid as id, $2::text as name, $3::boolean as flag,
  $4::timestamptz as at, $5::jsonb as doc, $6::int as n, $7::bytea as bytes,
  $8::text[] as tags, $9::numeric as amount, null::text as nothing, $10::bigint as big`

const VALUES = [
  '00000000-0000-4000-8000-000000000001',
  'Ada Lovelace',
  true,
  new Date('2026-12-06T10:00:00.123Z'),
  JSON.stringify({ email: 'ada@example.com', nested: { list: [1, 2] } }),
  42,
  Buffer.from([0, 1, 254, 255]),
  ['a', 'b,c', 'd"e'],
  '12.50',
  '9007199254740993',
]

describe.skipIf(!TEST_DATABASE_URL)('named statements with a kept row shape', () => {
  let a: pg.Client
  let b: pg.Client
  beforeAll(async () => {
    a = new pg.Client({ connectionString: TEST_DATABASE_URL })
    b = new pg.Client({ connectionString: TEST_DATABASE_URL })
    await Promise.all([a.connect(), b.connect()])
  })
  afterAll(async () => {
    await Promise.all([a?.end(), b?.end()])
  })

  /** What callers read of a result. */
  const view = (result: pg.QueryResult) => ({
    command: result.command,
    rowCount: result.rowCount,
    rows: result.rows,
    fields: result.fields.map((field) => [field.name, field.dataTypeID]),
  })

  it("answers what pg's own Query answers, for every type, NULLs included", async () => {
    const own = await a.query({ name: 'shapes_own', text: TYPES, values: VALUES })
    for (let i = 0; i < 3; i++) {
      const shaped = await queryNamed(a, 'shapes_types', TYPES, VALUES)
      expect(view(shaped)).toEqual(view(own))
    }
    const row = (await queryNamed(a, 'shapes_types', TYPES, VALUES)).rows[0]
    expect(row.at).toEqual(VALUES[3])
    expect(row.doc).toEqual({ email: 'ada@example.com', nested: { list: [1, 2] } })
    expect(row.bytes).toEqual(VALUES[6])
    expect(row.nothing).toBeNull()
    expect(Object.keys(row)).toEqual(own.fields.map((field) => field.name))
  })

  it('answers many rows, no rows and a write with its count', async () => {
    const series = 'select i, i * 2 as twice from generate_series(1, $1::int) i'
    const own = await a.query({ name: 'shapes_series_own', text: series, values: [500] })
    expect(view(await queryNamed(a, 'shapes_series', series, [500]))).toEqual(view(own))
    const none = await queryNamed(a, 'shapes_series', series, [0])
    expect(view(none)).toEqual({
      command: 'SELECT',
      rowCount: 0,
      rows: [],
      fields: [
        ['i', 23],
        ['twice', 23],
      ],
    })
    await a.query('create temporary table shapes_t (id int primary key, v text)')
    await a.query("insert into shapes_t values (1, 'x'), (2, 'y'), (3, 'z')")
    const write = 'update shapes_t set v = v || $1 where id >= $2 returning id, v'
    const written = await queryNamed(a, 'shapes_write', write, ['!', 2])
    expect(written.command).toBe('UPDATE')
    expect(written.rowCount).toBe(2)
    expect(written.rows.sort((x, y) => x.id - y.id)).toEqual([
      { id: 2, v: 'y!' },
      { id: 3, v: 'z!' },
    ])
  })

  it('takes the columns each execution describes when one name stands for two statements', async () => {
    // Two connections with the same name for different statements: one shape per name would be
    // wrong for one of them, unless every description is checked.
    const first = 'select 1 as one, $1::text as label'
    const second = 'select $1::int as count, now() as at, true as ok'
    for (let i = 0; i < 3; i++) {
      const x = await queryNamed(a, 'shapes_same_name', first, ['a'])
      const y = await queryNamed(b, 'shapes_same_name', second, [7])
      expect(x.rows).toEqual([{ one: 1, label: 'a' }])
      expect(y.rows[0]).toMatchObject({ count: 7, ok: true })
      expect(y.rows[0].at).toBeInstanceOf(Date)
      expect(Object.keys(y.rows[0])).toEqual(['count', 'at', 'ok'])
    }
  })

  it("rejects with the server's error and leaves the connection usable", async () => {
    const divide = 'select 10 / $1::int as q'
    expect((await queryNamed(a, 'shapes_divide', divide, [2])).rows).toEqual([{ q: 5 }])
    const failed = await queryNamed(a, 'shapes_divide', divide, [0]).then(
      () => null,
      (error: { code?: string }) => error,
    )
    expect(failed?.code).toBe('22012')
    expect((await queryNamed(a, 'shapes_divide', divide, [5])).rows).toEqual([{ q: 2 }])
  })

  it('runs a statement again unnamed when its columns changed under the cached plan', async () => {
    // database.ts: another instance's migration changes a table while this one serves.
    const t = await createTestDatabase({ migrate: false })
    try {
      await sql`create table shapes_stale (id int primary key, a text)`.execute(t.db)
      await sql`insert into shapes_stale values (1, 'x')`.execute(t.db)
      // The table is not part of the service's schema type; the statement is what matters.
      const read = prepared((db, args: { id: number }) =>
        db
          .selectFrom('shapes_stale' as 'tenants')
          .selectAll()
          .where('id' as 'slug', '=', args.id as unknown as string),
      )
      // Every connection of the pool of 5 parses it and caches its plan.
      const first = await Promise.all(Array.from({ length: 10 }, () => read(t.db, { id: 1 })))
      expect(first.every((rows) => JSON.stringify(rows) === '[{"id":1,"a":"x"}]')).toBe(true)
      await sql`alter table shapes_stale add column b int default 7`.execute(t.db)
      const after = await Promise.all(Array.from({ length: 10 }, () => read(t.db, { id: 1 })))
      for (const rows of after) expect(rows).toEqual([{ id: 1, a: 'x', b: 7 }])
    } finally {
      await t.close()
    }
  })
})
