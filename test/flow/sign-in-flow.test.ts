/**
 * The whole sign-in against a real authorization server (oidc-provider, PKCE required), with the
 * end user driven through our link page and the provider's login and consent pages.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { REDIRECT_ROUTES } from '../../src/core/redirect-urls.ts'
import { verifierSealContext } from '../../src/services/sign-in.ts'
import { loginAtTestProvider, ScriptedBrowser } from '../helpers/browser.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import { createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'

const CREATE = `mutation($input: CreateOAuthIntegrationInput!) { createOAuthIntegration(input: $input) { integration { id redirectUrls } } }`
const START = `mutation($input: StartEndUserAuthInput!) {
  startEndUserAuth(input: $input) {
    authorizationLink
    message { text buttonLabel url }
    session { id status conversationId contactId expiresAt }
  }
}`
const POLL = `query($id: ID!) {
  authSession(id: $id) {
    id status completedAt
    identity { email userName fullName firstName lastName attributes }
    failure { code message }
    integration { id name }
  }
}`
const CONTACT = `query($id: String!) { contact(contactId: $id) { contactId email userName fullName firstName lastName verifiedAt } }`

type Started = {
  startEndUserAuth: {
    authorizationLink: string
    message: { text: string; buttonLabel: string; url: string }
    session: { id: string; status: string; contactId: string }
  }
}

describe('end-user sign-in against oidc-provider', () => {
  let t: TestApp
  let provider: TestProvider
  let tenant: SeededTenant
  const integrations: Record<string, string> = {}

  beforeAll(async () => {
    t = await createTestApp({ serve: true, env: { OUTBOUND_ALLOW_HOSTS: '127.0.0.1' } })
    const redirectUris = Object.values(REDIRECT_ROUTES).map((p) => `${t.baseUrl}${p}`)
    provider = await startTestProvider({
      clients: [
        {
          client_id: 'post-client',
          client_secret: 'post-secret-0123456789',
          redirect_uris: redirectUris,
          token_endpoint_auth_method: 'client_secret_post',
        },
        {
          client_id: 'basic-client',
          client_secret: 'basic-secret-0123456789',
          redirect_uris: redirectUris,
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      accounts: {
        'billy.bob': { email: 'billy@example.com', name: 'Billy Bob' },
        mary: {
          email: 'mary@example.com',
          name: 'Mary Ann van der Berg',
          given_name: 'Mary Ann',
          family_name: 'van der Berg',
        },
      },
    })
    tenant = await t.seedTenant('acme')
    for (const [clientId, method] of [
      ['post-client', 'CLIENT_SECRET_POST'],
      ['basic-client', 'CLIENT_SECRET_BASIC'],
    ] as const) {
      const created = await t.gql<{
        createOAuthIntegration: { integration: { id: string; redirectUrls: string[] } }
      }>(tenant.adminKey, CREATE, {
        input: {
          name: `oidc ${method}`,
          clientId,
          clientSecret:
            clientId === 'post-client' ? 'post-secret-0123456789' : 'basic-secret-0123456789',
          scope: 'openid email profile',
          authorizationUrl: provider.authorizationUrl,
          tokenUrl: provider.tokenUrl,
          whoAmIUrl: provider.userinfoUrl,
          whoAmIMapping: '{userName: sub, fullName: name, email: email}',
          tokenEndpointAuthMethod: method,
          issuer: provider.issuer,
        },
      })
      expect(created.errors).toBeUndefined()
      expect(created.data!.createOAuthIntegration.integration.redirectUrls).toEqual(redirectUris)
      integrations[method] = created.data!.createOAuthIntegration.integration.id
    }
  })
  afterAll(async () => {
    await t?.close()
    await provider?.close()
  })

  async function start(
    method: string,
    conversationId: string,
    redirectRoute = 'IDP',
    contactId?: string,
  ) {
    const started = await t.gql<Started>(tenant.agentKey, START, {
      input: {
        integrationId: integrations[method],
        conversationId,
        redirectRoute,
        ...(contactId ? { contactId } : {}),
      },
    })
    expect(started.errors).toBeUndefined()
    return started.data!.startEndUserAuth
  }

  /** GET the link (the page), POST it (bind + 303 to the provider), log in, come back. */
  async function signIn(browser: ScriptedBrowser, link: string, account: string) {
    const page = await browser.request(link)
    expect(page.status).toBe(200)
    expect(page.headers.get('cache-control')).toBe('no-store')
    expect(page.headers.get('referrer-policy')).toBe('no-referrer')
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
    const html = await page.text()
    expect(html).toContain('<form id="continue" method="post">')
    const posted = await browser.request(link, { method: 'POST' })
    expect(posted.status).toBe(303)
    const authorize = new URL(posted.headers.get('location')!)
    const callback = await loginAtTestProvider(browser, authorize.href, account)
    const result = await browser.request(callback)
    return { authorize, callback, result, html: await result.text() }
  }

  it.each([
    ['CLIENT_SECRET_POST', 'IDP'],
    ['CLIENT_SECRET_BASIC', 'ABC'],
    ['CLIENT_SECRET_POST', 'ABC_AUTH2'],
  ])(
    'signs in with %s through the %s callback, fills the session and the contact',
    async (method, route) => {
      const conversationId = `conv-${method}-${route}`
      const started = await start(method, conversationId, route)
      expect(started.session.status).toBe('PENDING')
      expect(started.session.contactId).toBe(conversationId)
      expect(started.message.url).toBe(started.authorizationLink)
      expect(started.message.text).toContain('acme')
      const tokensBefore = provider.tokenRequests()

      const browser = new ScriptedBrowser()
      const { authorize, callback, result, html } = await signIn(
        browser,
        started.authorizationLink,
        'billy.bob',
      )

      // The authorization request: everything the contract and RFC 7636 ask for.
      expect(Object.fromEntries(authorize.searchParams)).toMatchObject({
        response_type: 'code',
        client_id: method === 'CLIENT_SECRET_POST' ? 'post-client' : 'basic-client',
        redirect_uri: `${t.baseUrl}${REDIRECT_ROUTES[route as keyof typeof REDIRECT_ROUTES]}`,
        scope: 'openid email profile',
        code_challenge_method: 'S256',
      })
      expect(authorize.searchParams.get('state')!.length).toBeGreaterThanOrEqual(43)
      expect(new URL(callback).pathname).toBe(
        REDIRECT_ROUTES[route as keyof typeof REDIRECT_ROUTES],
      )
      expect(result.status).toBe(200)
      expect(html).toContain('<h1>You&#39;re signed in</h1>')
      expect(provider.tokenRequests()).toBe(tokensBefore + 1)

      const polled = await t.gql<{ authSession: Record<string, unknown> }>(tenant.agentKey, POLL, {
        id: started.session.id,
      })
      expect(polled.data!.authSession).toMatchObject({
        status: 'AUTHENTICATED',
        identity: {
          email: 'billy@example.com',
          userName: 'billy.bob',
          fullName: 'Billy Bob',
          firstName: 'Billy',
          lastName: 'Bob',
        },
        failure: null,
      })
      const contact = await t.gql<{ contact: Record<string, unknown> }>(tenant.agentKey, CONTACT, {
        id: conversationId,
      })
      expect(contact.data!.contact).toMatchObject({
        contactId: conversationId,
        email: 'billy@example.com',
        firstName: 'Billy',
        lastName: 'Bob',
        userName: 'billy.bob',
      })
    },
  )

  it('never stores or logs the access token, code, state, verifier, link, cookie or secret in the clear', async () => {
    const started = await start('CLIENT_SECRET_POST', 'conv-secrets')
    const linkToken = started.authorizationLink.slice(
      started.authorizationLink.lastIndexOf('/') + 1,
    )
    const browser = new ScriptedBrowser()
    const posted = await browser.request(started.authorizationLink, { method: 'POST' })
    const [bindingCookie] = [...browser.cookies(new URL(t.baseUrl).host).values()]
    const { code_verifier_sealed: sealed } = await t.database.db
      .selectFrom('auth_sessions')
      .select('code_verifier_sealed')
      .where('id', '=', started.session.id)
      .executeTakeFirstOrThrow()
    const verifier = t.deps.sealer.open(
      sealed!,
      verifierSealContext({ id: started.session.id, tenantId: tenant.id }),
    )
    const whoAmI = vi.spyOn(t.deps.provider, 'fetchWhoAmI')
    try {
      const callback = await loginAtTestProvider(browser, posted.headers.get('location')!, 'mary')
      expect((await browser.request(callback)).status).toBe(200)
      const accessToken = whoAmI.mock.calls[0]![1]
      const params = new URL(callback).searchParams
      const secrets = {
        accessToken,
        code: params.get('code')!,
        state: params.get('state')!,
        verifier,
        linkToken,
        bindingCookie: bindingCookie!,
        clientSecret: 'post-secret-0123456789',
      }
      const db = t.database.db
      const tables = [
        'tenants',
        'api_keys',
        'oauth_integrations',
        'auth_sessions',
        'contacts',
        'audit_events',
      ] as const
      const dump = JSON.stringify(
        await Promise.all(tables.map((table) => db.selectFrom(table).selectAll().execute())),
      )
      expect(dump).toContain(started.session.id)
      for (const [name, secret] of Object.entries(secrets)) {
        expect(secret.length, name).toBeGreaterThanOrEqual(20)
        expect(dump.includes(secret), `${name} in the database`).toBe(false)
        expect(t.logs.join('\n').includes(secret), `${name} in the logs`).toBe(false)
      }
    } finally {
      whoAmI.mockRestore()
    }
  })
})
