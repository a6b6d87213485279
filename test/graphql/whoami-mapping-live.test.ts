/**
 * testWhoAmIMapping with integrationId and accessToken: the service calls the integration's
 * WhoAmI URL (a small node:http server on 127.0.0.1, allow-listed) through the guarded client and
 * maps the live answer. Failures come back in `errors`; another tenant's integration is
 * NOT_FOUND before any request; the token is never logged, stored or returned. Last, the tester's
 * identity equals the one a real sign-in (oidc-provider) stored for the same answer and mapping.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createFlowApp,
  poll,
  seedIntegration,
  seedProviderIntegration,
  signIn,
} from '../helpers/flow.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import { codes, createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'
import { dumpDatabase } from './integration-fixtures.ts'

const TEST = `mutation ($input: TestWhoAmIMappingInput!) {
  testWhoAmIMapping(input: $input) {
    identity { subject issuer email emailVerified userName fullName firstName lastName attributes }
    errors { message }
    warnings { message }
    notes
    expression
  }
}`

interface Result {
  identity: Record<string, unknown> | null
  errors: { message: string }[]
  warnings: { message: string }[]
  notes: string[]
  expression: string | null
}

const TOKEN = 'live-access-token-Qm9uIHZveWFnZQ-7c1e'
const ANSWER = {
  user: { id: 'billy.bob', name: 'Billy Bob', email: 'Billy.Bob@Example.com' },
  roles: ['SomeRole'],
}
const MAPPING = '{userName: user.id, fullName: user.name, email: user.email, roles: roles}'

/**
 * A WhoAmI endpoint: `/me` answers ANSWER to `Authorization: Bearer TOKEN` and 401 otherwise,
 * `/any` answers `payload` to any Bearer token (and records it), `/list` answers an array,
 * `/hang` never answers.
 */
