/**
 * prepared(): a statement compiled once gives what the builder gives, call after call, with
 * arguments used more than once, constants compiled in, and a transaction as well as the root.
 */
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { prepared } from '../../src/db/prepared.ts'
import { openDatabase, type DatabaseHandle } from '../../src/db/database.ts'
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/test-db.ts'

describe('prepared', () => {
  let t: TestDatabase
  beforeAll(async () => {
    t = await createTestDatabase()
    await t.db
      .insertInto('tenants')
      .values([
        { slug: 'a', name: 'Alpha' },
        { slug: 'b', name: 'Beta' },
        { slug: 'c', name: 'Gamma' },
      ])
      .execute()
  })
  afterAll(async () => t?.close())

  const bySlugs = prepared((db, a: { first: string; second: string }) =>
    db
      .selectFrom('tenants')
      .select(['slug', 'name'])
      .where((eb) =>
        eb.or([
          eb('slug', '=', a.first),
          eb('slug', '=', a.second),
          eb('name', 'in', ['Gamma', 'Delta']),
        ]),
      )
      .where('slug', '!=', sql<string>`upper(${a.first})`)
      .orderBy('slug'),
  )

  it('answers each call with its own values, as the builder does', async () => {
    for (const [first, second] of [
      ['a', 'b'],
      ['b', 'x'],
      ['x', 'y'],
    ] as const) {
      const expected = await t.db
        .selectFrom('tenants')
        .select(['slug', 'name'])
        .where((eb) =>
          eb.or([
            eb('slug', '=', first),
            eb('slug', '=', second),
            eb('name', 'in', ['Gamma', 'Delta']),
          ]),
        )
        .where('slug', '!=', sql<string>`upper(${first})`)
        .orderBy('slug')
        .execute()
      expect(await bySlugs(t.db, { first, second })).toEqual(expected)
    }
    expect((await bySlugs(t.db, { first: 'a', second: 'b' })).map((r) => r.slug)).toEqual([
      'a',
      'b',
      'c',
    ])
  })

  it('runs inside a transaction', async () => {
    const rows = await t.db
      .transaction()
      .execute((trx) => bySlugs(trx, { first: 'b', second: 'b' }))
    expect(rows.map((r) => r.slug)).toEqual(['b', 'c'])
  })
})

// Named prepared statements exist on PostgreSQL only (database.ts); the embedded database runs
// the same SQL unnamed.
describe.skipIf(!TEST_DATABASE_URL)('prepared, as named statements on PostgreSQL', () => {
  let t: TestDatabase
  let one: DatabaseHandle
  beforeAll(async () => {
    t = await createTestDatabase()
    if (t.target.kind !== 'postgres') throw new Error('needs PostgreSQL')
    // One connection, so that the statement and the look at pg_prepared_statements share it.
    one = openDatabase({
      kind: 'postgres',
      url: t.target.url,
      schema: t.target.schema,
      poolSize: 1,
    })
    await one.db.insertInto('tenants').values({ slug: 'n', name: 'Named' }).execute()
  })
  afterAll(async () => {
    await one?.close()
    await t?.close()
  })

  const bySlug = prepared((db, a: { slug: string }) =>
    db.selectFrom('tenants').selectAll().where('slug', '=', a.slug),
  )

  it('is parsed once per connection, under its name', async () => {
    expect(await bySlug(one.db, { slug: 'n' })).toMatchObject([{ name: 'Named' }])
    const statements = await sql<{ name: string; statement: string }>`
      select name, statement from pg_prepared_statements`.execute(one.db)
    const mine = statements.rows.filter((r) => r.statement.includes('"slug" = $1'))
    expect(mine).toHaveLength(1)
    expect(mine[0]!.name).toMatch(/^euo_\d+$/)
    expect(await bySlug(one.db, { slug: 'n' })).toMatchObject([{ name: 'Named' }])
  })

  it('still answers after a migration changed the columns it returns', async () => {
    expect(await bySlug(one.db, { slug: 'n' })).toHaveLength(1)
    await sql`alter table tenants add column added_later text`.execute(t.db)
    const [row] = await bySlug(one.db, { slug: 'n' })
    expect(row).toMatchObject({ name: 'Named', added_later: null })
    expect(await bySlug(one.db, { slug: 'n' })).toHaveLength(1)
  })
})
