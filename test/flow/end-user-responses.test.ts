/**
 * Every answer an end user's browser can get from the link, the callbacks and the result page
 * carries the page security headers (no-store, no-referrer, nosniff, HSTS, a CSP without framing
 * or scripts), the 303s and the error page included, and the binding cookie is __Host-, Secure,
 * HttpOnly and SameSite=Lax on an https origin.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../../src/runtime/app.ts'
import {
  poll,
  redirectUrl,
  seedIntegration,
  start,
  type SeededIntegration,
} from '../helpers/flow.ts'
import { createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'

const ORIGIN = 'https://headers-co.auth.example.test'

function expectPageHeaders(response: Response): void {
  expect(response.headers.get('cache-control')).toBe('no-store')
  expect(response.headers.get('referrer-policy')).toBe('no-referrer')
  expect(response.headers.get('x-content-type-options')).toBe('nosniff')
  expect(response.headers.get('strict-transport-security')).toMatch(/^max-age=[1-9]\d*$/)
  const csp = response.headers.get('content-security-policy') ?? ''
  for (const directive of ["default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"]) {
    expect(csp).toContain(directive)
  }
}

describe('end-user responses on an https origin', () => {
  let t: TestApp
  let tenant: SeededTenant
  let integration: SeededIntegration

  beforeAll(async () => {
    t = await createTestApp({
      env: { PUBLIC_BASE_URL: 'https://{tenant}.auth.example.test' },
      // The provider is never reached: its name does not resolve here.
      outbound: {
        resolver: async () => {
          throw new Error('no name resolution in this test')
        },
      },
    })
    tenant = await t.seedTenant('headers-co')
    integration = await seedIntegration(t, tenant, {
      name: 'headers',
      clientId: 'headers-client',
      clientSecret: 'headers-secret-0123456789',
      authorizationUrl: 'https://idp.example.com/authorize',
      tokenUrl: 'https://idp.example.com/token',
    })
  })
  afterAll(async () => {
    await t?.close()
  })

  it('sends them on the page, the 303, every callback page, and binds with a __Host- cookie', async () => {
    const { authorizationLink: link, session } = await start(t, tenant.agentKey, {
      integrationId: integration.id,
      conversationId: 'conv-headers',
    })
    expect(link.startsWith(`${ORIGIN}/l/`)).toBe(true)

    const page = await t.fetch(link)
    expect(page.status).toBe(200)
    expectPageHeaders(page)

    const posted = await t.fetch(link, { method: 'POST' })
    expect(posted.status).toBe(303)
    expectPageHeaders(posted)
    const location = new URL(posted.headers.get('location')!)
    expect(location.origin + location.pathname).toBe('https://idp.example.com/authorize')
    const [setCookie, ...more] = posted.headers.getSetCookie()
    expect(more).toEqual([])
    const bound =
      /^(__Host-euo-b-[0-9a-f]{16})=([A-Za-z0-9_-]{43}); Path=\/; HttpOnly; SameSite=Lax; Max-Age=(\d+); Secure$/.exec(
        setCookie ?? '',
      )
    expect(bound, setCookie).not.toBeNull()
    const [, name, value, maxAge] = bound!
    expect(Number(maxAge)).toBeGreaterThan(0)
    expect(Number(maxAge)).toBeLessThanOrEqual(600)
    expect(value).not.toBe(location.searchParams.get('state'))

    const callback = new URL(redirectUrl(integration, 'IDP'))
    callback.searchParams.set('code', 'code-0123456789')
    callback.searchParams.set('state', location.searchParams.get('state')!)
    const cookie = { cookie: `${name}=${value}` }

    const foreign = await t.fetch(callback.href)
    expect(foreign.status).toBe(403)
    expectPageHeaders(foreign)

    // The callback answers 303 to the result page, whose URL holds neither code nor state.
    const completed = await t.fetch(callback.href, { headers: cookie })
    expect(completed.status).toBe(303)
    expectPageHeaders(completed)
    const result = new URL(completed.headers.get('location')!)
    expect(result.href).toBe(`${ORIGIN}/r/${session.id}`)
    expect(completed.headers.getSetCookie()).toEqual([])
    const failed = await t.fetch(result.href, { headers: cookie })
    expect(failed.status).toBe(200)
    expectPageHeaders(failed)
    expect(await failed.text()).toContain('Sign-in did not work')
    // The result page drops the binding cookie: it has done its job.
    expect(failed.headers.getSetCookie()).toEqual([
      `${name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure`,
    ])
    expect(await poll(t, tenant.agentKey, session.id)).toMatchObject({
      status: 'FAILED',
      failure: { code: 'provider_unreachable' },
    })

    const replayed = await t.fetch(callback.href, { headers: cookie })
    expect(replayed.status).toBe(409)
    expectPageHeaders(replayed)
  })

  it('sends them on refusals: an unknown link, a callback without state or with an unknown one', async () => {
    const unknown = await t.fetch(`${ORIGIN}/l/${'A'.repeat(43)}`)
    expect(unknown.status).toBe(404)
    expectPageHeaders(unknown)
    const noState = await t.fetch(`${redirectUrl(integration, 'ABC')}?code=x`)
    expect(noState.status).toBe(400)
    expectPageHeaders(noState)
    const unknownState = await t.fetch(`${redirectUrl(integration, 'ABC_AUTH2')}?code=x&state=y`)
    expect(unknownState.status).toBe(404)
    expectPageHeaders(unknownState)
  })

  it('sends them on the error page of a route that throws, without the error text', async () => {
    const app = createApp(t.deps, t.database, [
      {
        methods: ['GET'],
        path: '/boom',
        handler: () => {
          throw new Error('secret detail of the failure')
        },
      },
    ])
    try {
      const response = await app.fetch(new Request(`${ORIGIN}/boom`))
      expect(response.status).toBe(500)
      expectPageHeaders(response)
      expect(await response.text()).not.toContain('secret detail')
      expect(t.logs.join('\n')).toContain('secret detail of the failure')
    } finally {
      await app.close()
    }
  })
})