async function startWhoAmI(payload: unknown = ANSWER) {
  const requests: IncomingMessage[] = []
  const tokens: string[] = []
  const server: Server = createServer((req, res) => {
    requests.push(req)
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1]
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers })
      res.end(JSON.stringify(body))
    }
    if (req.url === '/hang') return
    if (req.url === '/list') return json(200, [ANSWER])
    if (req.url === '/any' && bearer) {
      tokens.push(bearer)
      return json(200, payload)
    }
    if (req.url === '/me' && bearer === TOKEN) return json(200, ANSWER)
    json(401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    origin,
    requests,
    tokens,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

describe('testWhoAmIMapping against the live WhoAmI URL', () => {
  let t: TestApp
  let whoAmI: Awaited<ReturnType<typeof startWhoAmI>>
  let tenant: SeededTenant
  let other: SeededTenant
  let n = 0

  beforeAll(async () => {
    whoAmI = await startWhoAmI()
    t = await createTestApp({
      env: { OUTBOUND_ALLOW_HOSTS: '127.0.0.1' },
      outbound: { deadlineMs: 1500, headersTimeoutMs: 1000 },
    })
    tenant = await t.seedTenant()
    other = await t.seedTenant()
  })
  afterAll(async () => {
    await t?.close()
    await whoAmI?.close()
  })

  async function integration(overrides: Record<string, unknown> = {}, owner = tenant) {
    const created = await seedIntegration(t, owner, {
      name: `live ${++n}`,
      clientId: `live-client-${n}`,
      clientSecret: 'live-client-secret-0123',
      authorizationUrl: `${whoAmI.origin}/authorize`,
      tokenUrl: `${whoAmI.origin}/token`,
      whoAmIUrl: `${whoAmI.origin}/me`,
      whoAmIMapping: MAPPING,
      ...overrides,
    })
    return created.id
  }

  async function run(input: Record<string, unknown>, key = tenant.adminKey) {
    const result = await t.gql<{ testWhoAmIMapping: Result }>(key, TEST, { input })
    expect(result.errors).toBeUndefined()
    return result.data!.testWhoAmIMapping
  }

  it('calls the WhoAmI URL with the token and maps the answer with the saved mapping', async () => {
    const id = await integration()
    const before = whoAmI.requests.length
    const result = await run({ integrationId: id, accessToken: TOKEN })
    expect(whoAmI.requests.length).toBe(before + 1)
    const request = whoAmI.requests.at(-1)!
    expect(request.method).toBe('GET')
    expect(request.url).toBe('/me')
    expect(request.headers.authorization).toBe(`Bearer ${TOKEN}`)
    expect(result).toEqual({
      identity: {
        subject: null,
        issuer: null,
        emailVerified: null,
        email: 'Billy.Bob@example.com',
        userName: 'billy.bob',
        fullName: 'Billy Bob',
        firstName: 'Billy',
        lastName: 'Bob',
        attributes: {
          userName: 'billy.bob',
          fullName: 'Billy Bob',
          email: 'Billy.Bob@Example.com',
          roles: ['SomeRole'],
        },
      },
      errors: [],
      warnings: [{ message: expect.stringMatching(/^subject: none/) }],
      notes: [],
      expression: MAPPING,
    })
  })

  it('maps the live answer with a pasted mapping and splitFullName, for an AGENT key too', async () => {
    const id = await integration({ splitFullName: true })
    const result = await run(
      {
        integrationId: id,
        accessToken: ` ${TOKEN}\n`,
        mapping: JSON.stringify('{"userName": user.id, "fullName": user.name}'),
        splitFullName: false,
      },
      tenant.agentKey,
    )
    expect(result.errors).toEqual([])
    expect(result.notes).toEqual(['removed the double quotes around it'])
    expect(result.identity).toMatchObject({
      userName: 'billy.bob',
      fullName: 'Billy Bob',
      firstName: null,
      lastName: null,
    })
  })

  it('reports a refused token, a timeout and a malformed answer in errors, not as GraphQL errors', async () => {
    const id = await integration()
    const refused = await run({ integrationId: id, accessToken: 'some-other-token' })
    expect(refused.identity).toBeNull()
    expect(refused.errors).toEqual([
      {
        message: expect.stringMatching(
          /^whoAmI: the call to the integration's WhoAmI URL failed \(whoami_failed\): .*HTTP 401 \(invalid_token\)/,
        ),
      },
    ])

    const hanging = await integration({ whoAmIUrl: `${whoAmI.origin}/hang` })
    const timedOut = await run({ integrationId: hanging, accessToken: TOKEN })
    expect(timedOut.errors).toEqual([
      { message: expect.stringMatching(/failed \(provider_timeout\)/) },
    ])

    const listing = await integration({ whoAmIUrl: `${whoAmI.origin}/list` })
    const list = await run({ integrationId: listing, accessToken: TOKEN })
    expect(list.errors).toEqual([
      { message: expect.stringMatching(/failed \(invalid_provider_response\)/) },
    ])
  })

  it('reports a blocked address in errors, without a request', async () => {
    const id = await integration()
    // The same database, served by an app whose OUTBOUND_ALLOW_HOSTS does not list 127.0.0.1.
    const strict = await createTestApp({ database: t.database })
    try {
      const before = whoAmI.requests.length
      const result = await strict.gql<{ testWhoAmIMapping: Result }>(tenant.adminKey, TEST, {
        input: { integrationId: id, accessToken: TOKEN },
      })
      expect(result.errors).toBeUndefined()
      expect(result.data!.testWhoAmIMapping.errors).toEqual([
        { message: expect.stringMatching(/failed \(blocked_address\)/) },
      ])
      expect(whoAmI.requests.length).toBe(before)
      expect(strict.logs.join('\n')).not.toContain(TOKEN)
    } finally {
      await strict.close()
    }
  })

  it('refuses an unusable token or an integration without a WhoAmI URL, without a request', async () => {
    const id = await integration()
    const without = await integration({ whoAmIUrl: null })
    const before = whoAmI.requests.length
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ integrationId: id, accessToken: '   ' }, /^accessToken: is empty$/],
      [{ integrationId: id, accessToken: `${TOKEN}\r\nX-Evil: 1` }, /^accessToken: may only hold/],
      [{ integrationId: id, accessToken: 'x'.repeat(16 * 1024 + 1) }, /^accessToken: is longer/],
      [{ integrationId: without, accessToken: TOKEN }, /^integrationId: .*no WhoAmI URL/],
      [{ accessToken: TOKEN }, /^accessToken: needs integrationId/],
      [{ integrationId: id, accessToken: TOKEN, payload: ANSWER }, /not both$/],
    ]
    for (const [input, pattern] of cases) {
      const result = await run(input)
      expect(result.identity).toBeNull()
      expect(result.errors).toEqual([{ message: expect.stringMatching(pattern) }])
      expect(JSON.stringify(result)).not.toContain(TOKEN)
    }
    expect(whoAmI.requests.length).toBe(before)
  })

  it("gives NOT_FOUND for another tenant's integration, and the provider sees no request", async () => {
    const id = await integration()
    const before = whoAmI.requests.length
    for (const key of [other.adminKey, other.agentKey]) {
      const result = await t.gql(key, TEST, { input: { integrationId: id, accessToken: TOKEN } })
      expect(codes(result)).toEqual(['NOT_FOUND'])
      expect(result.data).toBeNull()
      expect(JSON.stringify(result)).not.toContain(TOKEN)
    }
    expect(whoAmI.requests.length).toBe(before)
    // The other tenant's own integration with the same WhoAmI URL works for it.
    const theirs = await integration({ clientId: 'their-live-client' }, other)
    const own = await run({ integrationId: theirs, accessToken: TOKEN }, other.agentKey)
    expect(own.identity?.userName).toBe('billy.bob')
    expect(whoAmI.requests.length).toBe(before + 1)
  })

  it('never logs, stores or returns the access token', async () => {
    const id = await integration()
    await run({ integrationId: id, accessToken: TOKEN })
    await run({ integrationId: id, accessToken: `${TOKEN}-wrong` })
    const logs = t.logs.join('\n')
    expect(logs).toContain('WhoAmI test call')
    expect(logs).not.toContain(TOKEN)
    expect(logs).not.toContain(TOKEN.slice(0, 20))
    expect(await dumpDatabase(t)).not.toContain(TOKEN.slice(0, 20))
  })
})

