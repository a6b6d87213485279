/**
 * The whole sign-in against a real authorization server (oidc-provider, PKCE required), with the
 * end user driven through our link page and the provider's login and consent pages.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import * as oauth from 'oauth4webapi'
import { REDIRECT_ROUTES, type RedirectRouteName } from '../../src/core/redirect-urls.ts'
import { verifierSealContext } from '../../src/services/sign-in.ts'
import { ScriptedBrowser } from '../helpers/browser.ts'
import {
  complete,
  contact,
  createFlowApp,
  followLink,
  poll,
  postLink,
  redirectUrl,
  seedProviderIntegration,
  start,
  withoutQuery,
  type SeededIntegration,
} from '../helpers/flow.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import type { SeededTenant, TestApp } from '../helpers/test-app.ts'

describe('end-user sign-in against oidc-provider', () => {
  let t: TestApp
  let provider: TestProvider
  let tenant: SeededTenant
  const integrations: Record<string, SeededIntegration> = {}

  beforeAll(async () => {
    t = await createFlowApp()
    provider = await startTestProvider({
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
      const clientSecret =
        clientId === 'post-client' ? 'post-secret-0123456789' : 'basic-secret-0123456789'
      const integration = await seedProviderIntegration(
        t,
        tenant,
        provider,
        { clientId, clientSecret, method },
        {
          name: `oidc ${method}`,
          whoAmIMapping: '{userName: sub, fullName: name, email: email}',
          issuer: provider.issuer,
        },
      )
      // The API's list, as the README documents it: the three routes under PUBLIC_BASE_URL,
      // each followed by the integration's key.
      const key = integration.redirectUrls[0]!.split('/').at(-1)!
      expect(key).toMatch(/^[a-z0-9]{16}$/)
      expect(integration.redirectUrls).toEqual(
        Object.values(REDIRECT_ROUTES).map((p) => `${t.baseUrl}${p}/${key}`),
      )
      integrations[method] = integration
    }
  })
  afterAll(async () => {
    await t?.close()
    await provider?.close()
  })

  function integrationFor(method: string): SeededIntegration {
    const integration = integrations[method]
    if (!integration) throw new Error(`no integration for ${method}`)
    return integration
  }

  async function startWith(
    method: string,
    conversationId: string,
    redirectRoute: RedirectRouteName = 'IDP',
  ) {
    return start(t, tenant.agentKey, {
      integrationId: integrationFor(method).id,
      conversationId,
      redirectRoute,
    })
  }

  /** GET the link (the page), POST it (bind + 303 to the provider), log in, come back. */
  async function signIn(browser: ScriptedBrowser, link: string, account: string) {
    const authorize = await followLink(browser, link)
    const { callback, result } = await complete(browser, authorize, account)
    return { authorize, callback, result, html: await result.text() }
  }

  it.each([
    ['CLIENT_SECRET_POST', 'IDP'],
    ['CLIENT_SECRET_BASIC', 'ABC'],
    ['CLIENT_SECRET_POST', 'ABC_AUTH2'],
  ] as const)(
    'signs in with %s through the %s callback, fills the session and the contact',
    async (method, route) => {
      const conversationId = `conv-${method}-${route}`
      const started = await startWith(method, conversationId, route)
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
        redirect_uri: redirectUrl(integrationFor(method), route),
        scope: 'openid email profile',
        code_challenge_method: 'S256',
      })
      // OpenID Connect (openid and an issuer): a nonce, which the ID token must carry.
      expect(authorize.searchParams.get('nonce')!.length).toBeGreaterThanOrEqual(43)
      expect(authorize.searchParams.get('state')!.length).toBeGreaterThanOrEqual(43)
      expect(withoutQuery(callback)).toBe(redirectUrl(integrationFor(method), route))
      expect(result.status).toBe(200)
      expect(html).toContain('<h1>You&#39;re signed in</h1>')
      expect(provider.tokenRequests()).toBe(tokensBefore + 1)

      expect(await poll(t, tenant.agentKey, started.session.id)).toMatchObject({
        status: 'AUTHENTICATED',
        identity: {
          subject: 'billy.bob',
          issuer: provider.issuer,
          email: 'billy@example.com',
          userName: 'billy.bob',
          fullName: 'Billy Bob',
          firstName: 'Billy',
          lastName: 'Bob',
        },
        failure: null,
      })
      expect(await contact(t, tenant.agentKey, conversationId)).toMatchObject({
        contactId: conversationId,
        email: 'billy@example.com',
        firstName: 'Billy',
        lastName: 'Bob',
        userName: 'billy.bob',
      })
    },
  )

  it('never stores or logs the access token, code, state, verifier, link, cookie or secret in the clear', async () => {
    const started = await startWith('CLIENT_SECRET_POST', 'conv-secrets')
    const linkToken = started.authorizationLink.slice(
      started.authorizationLink.lastIndexOf('/') + 1,
    )
    const browser = new ScriptedBrowser()
    const authorize = await postLink(browser, started.authorizationLink)
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
    // RFC 7636: 43 to 128 unreserved characters; 32 random bytes in base64url are 43 of them,
    // and the challenge the provider got is their S256.
    expect(verifier).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(authorize.searchParams.get('code_challenge')).toBe(
      await oauth.calculatePKCECodeChallenge(verifier),
    )
    const whoAmI = vi.spyOn(t.deps.provider, 'fetchWhoAmI')
    try {
      const { callback, result } = await complete(browser, authorize, 'mary')
      expect(result.status).toBe(200)
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
