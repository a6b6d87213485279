/**
 * What one GraphQL document may ask for: aliases, depth, tokens, directives and the cost budget,
 * refused before any resolver runs (nothing written, no call to a provider), on both paths
 * (this folder also runs over the socket listener `npm start` uses: the `direct` project).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { getIntrospectionQuery, parse } from 'graphql'
import { schema } from '../../src/graphql/schema.ts'
import { FIELD_COSTS, LIVE_MAPPING_COST, operationCosts } from '../../src/graphql/limits.ts'
import { json, startFakeProvider, type FakeProvider } from '../helpers/fake-provider.ts'
import { createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'
import { create } from './integration-fixtures.ts'

let t: TestApp
let idp: FakeProvider
let tenant: SeededTenant
let integrationId: string

beforeAll(async () => {
  idp = await startFakeProvider()
  t = await createTestApp({ env: { OUTBOUND_ALLOW_HOSTS: '127.0.0.1' } })
  tenant = await t.seedTenant()
  integrationId = (await create(t, tenant.adminKey, { whoAmIUrl: idp.url('/me') })).id
})

afterAll(async () => {
  await t.close()
  await idp.close()
})

/** Rows that a start or a mapping test could write, and the provider's requests so far. */
async function footprint() {
  const sessions = await t.deps.db
    .selectFrom('auth_sessions')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow()
  const contacts = await t.deps.db
    .selectFrom('contacts')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow()
  return { sessions: Number(sessions.n), contacts: Number(contacts.n), calls: idp.requests.length }
}