describe('testWhoAmIMapping and a real sign-in', () => {
  const SECRET = 'app-secret-0123456789'
  // Every standard field needs work: a numeric id, a name to clean and split, an email to fix.
  const PAYLOAD = {
    profile: { id: 4711, display: '  Lovelace,\u200b  Ada ', mail: 'Ada@EXAMPLE.org' },
    groups: ['a', 'b'],
  }
  const SIGN_IN_MAPPING =
    '{userName: profile.id, fullName: profile.display, email: profile.mail, groups: groups}'
  let t: TestApp
  let provider: TestProvider
  let whoAmI: Awaited<ReturnType<typeof startWhoAmI>>
  let tenant: SeededTenant

  beforeAll(async () => {
    whoAmI = await startWhoAmI(PAYLOAD)
    t = await createFlowApp()
    provider = await startTestProvider({
      accounts: { ada: { email: 'ada@example.org', name: 'Ada' } },
    })
    tenant = await t.seedTenant()
  })
  afterAll(async () => {
    await t?.close()
    await provider?.close()
    await whoAmI?.close()
  })

  it('returns the identity the sign-in stored, for the pasted payload and for the live call', async () => {
    const { id: integrationId } = await seedProviderIntegration(
      t,
      tenant,
      provider,
      { clientId: 'app', clientSecret: SECRET },
      {
        name: 'oidc',
        scope: 'openid',
        whoAmIUrl: `${whoAmI.origin}/any`,
        whoAmIMapping: SIGN_IN_MAPPING,
      },
    )

    const { started } = await signIn(
      t,
      tenant.agentKey,
      { integrationId, conversationId: 'conv-ada' },
      'ada',
    )
    const session = (await poll(t, tenant.agentKey, started.session.id))!
    expect(session.status).toBe('AUTHENTICATED')
    expect(session.identity).toMatchObject({
      userName: '4711',
      fullName: 'Lovelace, Ada',
      firstName: 'Ada',
      lastName: 'Lovelace',
      email: 'Ada@example.org',
    })
    expect(whoAmI.tokens).toHaveLength(1)

    // The same answer pasted, with the same mapping given explicitly or taken from the integration.
    for (const input of [
      { integrationId, payload: PAYLOAD },
      { mapping: SIGN_IN_MAPPING, payload: PAYLOAD },
    ]) {
      const tested = await t.gql<{ testWhoAmIMapping: Result }>(tenant.agentKey, TEST, { input })
      expect(tested.errors).toBeUndefined()
      expect(tested.data!.testWhoAmIMapping.identity).toEqual(session.identity)
    }

    // The live call with the access token the sign-in used (the WhoAmI server kept it).
    const live = await t.gql<{ testWhoAmIMapping: Result }>(tenant.adminKey, TEST, {
      input: { integrationId, accessToken: whoAmI.tokens[0] },
    })
    expect(live.errors).toBeUndefined()
    expect(live.data!.testWhoAmIMapping.identity).toEqual(session.identity)
    expect(whoAmI.tokens).toEqual([whoAmI.tokens[0], whoAmI.tokens[0]])
    expect(t.logs.join('\n')).not.toContain(whoAmI.tokens[0])
  })
})
