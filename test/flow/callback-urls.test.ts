/**
 * Which callback URL a session accepts, end to end against a scriptable provider on a real
 * socket: its own integration's URL (the route followed by the integration's key) and no other,
 * the redirect_uri repeated byte for byte in the token request; a session started before
 * per-integration URLs existed (no stored redirect_uri) still finishes on the bare route; and
 * with `{tenant}` hosts, a link or a callback on another tenant's host is refused. Every refusal
 * happens before any token request (the provider's request log says so).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ScriptedBrowser } from '../helpers/browser.ts'
import { json, startFakeProvider, type FakeProvider } from '../helpers/fake-provider.ts'
import {
  arriveAtCallback,
  createFlowApp,
  poll,
  postLink,
  redirectUrl,
  seedIntegration,
  start,
  type SeededIntegration,
} from '../helpers/flow.ts'
import {
  createTestApp,
  requestOverSocket,
  type SeededTenant,
  type TestApp,
} from '../helpers/test-app.ts'

const TOKEN = { access_token: 'at-0123456789abcdef', token_type: 'bearer' }

describe('the callback URL of a session', () => {
  let t: TestApp
  let idp: FakeProvider
  let tenant: SeededTenant
  let first: SeededIntegration
  let second: SeededIntegration

  beforeAll(async () => {
    t = await createFlowApp()
    idp = await startFakeProvider()
    tenant = await t.seedTenant('callback-urls')
    const urls = {
      clientSecret: 'secret-0123456789',
      authorizationUrl: idp.url('/authorize'),
      tokenUrl: idp.url('/token'),
      whoAmIUrl: idp.url('/whoami'),
    }
    first = await seedIntegration(t, tenant, { ...urls, clientId: 'first' })
    second = await seedIntegration(t, tenant, { ...urls, clientId: 'second' })
  })
  afterAll(async () => {
    await t?.close()
    await idp?.close()
  })

  /** A session opened in a fresh browser: the provider's authorization URL and the browser. */
  async function opened(integration: SeededIntegration, route: 'IDP' | 'ABC' = 'IDP') {
    const started = await start(t, tenant.agentKey, {
      integrationId: integration.id,
      conversationId: `conv-${Math.random()}`,
      redirectRoute: route,
    })
    const browser = new ScriptedBrowser()
    const authorize = await postLink(browser, started.authorizationLink)
    return { started, browser, authorize }
  }

  function callbackAt(base: string, state: string): string {
    const url = new URL(base)
    url.searchParams.set('code', 'code-0123456789abcdef')
    url.searchParams.set('state', state)
    return url.href
  }

  it("sends the integration's own URL as redirect_uri, and repeats it in the token request", async () => {
    const { started, browser, authorize } = await opened(first, 'ABC')
    expect(authorize.searchParams.get('redirect_uri')).toBe(redirectUrl(first, 'ABC'))
    idp.on('POST', '/token', json(TOKEN))
    idp.on('GET', '/whoami', json({ sub: 'ada', email: 'ada@example.com' }))
    const { result } = await arriveAtCallback(
      browser,
      callbackAt(redirectUrl(first, 'ABC'), authorize.searchParams.get('state')!),
    )
    expect(result.status).toBe(200)
    const [token] = idp.requestsTo('/token').slice(-1)
    expect(token!.form.get('redirect_uri')).toBe(authorize.searchParams.get('redirect_uri'))
    expect((await poll(t, tenant.agentKey, started.session.id))!.status).toBe('AUTHENTICATED')
    idp.assertAllCalled()
  })

  it.each([
    ['the bare route', () => redirectUrl(first, 'IDP').replace(/\/[a-z0-9]{16}$/, '')],
    ["another integration's key", () => redirectUrl(second, 'IDP')],
    ['another route with its own key', () => redirectUrl(first, 'ABC')],
  ])('refuses a callback on %s before any token request', async (_name, url) => {
    const { started, browser, authorize } = await opened(first)
    const tokens = idp.requestsTo('/token').length
    const { callbackResponse } = await arriveAtCallback(
      browser,
      callbackAt(url(), authorize.searchParams.get('state')!),
    )
    expect(callbackResponse.status).toBe(400)
    expect(idp.requestsTo('/token')).toHaveLength(tokens)
    expect((await poll(t, tenant.agentKey, started.session.id))!.status).toBe('OPENED')
  })

  it('finishes a session started before per-integration URLs on the bare route', async () => {
    const started = await start(t, tenant.agentKey, {
      integrationId: first.id,
      conversationId: 'conv-in-flight-at-upgrade',
    })
    // As a session of the previous version: no redirect_uri stored.
    await t.database.db
      .updateTable('auth_sessions')
      .set({ redirect_uri: null })
      .where('id', '=', started.session.id)
      .execute()
    const browser = new ScriptedBrowser()
    const authorize = await postLink(browser, started.authorizationLink)
    const bare = `${t.baseUrl}/idp/eu/oauth/callback`
    expect(authorize.searchParams.get('redirect_uri')).toBe(bare)
    idp.on('POST', '/token', json(TOKEN))
    idp.on('GET', '/whoami', json({ sub: 'ada' }))
    await arriveAtCallback(browser, callbackAt(bare, authorize.searchParams.get('state')!))
    const [token] = idp.requestsTo('/token').slice(-1)
    expect(token!.form.get('redirect_uri')).toBe(bare)
    expect((await poll(t, tenant.agentKey, started.session.id))!.status).toBe('AUTHENTICATED')
    idp.assertAllCalled()
  })
})

