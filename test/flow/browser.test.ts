/**
 * The sign-in in a real headless Chromium: our link page continues by its own script (CSP nonce,
 * form POST, 303), oidc-provider's development login and consent pages are filled in like a
 * person would, and the provider's redirect brings the browser (with its binding cookie) back to
 * our callback. Requests to anything but 127.0.0.1 are aborted, so no test leaves the machine.
 *
 * CI installs Debian's chromium; elsewhere the test skips (and says why) when it is missing.
 */
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  contact,
  createFlowApp,
  poll as pollSession,
  redirectUrl,
  seedProviderIntegration,
  start,
  withoutQuery,
  type SeededIntegration,
} from '../helpers/flow.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import type { SeededTenant, TestApp } from '../helpers/test-app.ts'

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

describe.skipIf(skip)(
  skip
    ? `sign-in in real Chromium (skipped: ${CHROMIUM} is not installed; apt-get install -y chromium)`
    : 'sign-in in real Chromium',
  () => {
    let t: TestApp
    let provider: TestProvider
    let tenant: SeededTenant
    let integration: SeededIntegration
    let browser: Browser | undefined

    beforeAll(async () => {
      if (!hasChromium) {
        throw new Error(`CI is set but ${CHROMIUM} is missing: CI must install Debian's chromium`)
      }
      const launching = chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
      t = await createFlowApp()
      provider = await startTestProvider({
        accounts: {
          'grace.h': {
            email: 'grace@example.com',
            name: 'Grace Hopper',
            given_name: 'Grace',
            family_name: 'Hopper',
          },
        },
      })
      tenant = await t.seedTenant('chromium-co')
      integration = await seedProviderIntegration(
        t,
        tenant,
        provider,
        { clientId: 'chromium-client', clientSecret: 'chromium-secret-0123456789' },
        {
          name: 'oidc in chromium',
          whoAmIMapping:
            '{userName: sub, fullName: name, email: email, firstName: given_name, lastName: family_name}',
          issuer: provider.issuer,
        },
      )
      browser = await launching
    })
    afterAll(async () => {
      await browser?.close()
      await t?.close()
      await provider?.close()
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

    async function poll(id: string) {
      return (await pollSession(t, tenant.agentKey, id))!
    }

    it('signs in through our page, the provider login and consent, and shows the result', async () => {
      const conversationId = 'conv-chromium'
      const { authorizationLink: link, session } = await start(t, tenant.agentKey, {
        integrationId: integration.id,
        conversationId,
      })
      expect(session.status).toBe('PENDING')
      expect(link.startsWith(`${t.baseUrl}/`)).toBe(true)

      // Without script the page waits for the visible Continue button; looking changes nothing.
      const noScript = await freshContext({ javaScriptEnabled: false })
      try {
        const page = await noScript.newPage()
        const response = await page.goto(link)
        expect(response?.status()).toBe(200)
        await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe(
          'Sign in to chromium-co',
        )
        const button = page.getByRole('button', { name: 'Continue' })
        expect(await button.isVisible()).toBe(true)
        expect(await page.locator('form#continue').getAttribute('method')).toBe('post')
      } finally {
        await noScript.close()
      }
      expect((await poll(session.id)).status).toBe('PENDING')

      // With script (a normal browser) the page continues by itself, straight to the provider.
      const context = await freshContext()
      try {
        const page = await context.newPage()
        await page.goto(link, { waitUntil: 'commit' })
        await page.waitForURL(
          (url) => url.origin === provider.issuer && url.pathname.startsWith('/interaction/'),
        )
        expect((await poll(session.id)).status).toBe('OPENED')
        const cookies = await context.cookies(t.baseUrl)
        expect(cookies.filter((c) => c.name.startsWith('euo-b-'))).toMatchObject([
          { httpOnly: true, sameSite: 'Lax' },
        ])

        // oidc-provider's development login page.
        await page.locator('input[name=login]').fill('grace.h')
        await page.locator('input[name=password]').fill('any password')
        await page.locator('button[type=submit]').click()

        // Its consent page, then the redirect back to our callback.
        await page.waitForURL(
          (url) => url.origin === provider.issuer && url.pathname.startsWith('/interaction/'),
        )
        await expect(page.locator('input[name=prompt]').getAttribute('value')).resolves.toBe(
          'consent',
        )
        await page.locator('button[type=submit]').click()
        await page.waitForURL((url) => url.origin === t.baseUrl)

        expect(withoutQuery(page.url())).toBe(redirectUrl(integration, 'IDP'))
        await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe(
          "You're signed in",
        )
        await expect(page.title()).resolves.toBe("You're signed in")
        await expect(page.locator('p').textContent()).resolves.toBe(
          'You can return to the conversation.',
        )
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

      const polled = await poll(session.id)
      expect(polled).toMatchObject({
        status: 'AUTHENTICATED',
        identity: {
          email: 'grace@example.com',
          userName: 'grace.h',
          fullName: 'Grace Hopper',
          firstName: 'Grace',
          lastName: 'Hopper',
        },
        failure: null,
      })
      expect(polled.completedAt).not.toBeNull()
      const filled = await contact(t, tenant.agentKey, conversationId)
      expect(filled).toMatchObject({
        contactId: conversationId,
        email: 'grace@example.com',
        userName: 'grace.h',
        fullName: 'Grace Hopper',
        firstName: 'Grace',
        lastName: 'Hopper',
      })
      expect(filled!.verifiedAt).not.toBeNull()
    })
  },
)