function aliased(count: number, field: (i: number) => string, prefix = 'a'): string {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}: ${field(i)}`).join('\n')
}

const startField = (i: number) =>
  `startEndUserAuth(input: { integrationId: "${integrationId}", conversationId: "conv-${i}" }) { authorizationLink }`
const liveField = () =>
  `testWhoAmIMapping(input: { integrationId: "${integrationId}", accessToken: "at" }) { identity { email } }`

describe('a document over a limit is refused before any resolver runs', () => {
  it('1,000 aliased authSession reads', async () => {
    const query = `{ ${aliased(1000, () => 'authSession(id: "00000000-0000-4000-8000-000000000000") { id }')} }`
    const result = await t.gql(tenant.agentKey, query)
    expect(result.data ?? null).toBeNull()
    const messages = (result.errors ?? []).map((e) => e.message)
    // 1,000 aliases pass the token limit? No: the parser stops first, at 2,000 tokens.
    expect(messages).toEqual([
      'Syntax Error: Token limit of 2000 exceeded: the document has more tokens.',
    ])
  })

  it('aliases: 20 aliased reads (under the token limit) name the alias limit', async () => {
    // Aliases of __typename are free (graphql-armor's allow-list): they cost nothing to answer.
    const query = `{ ${aliased(20, () => 'viewer { role }')} ${aliased(20, () => '__typename', 't')} }`
    const result = await t.gql(tenant.agentKey, query)
    expect(result.data ?? null).toBeNull()
    expect(result.errors?.map((e) => e.message)).toEqual([
      'Syntax Error: Aliases limit of 15 exceeded, found 20.',
    ])
  })

  it('depth 50', async () => {
    const nested = (depth: number): string =>
      depth === 0 ? 'name' : `ofType { ${nested(depth - 1)} }`
    const query = `{ __type(name: "AuthSession") { ${nested(49)} } }`
    const result = await t.gql(tenant.agentKey, query)
    expect(result.data ?? null).toBeNull()
    expect(result.errors?.map((e) => e.message)).toEqual([
      'Syntax Error: Query depth limit of 15 exceeded, found 51.',
    ])
  })

  it('a long token stream (a 1 MiB document of punctuation)', async () => {
    const query = `{ ${'viewer { role } '.repeat(70_000)} }`
    expect(query.length).toBeGreaterThan(1_000_000)
    const result = await t.gql(tenant.agentKey, query)
    expect(result.errors?.map((e) => e.message)).toEqual([
      'Syntax Error: Token limit of 2000 exceeded: the document has more tokens.',
    ])
  })

  it('directives: 11 of them', async () => {
    const query = `{ viewer { role ${'@include(if: true) '.repeat(11)} } }`
    const result = await t.gql(tenant.agentKey, query)
    expect(result.errors?.map((e) => e.message)).toContain(
      'Syntax Error: Directives limit of 10 exceeded, found 11.',
    )
  })

  it('100 startEndUserAuth in one request: nothing written', async () => {
    const before = await footprint()
    const result = await t.gql(tenant.agentKey, `mutation { ${aliased(100, startField)} }`)
    expect(result.data ?? null).toBeNull()
    const messages = result.errors?.map((e) => e.message) ?? []
    expect(messages).toContain('Syntax Error: Aliases limit of 15 exceeded, found 100.')
    expect(
      messages.some((m) => m.startsWith('Query cost limit of 1000 exceeded, found 18100')),
    ).toBe(true)
    expect(await footprint()).toEqual(before)
  })

  it('6 startEndUserAuth (within the alias limit) are over the cost budget; 5 are not', async () => {
    const before = await footprint()
    const six = await t.gql(tenant.agentKey, `mutation { ${aliased(6, startField)} }`)
    expect(six.errors?.map((e) => e.message)).toEqual([
      expect.stringMatching(/^Query cost limit of 1000 exceeded, found 1086 /),
    ])
    expect(await footprint()).toEqual(before)
    const five = await t.gql<Record<string, { authorizationLink: string }>>(
      tenant.agentKey,
      `mutation { ${aliased(5, startField)} }`,
    )
    expect(five.errors).toBeUndefined()
    expect(Object.keys(five.data ?? {})).toHaveLength(5)
    expect((await footprint()).sessions).toBe(before.sessions + 5)
  })

  it('200 live testWhoAmIMapping calls in one request: no call to the provider', async () => {
    const before = await footprint()
    const result = await t.gql(tenant.agentKey, `mutation { ${aliased(200, liveField)} }`)
    expect(result.data ?? null).toBeNull()
    expect(result.errors?.length).toBeGreaterThan(0)
    // Even 2 live calls (within the alias limit) are over the budget.
    const two = await t.gql(tenant.agentKey, `mutation { ${aliased(2, liveField)} }`)
    expect(two.errors?.map((e) => e.message)).toEqual([
      expect.stringMatching(/^Query cost limit of 1000 exceeded, found 1404 /),
    ])
    // A live call given as a variable counts as live.
    const viaVariables = await t.gql(
      tenant.agentKey,
      `mutation ($a: TestWhoAmIMappingInput!, $b: TestWhoAmIMappingInput!, $c: TestWhoAmIMappingInput!) {
        a: testWhoAmIMapping(input: $a) { notes } b: testWhoAmIMapping(input: $b) { notes }
        c: testWhoAmIMapping(input: $c) { notes } }`,
      Object.fromEntries(['a', 'b', 'c'].map((k) => [k, { integrationId, accessToken: 'at' }])),
    )
    expect(viaVariables.errors?.[0]?.message).toMatch(/^Query cost limit of 1000 exceeded/)
    expect(await footprint()).toEqual(before)
    idp.assertAllCalled()
  })

  it('one live call fits, and reaches the provider', async () => {
    idp.on('GET', '/me', json({ user: { id: 'u1' } }))
    const result = await t.gql(tenant.agentKey, `mutation { ${aliased(1, liveField)} }`)
    expect(result.errors).toBeUndefined()
    idp.assertAllCalled()
  })
})

describe('introspection', () => {
  it('is refused without a key in production, before anything runs', async () => {
    const production = await createTestApp({ env: { NODE_ENV: 'production' } })
    try {
      const result = await production.gql(null, getIntrospectionQuery())
      expect(result.data ?? null).toBeNull()
      expect(result.errors?.[0]?.message).toMatch(/introspection/i)
      const aliasedSchema = await production.gql(
        null,
        `{ ${aliased(1000, () => '__schema { types { name } }')} }`,
      )
      expect(aliasedSchema.data ?? null).toBeNull()
      expect(aliasedSchema.errors?.length).toBeGreaterThan(0)
    } finally {
      await production.close()
    }
  })

  it('the standard introspection query works where introspection is on', async () => {
    const result = await t.gql<{ __schema: { types: unknown[] } }>(null, getIntrospectionQuery())
    expect(result.errors).toBeUndefined()
    expect(result.data?.__schema.types.length).toBeGreaterThan(10)
  })

  it('has a budget of twice the standard query: three copies of it are refused', async () => {
    const body = getIntrospectionQuery().replace(/^\s*query IntrospectionQuery \{/, '')
    const fragments = body.slice(body.indexOf('fragment'))
    const selection = body.slice(0, body.indexOf('fragment')).trim().replace(/\}$/, '')
    const query = `{ a: ${selection} b: ${selection} c: ${selection} } ${fragments}`
    const result = await t.gql(null, query)
    expect(result.errors?.map((e) => e.message)).toEqual([
      expect.stringMatching(/^Introspection cost limit of \d+ exceeded/),
    ])
  })
})

describe('the cost model', () => {
  it('charges what the budget comment says', () => {
    const cost = (query: string) => operationCosts(schema, parse(query))[0]
    expect(FIELD_COSTS['Mutation.startEndUserAuth']).toBe(180)
    expect(LIVE_MAPPING_COST).toBe(700)
    expect(cost('{ viewer { role tenant { slug } } }')).toEqual({ fields: 4, introspection: 0 })
    // A list of objects: ten times its selection.
    expect(cost('{ authSessions(conversationId: "c") { id status } }')?.fields).toBe(21)
    // Two mapping tests on given payloads are over the budget: one per request.
    expect(cost('mutation { testWhoAmIMapping(input: { payload: {} }) { notes } }')?.fields).toBe(
      551,
    )
    // Fragments spread twice over at every level are costed once each.
    const bomb = [
      'query { viewer { ...F0 } }',
      ...Array.from(
        { length: 30 },
        (_, i) => `fragment F${i} on Viewer { ...F${i + 1} ...F${i + 1} }`,
      ),
      'fragment F30 on Viewer { role }',
    ].join('\n')
    expect(cost(bomb)?.fields).toBe(2 ** 30 + 1)
  })
})
