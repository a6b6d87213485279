/**
 * Every way a callback or a link can come in wrong, against the real authorization server. Each
 * test asserts the page, the session's status afterwards, and how many token requests the
 * provider saw (a refused callback makes none).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RedirectRouteName } from '../../src/core/redirect-urls.ts'
import { claimExchange } from '../../src/db/auth-sessions.ts'
import { loginAtTestProvider, ScriptedBrowser } from '../helpers/browser.ts'
import {
  arriveAtCallback,
  CANCEL,
  complete,
  createFlowApp,
  poll,
  postLink,
  redirectUrl,
  seedProviderIntegration,
  start as startSignIn,
  type SeededIntegration,
} from '../helpers/flow.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import type { SeededTenant, TestApp } from '../helpers/test-app.ts'

describe('callback and link refusals', () => {
  let t: TestApp
  let provider: TestProvider
  let tenant: SeededTenant
  let integration: SeededIntegration
  let integrationId: string
  let clock = Date.now()

  beforeAll(async () => {
    t = await createFlowApp({ now: () => new Date(clock) })
    provider = await startTestProvider({
      accounts: { alice: { email: 'alice@example.com', name: 'Alice Liddell' } },
    })
    tenant = await t.seedTenant('refusals')
    integration = await seedProviderIntegration(
      t,
      tenant,
      provider,
      { clientId: 'app', clientSecret: 'app-secret-0123456789' },
      { name: 'oidc', issuer: provider.issuer },
    )
    integrationId = integration.id
  })
  afterAll(async () => {
    await t?.close()
    await provider?.close()
  })

  let conversation = 0
  async function start(route: RedirectRouteName = 'IDP') {
    const started = await startSignIn(t, tenant.agentKey, {
      integrationId,
      conversationId: `c-${++conversation}`,
      redirectRoute: route,
    })
    return { link: started.authorizationLink, id: started.session.id }
  }

  /** Opens the link in `browser` and logs in at the provider; returns the (unvisited) callback. */
  async function reachCallback(browser: ScriptedBrowser, link: string) {
    const authorize = await postLink(browser, link)
    return {
      callback: await loginAtTestProvider(browser, authorize.href, 'alice'),
      state: authorize.searchParams.get('state')!,
    }
  }

  async function status(id: string) {
    return (await poll(t, tenant.agentKey, id))!
  }

  it('refuses an unknown or tampered state, and the real callback still completes', async () => {
    const browser = new ScriptedBrowser()
    const { link, id } = await start()
    const { callback, state } = await reachCallback(browser, link)
    const tokens = provider.tokenRequests()
    for (const fake of [
      'x',
      state.slice(0, -1) + (state.endsWith('A') ? 'B' : 'A'),
      'A'.repeat(43),
    ]) {
      const url = new URL(callback)
      url.searchParams.set('state', fake)
      const page = await browser.request(url.href)
      expect(page.status).toBe(404)
      expect(await page.text()).toContain('This link is not valid')
    }
    const noState = new URL(callback)
    noState.searchParams.delete('state')
    expect((await browser.request(noState.href)).status).toBe(400)
    expect(provider.tokenRequests()).toBe(tokens)
    expect((await status(id)).status).toBe('OPENED')
    expect((await arriveAtCallback(browser, callback)).result.status).toBe(200)
    expect((await status(id)).status).toBe('AUTHENTICATED')
    expect(provider.tokenRequests()).toBe(tokens + 1)
  })

  it("refuses a callback without the binding cookie, or with another browser's cookie", async () => {
    const victim = new ScriptedBrowser()
    const { link, id } = await start()
    const { callback } = await reachCallback(victim, link)
    const attacker = new ScriptedBrowser()
    const other = await start()
    await attacker.request(other.link, { method: 'POST' }) // bound to another session
    // Same cookie name as the victim's, another value.
    const forged = new ScriptedBrowser()
    const victimCookies = [...victim.cookies(new URL(t.baseUrl).host).keys()]
    forged.jar.set(
      new URL(t.baseUrl).host,
      new Map(victimCookies.map((name) => [name, 'A'.repeat(43)])),
    )
    const tokens = provider.tokenRequests()
    for (const browser of [new ScriptedBrowser(), attacker, forged]) {
      const page = await browser.request(callback)
      expect(page.status).toBe(403)
      expect(await page.text()).toContain('Please use the same browser')
    }
    expect(provider.tokenRequests()).toBe(tokens)
    expect((await status(id)).status).toBe('OPENED')
    expect((await arriveAtCallback(victim, callback)).result.status).toBe(200)
    expect((await status(id)).status).toBe('AUTHENTICATED')
  })

  it('refuses a callback on another route than the session was started with', async () => {
    const browser = new ScriptedBrowser()
    const { link, id } = await start('ABC')
    const { callback } = await reachCallback(browser, link)
    const tokens = provider.tokenRequests()
    for (const route of ['IDP', 'ABC_AUTH2'] as const) {
      const wrong = new URL(redirectUrl(integration, route))
      wrong.search = new URL(callback).search
      expect((await browser.request(wrong.href)).status).toBe(400)
    }
    expect(provider.tokenRequests()).toBe(tokens)
    expect((await status(id)).status).toBe('OPENED')
    expect((await arriveAtCallback(browser, callback)).result.status).toBe(200)
    expect((await status(id)).status).toBe('AUTHENTICATED')
  })

  it('refuses a replayed callback after completion, with no second token request', async () => {
    const browser = new ScriptedBrowser()
    const { link, id } = await start()
    const { callback } = await reachCallback(browser, link)
    const captured = browser.cookieHeader(new URL(callback)) // what a replaying attacker would hold
    expect((await arriveAtCallback(browser, callback)).result.status).toBe(200)
    const tokens = provider.tokenRequests()
    const withCookie = await fetch(callback, { headers: { cookie: captured }, redirect: 'manual' })
    expect(withCookie.status).toBe(409)
    expect(await withCookie.text()).toContain('already finished')
    // The result page dropped the binding cookie, so the same browser is refused before any lookup.
    expect((await browser.request(callback)).status).toBe(403)
    expect(provider.tokenRequests()).toBe(tokens)
    expect((await status(id)).status).toBe('AUTHENTICATED')
  })

  it('lets exactly one of 20 concurrent callbacks make the token request', async () => {
    const browser = new ScriptedBrowser()
    const { link, id } = await start()
    const { callback } = await reachCallback(browser, link)
    const tokens = provider.tokenRequests()
    const cookie = browser.cookieHeader(new URL(callback))
    const pages = await Promise.all(
      Array.from({ length: 20 }, () =>
        fetch(callback, { headers: { cookie }, redirect: 'manual' }),
      ),
    )
    const statuses = pages.map((p) => p.status).sort()
    // The one that made it is sent on to its result page; the others are refused.
    expect(statuses.filter((s) => s === 303)).toHaveLength(1)
    expect(statuses.filter((s) => s === 409)).toHaveLength(19)
    expect(provider.tokenRequests()).toBe(tokens + 1)
    expect((await status(id)).status).toBe('AUTHENTICATED')
  })

  it('refuses an expired session at the link and at the callback', async () => {
    const browser = new ScriptedBrowser()
    const { link, id } = await start()
    const { callback } = await reachCallback(browser, link)
    const tokens = provider.tokenRequests()
    const saved = clock
    clock += 11 * 60 * 1000 // past the default 10-minute lifetime
    try {
      const page = await browser.request(callback)
      expect(page.status).toBe(410)
      expect(await page.text()).toContain('This link has expired')
      expect((await status(id)).status).toBe('EXPIRED')
      expect((await browser.request(link)).status).toBe(410)
      expect(provider.tokenRequests()).toBe(tokens)
    } finally {
      clock = saved
    }
    // Back in time, it still cannot complete: nothing about it changed, it was only refused.
    expect((await status(id)).status).toBe('OPENED')
  })

  it('refuses a cancelled session at the link and at the callback', async () => {
    const browser = new ScriptedBrowser()
    const { link, id } = await start()
    const { callback } = await reachCallback(browser, link)
    const cancelled = await t.gql(tenant.agentKey, CANCEL, { id })
    expect(cancelled.data).toEqual({ cancelEndUserAuth: { session: { id, status: 'CANCELLED' } } })
    const tokens = provider.tokenRequests()
    const page = await browser.request(callback)
    expect(page.status).toBe(410)
    expect((await browser.request(link)).status).toBe(410)
    expect(provider.tokenRequests()).toBe(tokens)
    expect((await status(id)).status).toBe('CANCELLED')
  })

  it('ends the session FAILED on a provider error, showing none of its text', async () => {
    const browser = new ScriptedBrowser()
    const { link, id } = await start()
    const state = (await postLink(browser, link)).searchParams.get('state')!
    const callback = new URL(redirectUrl(integration, 'IDP'))
    callback.searchParams.set('error', 'access_denied')
    callback.searchParams.set(
      'error_description',
      '<script>alert("pwned")</script><b>Call 555-SCAM</b>',
    )
    callback.searchParams.set('state', state)
    callback.searchParams.set('iss', provider.issuer)
    const tokens = provider.tokenRequests()
    const { result: page } = await arriveAtCallback(browser, callback.href)
    const html = await page.text()
    expect(page.status).toBe(200)
    expect(html).toContain('The sign-in was declined.')
    expect(html).not.toContain('<script>alert')
    expect(html).not.toContain('555-SCAM')
    expect(provider.tokenRequests()).toBe(tokens)
    const session = await status(id)
    expect(session.status).toBe('FAILED')
    expect(session.failure?.code).toBe('access_denied')
    expect(session.failure?.message).not.toMatch(/script|SCAM/)
  })

  it('ends the session FAILED when the end user aborts at the provider', async () => {
    const browser = new ScriptedBrowser()
    const { link, id } = await start()
    const authorize = await postLink(browser, link)
    const { result } = await complete(browser, authorize, 'alice', { abort: true })
    expect(result.status).toBe(200)
    expect((await status(id)).failure?.code).toBe('access_denied')
  })

  it('fails with issuer_mismatch when the callback names another issuer (RFC 9207)', async () => {
    const browser = new ScriptedBrowser()
    const { link, id } = await start()
    const { callback } = await reachCallback(browser, link)
    const mixed = new URL(callback)
    mixed.searchParams.set('iss', 'https://attacker.example')
    const tokens = provider.tokenRequests()
    await browser.request(mixed.href)
    expect(provider.tokenRequests()).toBe(tokens)
    expect((await status(id)).failure?.code).toBe('issuer_mismatch')
  })

  it('is not spoiled by link previews: GETs change nothing, the real browser still signs in', async () => {
    const { link, id } = await start()
    for (let i = 0; i < 3; i++) {
      const preview = await fetch(link, {
        headers: { 'user-agent': 'TelegramBot (like TwitterBot)' },
      })
      expect(preview.status).toBe(200)
      expect(preview.headers.getSetCookie()).toEqual([])
    }
    expect((await status(id)).status).toBe('PENDING')
    const browser = new ScriptedBrowser()
    const { callback } = await reachCallback(browser, link)
    expect((await arriveAtCallback(browser, callback)).result.status).toBe(200)
    expect((await status(id)).status).toBe('AUTHENTICATED')
  })

  it('gives a second browser "already in use" and keeps the first one bound', async () => {
    const { link, id } = await start()
    const first = new ScriptedBrowser()
    const posted = await first.request(link, { method: 'POST' })
    expect(posted.status).toBe(303)
    const second = new ScriptedBrowser()
    for (const method of ['GET', 'POST']) {
      const page = await second.request(link, { method })
      expect(page.status).toBe(409)
      expect(await page.text()).toContain('This link is already in use')
    }
    // The first browser may press Continue again (it came back): it gets a fresh state.
    const again = await first.request(link, { method: 'POST' })
    expect(again.status).toBe(303)
    const { result } = await complete(first, again.headers.get('location')!, 'alice')
    expect(result.status).toBe(200)
    expect((await status(id)).status).toBe('AUTHENTICATED')
  })

  it('tells the bound browser that reopens its link during the code exchange that it is being completed', async () => {
    const { link, id } = await start()
    const browser = new ScriptedBrowser()
    expect((await browser.request(link, { method: 'POST' })).status).toBe(303)
    // The callback has claimed the exchange and waits for the provider (what claimExchange records).
    expect(await claimExchange(t.deps.db, id, new Date(clock))).toBe(true)
    for (const method of ['GET', 'POST']) {
      const page = await browser.request(link, { method })
      expect(page.status).toBe(409)
      expect(await page.text()).toContain('Your sign-in is being completed')
    }
    const other = await new ScriptedBrowser().request(link)
    expect(await other.text()).toContain('This link is already in use')
    expect((await status(id)).status).toBe('OPENED')
  })

  it('refuses a cross-site POST of the link (login CSRF) without binding', async () => {
    const { link, id } = await start()
    const crossSite = [
      { origin: 'https://evil.example' },
      // A cross-site page with Referrer-Policy no-referrer sends Origin: null, as our own page does.
      { origin: 'null', 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
    ]
    for (const headers of crossSite) {
      const response = await fetch(link, { method: 'POST', headers, redirect: 'manual' })
      expect(response.status).toBe(400)
      expect(response.headers.getSetCookie()).toEqual([])
    }
    expect((await status(id)).status).toBe('PENDING')
    // What our own page sends (Chromium, checked by hand): Origin null, Sec-Fetch-Site same-origin.
    const ours = await fetch(link, {
      method: 'POST',
      headers: { origin: 'null', 'sec-fetch-site': 'same-origin' },
      redirect: 'manual',
    })
    expect(ours.status).toBe(303)
    expect((await status(id)).status).toBe('OPENED')
  })

  it('answers an unknown or malformed link with a clear page', async () => {
    for (const path of ['/l/' + 'A'.repeat(43), '/l/short', '/l/%3Cscript%3E']) {
      const page = await fetch(`${t.baseUrl}${path}`)
      expect(page.status).toBe(404)
      expect(page.headers.get('cache-control')).toBe('no-store')
      expect(await page.text()).toContain('This link is not valid')
    }
  })

  it('cancels the older link when a new one is started for the same conversation, dropping its sealed verifier', async () => {
    const first = await startSignIn(t, tenant.agentKey, {
      integrationId,
      conversationId: 'supersede',
    })
    const firstId = first.session.id
    // Opened in a browser: the session now holds a sealed PKCE verifier.
    const opened = await fetch(first.authorizationLink, {
      method: 'POST',
      headers: { origin: 'null', 'sec-fetch-site': 'same-origin' },
      redirect: 'manual',
    })
    expect(opened.status).toBe(303)
    const verifier = () =>
      t.database.db
        .selectFrom('auth_sessions')
        .select('code_verifier_sealed')
        .where('id', '=', firstId)
        .executeTakeFirstOrThrow()
    expect((await verifier()).code_verifier_sealed).toEqual(expect.any(String))
    const second = await startSignIn(t, tenant.agentKey, {
      integrationId,
      conversationId: 'supersede',
    })
    expect((await status(firstId)).status).toBe('CANCELLED')
    expect((await verifier()).code_verifier_sealed).toBeNull()
    expect((await status(second.session.id)).status).toBe('PENDING')
    expect((await fetch(first.authorizationLink)).status).toBe(410)
  })
})
