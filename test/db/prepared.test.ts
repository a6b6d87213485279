/**
 * prepared(): a statement compiled once gives what the builder gives, call after call, with
 * arguments used more than once, constants compiled in, and a transaction as well as the root.
 */
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { prepared } from '../../src/db/prepared.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/test-db.ts'

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
