/**
 * The sign-in in a real headless Chromium: our link page waits for the person to press its
 * button (nothing is sent by itself, so a page that merely navigates someone's browser to a link
 * reaches no provider), oidc-provider's development login and consent pages are filled in like a
 * person would, the provider's redirect brings the browser (with its binding cookie) back to our
 * callback, which sends it on (303) to a result page whose URL holds neither code nor state. With
 * a confirmation code, that page shows the code once, and the sign-in completes only when the
 * code comes back through confirmEndUserAuth. Requests to anything but 127.0.0.1 are aborted, so
 * no test leaves the machine.
 *
 * CI installs Debian's chromium; elsewhere the test skips (and says why) when it is missing.
 */
import { existsSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  contact,
  createFlowApp,
  seedProviderIntegration,
  start,
  type SeededIntegration,
} from '../helpers/flow.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import { codes, type SeededTenant, type TestApp } from '../helpers/test-app.ts'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
const hasChromium = existsSync(CHROMIUM)
const skip = !hasChromium && !process.env.CI

const SESSION = `query ($id: ID!) {
  authSession(id: $id) {
    id status confirmationAttemptsLeft contactUpdate
    identity { subject issuer email emailVerified userName fullName firstName lastName }
    failure { code }
  }
}`
const CONFIRM = `mutation ($input: ConfirmEndUserAuthInput!) {
  confirmEndUserAuth(input: $input) {
    session { id status confirmationAttemptsLeft contactUpdate identity { email } failure { code } }
  }
}`

interface SessionState {
  readonly id: string
  readonly status: string
  readonly confirmationAttemptsLeft: number | null
  readonly contactUpdate: string | null
  readonly identity: Record<string, unknown> | null
  readonly failure: { readonly code: string } | null
}