describe('per-tenant hosts', () => {
  let t: TestApp
  let acme: SeededTenant
  let integration: SeededIntegration

  beforeAll(async () => {
    t = await createTestApp({
      env: { PUBLIC_BASE_URL: 'https://{tenant}.auth.example.test' },
      outbound: {
        resolver: async () => {
          throw new Error('no provider is reached in this test')
        },
      },
    })
    acme = await t.seedTenant('acme')
    await t.seedTenant('globex')
    integration = await seedIntegration(t, acme, {
      clientId: 'acme-client',
      clientSecret: 'acme-secret-0123456789',
      authorizationUrl: 'https://idp.example.com/authorize',
      tokenUrl: 'https://idp.example.com/token',
    })
  })
  afterAll(async () => t?.close())

  it("serves a link on its tenant's host only", async () => {
    const { authorizationLink: link, session } = await start(t, acme.agentKey, {
      integrationId: integration.id,
      conversationId: 'conv-hosts-link',
    })
    expect(new URL(link).host).toBe('acme.auth.example.test')
    const elsewhere = link.replace('acme.auth', 'globex.auth')
    expect((await t.fetch(elsewhere)).status).toBe(404)
    expect((await t.fetch(elsewhere, { method: 'POST' })).status).toBe(404)
    expect((await t.fetch(link)).status).toBe(200)
    expect((await poll(t, acme.agentKey, session.id))!.status).toBe('PENDING')
  })

  it("refuses a callback on another tenant's host, changing nothing", async () => {
    const { authorizationLink: link, session } = await start(t, acme.agentKey, {
      integrationId: integration.id,
      conversationId: 'conv-hosts-callback',
    })
    const posted = await t.fetch(link, { method: 'POST' })
    const state = new URL(posted.headers.get('location')!).searchParams.get('state')!
    const cookie = posted.headers.getSetCookie()[0]!.split(';')[0]!
    const own = new URL(redirectUrl(integration, 'IDP'))
    own.searchParams.set('code', 'code-0123456789')
    own.searchParams.set('state', state)
    const elsewhere = own.href.replace('acme.auth', 'globex.auth')
    const refused = await t.fetch(elsewhere, { headers: { cookie } })
    expect(refused.status).toBe(400)
    expect((await poll(t, acme.agentKey, session.id))!.status).toBe('OPENED')
    const audit = await t.deps.db
      .selectFrom('audit_events')
      .select('details')
      .where('target_id', '=', session.id)
      .execute()
    expect(audit.map((a) => a.details)).toEqual([expect.objectContaining({ reason: 'wrong_host' })])
  })
})

describe('per-tenant hosts behind a load balancer (TRUST_PROXY)', () => {
  const apps: TestApp[] = []
  afterAll(async () => {
    for (const app of apps) await app.close()
  })

  /** An app whose link for acme is fetched over a socket from 127.0.0.1 with `forwardedHost`. */
  async function linkStatus(trustProxy: string | null, forwardedHost: string | null) {
    const app = await createTestApp({
      env: {
        PUBLIC_BASE_URL: 'https://{tenant}.auth.example.test',
        ...(trustProxy ? { TRUST_PROXY: trustProxy } : {}),
      },
    })
    apps.push(app)
    const tenant = await app.seedTenant('acme')
    await app.seedTenant('globex')
    const integration = await seedIntegration(app, tenant, {
      clientId: 'acme-client',
      clientSecret: 'acme-secret-0123456789',
      authorizationUrl: 'https://idp.example.com/authorize',
      tokenUrl: 'https://idp.example.com/token',
    })
    const { authorizationLink } = await start(app, tenant.agentKey, {
      integrationId: integration.id,
      conversationId: 'conv-proxy',
    })
    const base = await app.listen()
    const response = await requestOverSocket(
      base,
      new Request(authorizationLink, {
        headers: forwardedHost ? { 'x-forwarded-host': forwardedHost } : {},
      }),
    )
    await response.text()
    return response.status
  }

  it('takes the host a trusted proxy forwarded, and only from a trusted proxy', async () => {
    expect(await linkStatus('127.0.0.1', 'acme.auth.example.test')).toBe(200)
    expect(await linkStatus('127.0.0.1', 'globex.auth.example.test')).toBe(404)
    // Without the header, the Host the proxy connected with (127.0.0.1:port) is no tenant's.
    expect(await linkStatus('127.0.0.1', null)).toBe(404)
    // A peer that is not a trusted proxy cannot choose its host.
    expect(await linkStatus(null, 'acme.auth.example.test')).toBe(404)
    expect(await linkStatus('10.0.0.0/8', 'acme.auth.example.test')).toBe(404)
  })
})
