/**
 * Rate limits through the service's own listener (real sockets, so the client address is the
 * connection's): floods reach 429 / RATE_LIMITED with a usable Retry-After on each limited key,
 * address and route, others are unaffected, and RATE_LIMITS=off turns them off. The limits are
 * the service's own code paths with smaller numbers, set through the same variables.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { json, startFakeProvider, type FakeProvider } from '../helpers/fake-provider.ts'
import { WINDOW_MS } from '../../src/core/rate-limit.ts'
import { requestOverSocket, createTestApp, type TestApp } from '../helpers/test-app.ts'

/**
 * A clock that runs with real time from the start of a rate-limit window: the limits count in
 * fixed one-minute windows, and a flood that straddled a window's end on a slow machine would
 * start counting again halfway (a test of what happens at the window's end sets its own clock).
 */
function fromWindowStart(): () => Date {
  const real = Date.now()
  const shift = Math.ceil(real / WINDOW_MS) * WINDOW_MS - real + 1
  return () => new Date(Date.now() + shift)
}
import { create } from '../graphql/integration-fixtures.ts'

const VIEWER = '{ viewer { role } }'

interface Answer {
  status: number
  retryAfter: string | null
  body: {
    data?: unknown
    errors?: Array<{ message: string; extensions?: Record<string, unknown> }>
  }
}