describe.skipIf(skip)(
  skip
    ? `sign-in in real Chromium (skipped: ${CHROMIUM} is not installed; apt-get install -y chromium)`
    : 'sign-in in real Chromium',
  () => {
    let t: TestApp
    let provider: TestProvider
    let tenant: SeededTenant
    let other: SeededTenant
    let plain: SeededIntegration
    let confirmed: SeededIntegration
    let browser: Browser | undefined
    /** A page of someone else's site, on another port of 127.0.0.1. */
    let lure: Server
    let lureHtml = ''
    let lureOrigin = ''
    let offsetMs = 0

    beforeAll(async () => {
      if (!hasChromium) {
        throw new Error(`CI is set but ${CHROMIUM} is missing: CI must install Debian's chromium`)
      }
      const launching = chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
      t = await createFlowApp({ now: () => new Date(Date.now() + offsetMs) })
      provider = await startTestProvider({
        accounts: {
          'grace.h': {
            email: 'grace@example.com',
            email_verified: true,
            name: 'Grace Hopper',
            given_name: 'Grace',
            family_name: 'Hopper',
          },
        },
      })
      tenant = await t.seedTenant('chromium-co')
      other = await t.seedTenant('other-co')
      const client = { clientId: 'chromium-client', clientSecret: 'chromium-secret-0123456789' }
      const input = {
        whoAmIMapping:
          '{userName: sub, fullName: name, email: email, emailVerified: email_verified, firstName: given_name, lastName: family_name}',
        issuer: provider.issuer,
      }
      plain = await seedProviderIntegration(t, tenant, provider, client, {
        ...input,
        name: 'oidc in chromium',
      })
      confirmed = await seedProviderIntegration(t, tenant, provider, client, {
        ...input,
        name: 'with a confirmation code',
        requireConfirmationCode: true,
      })
      lure = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        res.end(lureHtml)
      })
      await new Promise<void>((resolve) => lure.listen(0, '127.0.0.1', resolve))
      lureOrigin = `http://127.0.0.1:${(lure.address() as AddressInfo).port}`
      browser = await launching
    })
    afterAll(async () => {
      await browser?.close()
      await t?.close()
      await provider?.close()
      await new Promise<void>((resolve) => (lure ? lure.close(() => resolve()) : resolve()))
    })

    /** A fresh context whose requests may reach only 127.0.0.1 (the provider's page imports a web font). */
    async function freshContext(
      options: { javaScriptEnabled?: boolean } = {},
    ): Promise<BrowserContext> {
      const context = await browser!.newContext({
        ...options,
        viewport: { width: 480, height: 640 },
      })
      await context.route(
        (url) => url.hostname !== '127.0.0.1',
        (route) => route.abort(),
      )
      return context
    }

    async function poll(id: string, key = tenant.agentKey): Promise<SessionState> {
      const result = await t.gql<{ authSession: SessionState }>(key, SESSION, { id })
      expect(result.errors).toBeUndefined()
      return result.data!.authSession
    }

    async function confirm(input: Record<string, unknown>, key = tenant.agentKey) {
      return t.gql<{ confirmEndUserAuth: { session: SessionState } }>(key, CONFIRM, { input })
    }

    const continueButton = (page: Page) =>
      page.getByRole('button', {
        name: `Continue to ${provider.host} to sign in to chromium-co`,
      })

    /**
     * Opens the link, waits a moment to show the page sends nothing by itself, presses the button,
     * signs in and consents at the provider, and lands on our result page.
     */
    async function signInHere(context: BrowserContext, link: string, sessionId: string) {
      const page = await context.newPage()
      const authorizationsBefore = provider.authorizationRequests()
      expect((await page.goto(link))?.status()).toBe(200)
      await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe(
        'Sign in to chromium-co',
      )
      await page.waitForTimeout(500)
      expect(new URL(page.url()).origin).toBe(t.baseUrl)
      expect(provider.authorizationRequests()).toBe(authorizationsBefore)
      expect((await poll(sessionId)).status).toBe('PENDING')

      await continueButton(page).click()
      await page.waitForURL(
        (url) => url.origin === provider.issuer && url.pathname.startsWith('/interaction/'),
      )
      expect((await poll(sessionId)).status).toBe('OPENED')
      const cookies = await context.cookies(t.baseUrl)
      expect(cookies.filter((c) => c.name.startsWith('euo-b-'))).toMatchObject([
        { httpOnly: true, sameSite: 'Lax' },
      ])
      // oidc-provider's development login page, then its consent page.
      await page.locator('input[name=login]').fill('grace.h')
      await page.locator('input[name=password]').fill('any password')
      await page.locator('button[type=submit]').click()
      await page.waitForURL(
        (url) => url.origin === provider.issuer && url.pathname.startsWith('/interaction/'),
      )
      await expect(page.locator('input[name=prompt]').getAttribute('value')).resolves.toBe(
        'consent',
      )
      await page.locator('button[type=submit]').click()
      // Through the callback and its 303 to the result page: no code, no state in the URL.
      await page.waitForURL((url) => url.origin === t.baseUrl && url.pathname.startsWith('/r/'))
      expect(page.url()).toBe(`${t.baseUrl}/r/${sessionId}`)
      return page
    }

    it('signs in only when the person presses Continue, and ends on a clean result page', async () => {
      const conversationId = 'conv-chromium'
      const { authorizationLink: link, session } = await start(t, tenant.agentKey, {
        integrationId: plain.id,
        conversationId,
      })
      expect(link.startsWith(`${t.baseUrl}/`)).toBe(true)

      // Without script the page looks the same: one form, its button, nothing else.
      const noScript = await freshContext({ javaScriptEnabled: false })
      try {
        const page = await noScript.newPage()
        expect((await page.goto(link))?.status()).toBe(200)
        expect(await continueButton(page).isVisible()).toBe(true)
        expect(await page.locator('form#continue').getAttribute('method')).toBe('post')
        expect(await page.locator('script').count()).toBe(0)
      } finally {
        await noScript.close()
      }

      const context = await freshContext()
      try {
        const page = await signInHere(context, link, session.id)
        await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe(
          "You're signed in",
        )
        await expect(page.title()).resolves.toBe("You're signed in")
        const screenshot = join(tmpdir(), `euo-browser-signed-in-${process.pid}.png`)
        await page.screenshot({ path: screenshot, fullPage: true })
        expect(existsSync(screenshot)).toBe(true)
        // The binding cookie has done its job.
        expect(
          (await context.cookies(t.baseUrl)).filter((c) => c.name.startsWith('euo-b-')),
        ).toEqual([])
      } finally {
        await context.close()
      }

      expect(await poll(session.id)).toMatchObject({
        status: 'AUTHENTICATED',
        confirmationAttemptsLeft: null,
        contactUpdate: 'FILLED',
        identity: {
          subject: 'grace.h',
          issuer: provider.issuer,
          email: 'grace@example.com',
          emailVerified: true,
          userName: 'grace.h',
          fullName: 'Grace Hopper',
          firstName: 'Grace',
          lastName: 'Hopper',
        },
        failure: null,
      })
      const filled = await contact(t, tenant.agentKey, conversationId)
      expect(filled).toMatchObject({
        contactId: conversationId,
        email: 'grace@example.com',
        userName: 'grace.h',
        fullName: 'Grace Hopper',
      })
      expect(filled!.verifiedAt).not.toBeNull()
    })

    it('is not signed in by a page that only sends the browser to the link (a drive-by)', async () => {
      const { authorizationLink: link, session } = await start(t, tenant.agentKey, {
        integrationId: plain.id,
        conversationId: 'conv-drive-by',
      })
      const authorizationsBefore = provider.authorizationRequests()
      const context = await freshContext()
      try {
        // A top-level navigation, as a link on a web page, a redirect or a mail would do.
        lureHtml = `<!doctype html><script>location.href = ${JSON.stringify(link)}</script>`
        const page = await context.newPage()
        await page.goto(lureOrigin)
        await page.waitForURL((url) => url.href === link)
        await page.waitForTimeout(1_000)
        expect(page.url()).toBe(link)
        expect(await continueButton(page).isVisible()).toBe(true)

        // A page that submits a form to the link itself is refused: it is not our page.
        lureHtml = `<!doctype html><form id=f method=post action=${JSON.stringify(link)}></form><script>document.getElementById('f').submit()</script>`
        const forged = await context.newPage()
        await forged.goto(lureOrigin)
        await forged.waitForURL((url) => url.href === link)
        await expect(forged.getByRole('heading', { level: 1 }).textContent()).resolves.toBe(
          'Something was wrong with this request',
        )
      } finally {
        await context.close()
      }
      expect(provider.authorizationRequests()).toBe(authorizationsBefore)
      expect((await poll(session.id)).status).toBe('PENDING')
    })

    /** A confirmed integration's sign-in up to the code on the result page. */
    async function signInToCode(conversationId: string) {
      const started = await start(t, tenant.agentKey, {
        integrationId: confirmed.id,
        conversationId,
      })
      const context = await freshContext()
      const page = await signInHere(context, started.authorizationLink, started.session.id)
      await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe(
        'One more step',
      )
      const shown = (await page.locator('#code').textContent()) ?? ''
      const code = shown.replace(/\s/g, '')
      expect(code).toMatch(/^\d{6}$/)
      return { started, context, page, code }
    }

    it('with a confirmation code: waits for it, shows it once, and completes only with it', async () => {
      const conversationId = 'conv-confirm'
      const { started, context, page, code } = await signInToCode(conversationId)
      try {
        expect(await poll(started.session.id)).toMatchObject({
          status: 'AWAITING_CONFIRMATION',
          confirmationAttemptsLeft: 5,
          identity: null,
          contactUpdate: null,
        })
        expect(await contact(t, tenant.agentKey, conversationId)).toBeNull()
        // Shown once: a reload does not show it again.
        await page.reload()
        await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe(
          'Finish in your conversation',
        )
        expect(await page.locator('#code').count()).toBe(0)
      } finally {
        await context.close()
      }

      // Typed into another conversation, or sent with another tenant's key: NOT_FOUND.
      const elsewhere = await confirm({
        id: started.session.id,
        code,
        conversationId: 'conv-other',
      })
      expect(codes(elsewhere)).toEqual(['NOT_FOUND'])
      const foreign = await confirm({ id: started.session.id, code }, other.agentKey)
      expect(codes(foreign)).toEqual(['NOT_FOUND'])
      expect((await poll(started.session.id)).confirmationAttemptsLeft).toBe(5)

      const done = await confirm({
        id: started.session.id,
        code: ` ${code.slice(0, 3)} ${code.slice(3)} `,
        conversationId,
      })
      expect(done.errors).toBeUndefined()
      expect(done.data!.confirmEndUserAuth.session).toMatchObject({
        status: 'AUTHENTICATED',
        contactUpdate: 'FILLED',
        identity: { email: 'grace@example.com' },
      })
      expect(await contact(t, tenant.agentKey, conversationId)).toMatchObject({
        email: 'grace@example.com',
        userName: 'grace.h',
      })
      // Single use: the code again changes nothing.
      const again = await confirm({ id: started.session.id, code })
      expect(again.data!.confirmEndUserAuth.session.status).toBe('AUTHENTICATED')
    })

    it('fails the sign-in after five wrong codes, and the right one no longer helps', async () => {
      const { started, context, code } = await signInToCode('conv-wrong-codes')
      await context.close()
      const wrong = code === '000000' ? '111111' : '000000'
      for (const left of [4, 3, 2, 1]) {
        const result = await confirm({ id: started.session.id, code: wrong })
        expect(result.data!.confirmEndUserAuth.session).toMatchObject({
          status: 'AWAITING_CONFIRMATION',
          confirmationAttemptsLeft: left,
        })
      }
      const last = await confirm({ id: started.session.id, code: wrong })
      expect(last.data!.confirmEndUserAuth.session).toMatchObject({
        status: 'FAILED',
        failure: { code: 'confirmation_failed' },
        identity: null,
      })
      const late = await confirm({ id: started.session.id, code })
      expect(late.data!.confirmEndUserAuth.session.status).toBe('FAILED')
      expect(await contact(t, tenant.agentKey, 'conv-wrong-codes')).toBeNull()
    })

    it('refuses the code once its five minutes are over: the sign-in has expired', async () => {
      const { started, context, code } = await signInToCode('conv-late-code')
      await context.close()
      offsetMs = 5 * 60_000 + 1_000
      try {
        const result = await confirm({ id: started.session.id, code })
        expect(result.errors).toBeUndefined()
        expect(result.data!.confirmEndUserAuth.session).toMatchObject({
          status: 'EXPIRED',
          identity: null,
        })
        expect(await contact(t, tenant.agentKey, 'conv-late-code')).toBeNull()
      } finally {
        offsetMs = 0
      }
    })
  },
)
