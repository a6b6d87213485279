/**
 * Two sign-ins into one contact at the same time. The callback reads the contact in its first
 * statement and writes it in its last one only if it is still as read; here the other sign-in
 * writes the contact while the first one waits for its WhoAmI answer, so the first one's write
 * must not happen as planned: it plans again on the contact as it now is (locked), and the
 * contact rules hold as if the two had taken turns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ScriptedBrowser } from '../helpers/browser.ts'
import {
  json,
  startFakeProvider,
  type FakeProvider,
  type ProviderHandler,
} from '../helpers/fake-provider.ts'
import {
  arriveAtCallback,
  contact,
  createFlowApp,
  poll,
  postLink,
  seedIntegration,
  start,
} from '../helpers/flow.ts'
import type { SeededTenant, TestApp } from '../helpers/test-app.ts'

const TOKEN = { access_token: 'at-0123456789abcdef', token_type: 'bearer', expires_in: 3600 }

function authorize(code: string): ProviderHandler {
  return (req, res) => {
    const back = new URL(req.query.get('redirect_uri')!)
    back.searchParams.set('code', code)
    back.searchParams.set('state', req.query.get('state')!)
    res.writeHead(302, { location: back.href, connection: 'close' })
    res.end()
  }
}

describe('two sign-ins into one contact at once', () => {
  let t: TestApp
  let tenant: SeededTenant
  let idp: FakeProvider
  let integrationId: string
  let n = 0

  beforeAll(async () => {
    t = await createFlowApp()
    tenant = await t.seedTenant('contact-race')
    idp = await startFakeProvider()
    integrationId = (
      await seedIntegration(t, tenant, {
        clientId: 'race-client',
        clientSecret: 'race-secret-0123456789',
        authorizationUrl: idp.url('/authorize'),
        tokenUrl: idp.url('/token'),
        whoAmIUrl: idp.url('/whoami'),
        whoAmIMapping: '{subject: sub, userName: sub, email: email, fullName: name}',
      })
    ).id
  })
  afterAll(async () => {
    await t?.close()
    await idp?.close()
  })

  /** Starts a sign-in into `contactId` and brings its browser back to our callback URL. */
  async function toCallback(contactId: string) {
    idp.on('GET', '/authorize', authorize(`code-${++n}`))
    const started = await start(t, tenant.agentKey, {
      integrationId,
      conversationId: `conv-${n}`,
      contactId,
    })
    const browser = new ScriptedBrowser()
    const back = await browser.request((await postLink(browser, started.authorizationLink)).href)
    return { id: started.session.id, browser, callback: back.headers.get('location')! }
  }

  const cases = [
    {
      name: 'the same person: both sign-ins verify the contact, the later one last',
      second: { sub: 'ada-1', email: 'ada@example.com', name: 'Ada Lovelace' },
      firstOutcome: 'UNCHANGED',
      contactEmail: 'ada@example.com',
    },
    {
      name: 'another person: the one waiting is a CONFLICT and the contact stays as the other left it',
      second: { sub: 'mallory-1', email: 'mallory@example.com', name: 'Mallory' },
      firstOutcome: 'CONFLICT',
      contactEmail: 'mallory@example.com',
    },
  ] as const

  it.each(cases)('$name', async ({ second, firstOutcome, contactEmail }) => {
    const contactId = `contact-${++n}`
    const first = await toCallback(contactId)
    const other = await toCallback(contactId)

    // The first callback reads the (missing) contact, claims, and then waits for its WhoAmI answer.
    let answerFirst!: () => void
    const firstAsked = new Promise<void>((asked) => {
      idp.on('POST', '/token', json(TOKEN))
      idp.on('GET', '/whoami', async (req, res) => {
        asked()
        await new Promise<void>((resolve) => (answerFirst = resolve))
        await json({ sub: 'ada-1', email: 'ada@example.com', name: 'Ada Lovelace' })(req, res)
      })
    })
    const firstArrived = arriveAtCallback(first.browser, first.callback)
    await firstAsked

    // Meanwhile the other sign-in completes and creates the contact.
    idp.on('POST', '/token', json(TOKEN))
    idp.on('GET', '/whoami', json(second))
    expect((await arriveAtCallback(other.browser, other.callback)).callbackResponse.status).toBe(
      303,
    )
    expect((await poll(t, tenant.agentKey, other.id))?.status).toBe('AUTHENTICATED')

    answerFirst()
    expect((await firstArrived).callbackResponse.status).toBe(303)
    const firstSession = await poll(t, tenant.agentKey, first.id)
    expect(firstSession?.status).toBe('AUTHENTICATED')
    expect(firstSession?.contactUpdate).toBe(firstOutcome)

    const stored = await contact(t, tenant.agentKey, contactId)
    expect(stored?.email).toBe(contactEmail)
    expect(stored?.verifiedBySessionId).toBe(firstOutcome === 'CONFLICT' ? other.id : first.id)
    idp.assertAllCalled()
  })
})