/** A plain GraphQL POST (the direct path answers it) or a GET (yoga answers it). */
async function graphql(
  base: string,
  key: string | null,
  query = VIEWER,
  options: {
    variables?: Record<string, unknown>
    via?: 'direct' | 'yoga'
    headers?: Record<string, string>
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {
    ...(key ? { authorization: `Bearer ${key}` } : {}),
    ...options.headers,
  }
  const request =
    options.via === 'yoga'
      ? new Request(`${base}/graphql?query=${encodeURIComponent(query)}`, {
          headers: { accept: 'application/json', ...headers },
        })
      : new Request(`${base}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ query, variables: options.variables }),
        })
  const response = await requestOverSocket(base, request)
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    body: (await response.json()) as Answer['body'],
  }
}

function expectLimited(answer: Answer, message: RegExp): void {
  expect(answer.status).toBe(429)
  const retryAfter = Number(answer.retryAfter)
  expect(retryAfter).toBeGreaterThanOrEqual(1)
  expect(retryAfter).toBeLessThanOrEqual(60)
  expect(answer.body.errors?.[0]).toMatchObject({
    message: expect.stringMatching(message),
    extensions: { code: 'RATE_LIMITED', retryAfter },
  })
}

async function times<T>(count: number, send: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = []
  for (let i = 0; i < count; i++) results.push(await send(i))
  return results
}

describe('GraphQL requests per API key and per tenant', () => {
  let t: TestApp
  let base: string
  beforeAll(async () => {
    t = await createTestApp({
      now: fromWindowStart(),
      env: {
        RATE_LIMITS: 'on',
        RATE_LIMIT_KEY_PER_MINUTE: '20',
        RATE_LIMIT_TENANT_PER_MINUTE: '30',
      },
    })
    base = await t.listen()
  })
  afterAll(() => t.close())

  it('a key over its limit gets 429 on both paths; another tenant is unaffected', async () => {
    const flooding = await t.seedTenant()
    const other = await t.seedTenant()
    const direct = await times(15, () => graphql(base, flooding.agentKey))
    const yoga = await times(5, () => graphql(base, flooding.agentKey, VIEWER, { via: 'yoga' }))
    expect([...direct, ...yoga].map((a) => a.status)).toEqual(new Array(20).fill(200))
    expectLimited(
      await graphql(base, flooding.agentKey),
      /^Rate limit of 20 GraphQL requests a minute for this API key exceeded; retry in \d+ s$/,
    )
    expectLimited(
      await graphql(base, flooding.agentKey, VIEWER, { via: 'yoga' }),
      /for this API key exceeded/,
    )
    // Nothing ran: the error is the whole answer.
    expect((await graphql(base, flooding.agentKey)).body.data).toBeUndefined()
    const unaffected = await graphql(base, other.agentKey)
    expect(unaffected).toMatchObject({ status: 200, body: { data: { viewer: { role: 'AGENT' } } } })
  })

  it("a tenant's keys together reach the tenant limit; the keys of another tenant do not", async () => {
    const tenant = await t.seedTenant()
    const other = await t.seedTenant()
    const answers = await times(30, (i) => graphql(base, i % 2 ? tenant.adminKey : tenant.agentKey))
    expect(answers.every((a) => a.status === 200)).toBe(true)
    expectLimited(await graphql(base, tenant.adminKey), /for this tenant exceeded/)
    expectLimited(await graphql(base, tenant.agentKey), /for this tenant exceeded/)
    expect((await graphql(base, other.adminKey)).status).toBe(200)
  })
})

describe('GraphQL requests without a valid key, per client address', () => {
  it('are limited per address; unknown keys count as none; keys in use go on', async () => {
    const t = await createTestApp({
      now: fromWindowStart(),
      env: { RATE_LIMITS: 'on', RATE_LIMIT_ANONYMOUS_PER_MINUTE: '5', TRUST_PROXY: '127.0.0.1' },
    })
    try {
      const base = await t.listen()
      const tenant = await t.seedTenant()
      const unknownKey = `euo_${'a'.repeat(8)}_${'b'.repeat(43)}`
      // A key in use: verified moments ago, so it is known without a database read.
      expect((await graphql(base, tenant.agentKey)).status).toBe(200)
      const answers = [
        ...(await times(3, () => graphql(base, null, '{ __typename }'))),
        ...(await times(2, () => graphql(base, unknownKey, '{ __typename }'))),
      ]
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200])
      expectLimited(
        await graphql(base, null, '{ __typename }'),
        /^Rate limit of 5 GraphQL requests a minute without a valid API key from this address exceeded/,
      )
      expectLimited(await graphql(base, unknownKey), /without a valid API key/)
      expect((await graphql(base, tenant.agentKey)).status).toBe(200)
      // Behind a trusted proxy, each forwarded client has its own bucket.
      const forwarded = await graphql(base, null, '{ __typename }', {
        headers: { 'x-forwarded-for': '203.0.113.9' },
      })
      expect(forwarded.status).toBe(200)
    } finally {
      await t.close()
    }
  })

  it('ignore X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    const t = await createTestApp({
      now: fromWindowStart(),
      env: { RATE_LIMITS: 'on', RATE_LIMIT_ANONYMOUS_PER_MINUTE: '2' },
    })
    try {
      const base = await t.listen()
      const spoofed = (i: number) =>
        graphql(base, null, '{ __typename }', { headers: { 'x-forwarded-for': `198.51.100.${i}` } })
      expect((await times(3, spoofed)).map((a) => a.status)).toEqual([200, 200, 429])
    } finally {
      await t.close()
    }
  })
})

describe('links and callbacks, per client address', () => {
  it('reach 429 with Retry-After on /l/ and the callback routes together', async () => {
    const t = await createTestApp({
      now: fromWindowStart(),
      env: { RATE_LIMITS: 'on', RATE_LIMIT_IP_PER_MINUTE: '4', TRUST_PROXY: '127.0.0.0/8' },
    })
    try {
      const base = await t.listen()
      const get = (path: string, forwardedFor?: string) =>
        requestOverSocket(
          base,
          new Request(`${base}${path}`, {
            headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {},
          }),
        )
      const statuses = [
        (await get('/l/unknown-token-1')).status,
        (await get('/l/unknown-token-2')).status,
        (await get('/idp/eu/oauth/callback/nokey?code=c&state=s')).status,
        (await get('/web/inbound/abc/oauth/redirect?code=c&state=s')).status,
      ]
      expect(statuses.every((s) => s !== 429)).toBe(true)
      const limited = await get('/l/unknown-token-3')
      expect(limited.status).toBe(429)
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      expect(await limited.text()).toContain('Too many requests')
      expect((await get('/idp/eu/oauth/callback/nokey?code=c&state=s')).status).toBe(429)
      // Another client behind the same proxy, and the health checks, are not affected.
      expect((await get('/l/unknown-token-4', '198.51.100.7')).status).toBe(404)
      expect((await get('/healthz')).status).toBe(200)
    } finally {
      await t.close()
    }
  })
})

describe('startEndUserAuth per conversation, and live mapping tests per tenant', () => {
  let t: TestApp
  let base: string
  let idp: FakeProvider
  beforeAll(async () => {
    idp = await startFakeProvider()
    t = await createTestApp({
      now: fromWindowStart(),
      env: {
        RATE_LIMITS: 'on',
        RATE_LIMIT_CONVERSATION_PER_MINUTE: '3',
        RATE_LIMIT_LIVE_MAPPING_PER_MINUTE: '2',
        OUTBOUND_ALLOW_HOSTS: '127.0.0.1',
      },
    })
    base = await t.listen()
  })
  afterAll(async () => {
    await t.close()
    await idp.close()
  })

  const START = `mutation ($input: StartEndUserAuthInput!) { startEndUserAuth(input: $input) { session { id } } }`

  it('the fourth start for one conversation is RATE_LIMITED and writes nothing', async () => {
    const tenant = await t.seedTenant()
    const integration = await create(t, tenant.adminKey)
    const start = (conversationId: string) =>
      graphql(base, tenant.agentKey, START, {
        variables: { input: { integrationId: integration.id, conversationId } },
      })
    const started = await times(3, () => start('conv-flood'))
    expect(started.map((a) => a.status)).toEqual([200, 200, 200])
    const count = async () =>
      Number(
        (
          await t.deps.db
            .selectFrom('auth_sessions')
            .where('conversation_id', '=', 'conv-flood')
            .select((eb) => eb.fn.countAll<string>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      )
    expect(await count()).toBe(3)
    expectLimited(
      await start('conv-flood'),
      /^Rate limit of 3 sign-ins started for this conversation a minute exceeded; retry in \d+ s$/,
    )
    expect(await count()).toBe(3)
    expect((await start('conv-other')).status).toBe(200)
  })

  it('the third live mapping test of a tenant is RATE_LIMITED before any call', async () => {
    const tenant = await t.seedTenant()
    const other = await t.seedTenant()
    const integration = await create(t, tenant.adminKey, { whoAmIUrl: idp.url('/me') })
    const otherIntegration = await create(t, other.adminKey, { whoAmIUrl: idp.url('/me') })
    const TEST = `mutation ($input: TestWhoAmIMappingInput!) { testWhoAmIMapping(input: $input) { identity { userName } } }`
    idp.on('GET', '/me', json({ user: { id: 'u1' } }), { times: 3 })
    const live = (key: string, integrationId: string) =>
      graphql(base, key, TEST, {
        variables: { input: { integrationId, accessToken: 'at', mapping: '{userName: user.id}' } },
      })
    expect((await live(tenant.agentKey, integration.id)).status).toBe(200)
    expect((await live(tenant.agentKey, integration.id)).status).toBe(200)
    const before = idp.requests.length
    expectLimited(
      await live(tenant.agentKey, integration.id),
      /^Rate limit of 2 mapping tests with a WhoAmI call for this tenant a minute exceeded/,
    )
    expect(idp.requests.length).toBe(before)
    // Mapping tests on a given payload are not live calls; another tenant has its own count.
    const offline = await graphql(base, tenant.agentKey, TEST, {
      variables: { input: { payload: { user: { id: 'u2' } }, mapping: '{userName: user.id}' } },
    })
    expect(offline.status).toBe(200)
    expect((await live(other.agentKey, otherIntegration.id)).status).toBe(200)
    idp.assertAllCalled()
  })
})

describe('a window', () => {
  it('opens again after a minute', async () => {
    let now = new Date('2026-12-02T12:00:10Z').getTime()
    const t = await createTestApp({
      env: { RATE_LIMITS: 'on', RATE_LIMIT_KEY_PER_MINUTE: '2' },
      now: () => new Date(now),
    })
    try {
      const base = await t.listen()
      const tenant = await t.seedTenant()
      await times(2, () => graphql(base, tenant.agentKey))
      const limited = await graphql(base, tenant.agentKey)
      expectLimited(limited, /retry in 50 s$/)
      expect(limited.retryAfter).toBe('50')
      now += 50_000
      expect((await graphql(base, tenant.agentKey)).status).toBe(200)
    } finally {
      await t.close()
    }
  })
})

describe('RATE_LIMITS=off', () => {
  it('turns every limit off', async () => {
    const t = await createTestApp({
      now: fromWindowStart(),
      env: {
        RATE_LIMITS: 'off',
        RATE_LIMIT_KEY_PER_MINUTE: '1',
        RATE_LIMIT_TENANT_PER_MINUTE: '1',
        RATE_LIMIT_ANONYMOUS_PER_MINUTE: '1',
        RATE_LIMIT_IP_PER_MINUTE: '1',
      },
    })
    try {
      const base = await t.listen()
      const tenant = await t.seedTenant()
      const keyed = await times(5, () => graphql(base, tenant.agentKey))
      const anonymous = await times(5, () => graphql(base, null, '{ __typename }'))
      const links = await times(5, (i) =>
        requestOverSocket(base, new Request(`${base}/l/unknown-${i}`)),
      )
      expect([...keyed, ...anonymous].map((a) => a.status)).toEqual(new Array(10).fill(200))
      expect(links.map((r) => r.status)).toEqual(new Array(5).fill(404))
    } finally {
      await t.close()
    }
  })
})
