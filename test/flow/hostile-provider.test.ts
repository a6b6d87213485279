/**
 * Hostile and broken providers, each through a whole sign-in on real sockets:
 * link → POST → the fake provider's /authorize → 302 back to our callback with the
 * browser's binding cookie → the callback page → the session as a bot polls it. The client-level
 * cases live in test/oauth/provider-client.test.ts; here each case asserts what the end user and
 * the bot see: the session's final status and failure code, that the page answered within the
 * outbound deadline plus a second and shows none of the provider's text, how many token and WhoAmI
 * requests the provider received (the token request is never retried), and that no socket is left
 * open on the provider's side.
 *
 * One app for the file, with short outbound limits; one fake provider per case (its own port, its
 * own request counts and sockets). Cases run one after the other: run concurrently they save
 * nothing (the database serialises them) and their page times would include each other's work.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCanary, type Canary } from '../helpers/canary.ts'
import { ScriptedBrowser } from '../helpers/browser.ts'
import {
  dropConnection,
  flood,
  form,
  hang,
  json,
  raw,
  redirect,
  startFakeProvider,
  trickle,
  type FakeProvider,
  type ProviderHandler,
} from '../helpers/fake-provider.ts'
import {
  arriveAtCallback,
  poll,
  postLink,
  seedIntegration,
  start,
  type SessionView,
} from '../helpers/flow.ts'
import { createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/test-db.ts'

const DEADLINE_MS = 1500
const OUTBOUND = {
  deadlineMs: DEADLINE_MS,
  headersTimeoutMs: 1000,
  connectTimeoutMs: 1000,
  // A good call's socket stays pooled while idle; short here so that the check that nothing
  // stays connected to the provider (a second after the sign-in) sees it closed. That failed
  // calls leave no socket at once is test/oauth/outbound-pool.test.ts's to prove.
  keepAliveTimeoutMs: 100,
}
/** The callback page must answer within the deadline plus a second. */
const PAGE_BUDGET_MS = DEADLINE_MS + 1000
const SECRET = 'client-secret-0123456789'
/** Put in every hostile body: the page and the stored failure must never show it. */
const MARKER = 'PROVIDER-SAYS-0xBADF00D'
/** A name the injected resolver maps to loopback; nothing else resolves. */
const LOOPBACK_NAME = 'provider.test'

const ACCESS_TOKEN = 'at-0123456789abcdef'
const TOKEN = { access_token: ACCESS_TOKEN, token_type: 'bearer', expires_in: 3600 }
const WHOAMI = { email: 'ada@example.com', userName: 'ada', fullName: 'Ada Lovelace' }

interface Outcome {
  readonly session: SessionView
  readonly html: string
  readonly pageStatus: number
  readonly elapsedMs: number
  readonly tokenRequests: number
  readonly whoAmIRequests: number
  readonly idp: FakeProvider
}

/** The provider's authorization endpoint: signs the user in at once and sends the browser back. */
function authorize(code: string): ProviderHandler {
  return (req, res) => {
    const back = new URL(req.query.get('redirect_uri')!)
    back.searchParams.set('code', code)
    back.searchParams.set('state', req.query.get('state')!)
    // The browser's own connection must not count as a socket our service left open.
    res.writeHead(302, { location: back.href, connection: 'close' })
    res.end()
  }
}

/** JSON nested `depth` objects deep: {"a":{"a":...1...}}. */
function nested(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
}

describe('hostile providers, through a whole sign-in', () => {
  let database: TestDatabase
  let t: TestApp
  let tenant: SeededTenant
  let canary: Canary
  let n = 0

  beforeAll(async () => {
    database = await createTestDatabase()
    t = await createTestApp({
      serve: true,
      database,
      env: { OUTBOUND_ALLOW_HOSTS: '127.0.0.1' },
      outbound: {
        ...OUTBOUND,
        resolver: async (name) => {
          if (name === LOOPBACK_NAME) return ['127.0.0.1']
          throw Object.assign(new Error(`test resolver: ${name} does not resolve`), {
            code: 'ENOTFOUND',
          })
        },
      },
    })
    tenant = await t.seedTenant('hostile-provider')
    canary = await startCanary()
  })
  afterAll(async () => {
    await t?.close()
    await database?.close()
    await canary?.close()
  })

  async function createIntegration(app: TestApp, input: Record<string, unknown>): Promise<string> {
    const created = await seedIntegration(app, tenant, {
      name: `hostile ${++n}`,
      clientId: `client-${n}`,
      clientSecret: SECRET,
      ...input,
    })
    return created.id
  }

  /**
   * One sign-in against a fresh fake provider: `script` queues its token and WhoAmI answers
   * (or nothing, for a case that must not reach them); `urls` overrides the integration's URLs.
   */
  async function signIn(
    script: (idp: FakeProvider) => void,
    options: {
      urls?: (idp: FakeProvider) => Record<string, string>
      /** Create the integration with this app and run the flow with `flowApp`. */
      saveWith?: TestApp
      flowApp?: TestApp
    } = {},
  ): Promise<Outcome> {
    const app = options.flowApp ?? t
    const idp = await startFakeProvider()
    try {
      const code = `code-${n}-0123456789`
      idp.on('GET', '/authorize', authorize(code))
      script(idp)
      const integrationId = await createIntegration(options.saveWith ?? app, {
        authorizationUrl: idp.url('/authorize'),
        tokenUrl: idp.url('/token'),
        whoAmIUrl: idp.url('/whoami'),
        ...options.urls?.(idp),
      })
      const { authorizationLink, session } = await start(app, tenant.agentKey, {
        integrationId,
        conversationId: `conv-${++n}`,
      })

      const browser = new ScriptedBrowser()
      const authorizeUrl = (await postLink(browser, authorizationLink)).href
      expect(authorizeUrl.startsWith(idp.url('/authorize?'))).toBe(true)
      const back = await browser.request(authorizeUrl)
      expect(back.status).toBe(302)
      const callback = back.headers.get('location')!
      expect(new URL(callback).origin).toBe(new URL(app.baseUrl).origin)

      const began = performance.now()
      const { result: page } = await arriveAtCallback(browser, callback)
      const html = await page.text()
      const elapsedMs = performance.now() - began

      const polled = await poll(app, tenant.agentKey, session.id)
      // Whatever the provider did, nothing of ours or of the browser's stays connected to it.
      await idp.waitForNoOpenSockets(1000)
      idp.assertAllCalled()
      return {
        session: polled!,
        html,
        pageStatus: page.status,
        elapsedMs,
        tokenRequests: idp.requestsTo('/token').length,
        whoAmIRequests: idp.requestsTo('/whoami').length,
        idp,
      }
    } finally {
      await idp.close()
    }
  }

  /**
   * What every failing case shows: FAILED with `code` (or one of `code`), a plain page without the
   * provider's text, in time, exactly one token request (never retried) unless `tokens` says none.
   */
  function expectFailed(
    outcome: Outcome,
    code: string | readonly string[],
    requests: { whoAmI: number; tokens?: number; pageBudgetMs?: number },
  ): void {
    expect(outcome.session.status).toBe('FAILED')
    expect(typeof code === 'string' ? [code] : code).toContain(outcome.session.failure?.code)
    expect(outcome.session.identity).toBeNull()
    expect(outcome.pageStatus).toBe(200)
    expect(outcome.html).toContain('Sign-in did not work')
    expect(outcome.html).not.toContain(MARKER)
    expect(outcome.session.failure?.message).not.toContain(MARKER)
    expect(outcome.elapsedMs).toBeLessThan(requests.pageBudgetMs ?? PAGE_BUDGET_MS)
    expect(outcome.tokenRequests).toBe(requests.tokens ?? 1)
    expect(outcome.whoAmIRequests).toBe(requests.whoAmI)
  }

  function expectAuthenticated(outcome: Outcome, requests = { whoAmI: 1 }): void {
    expect(outcome.session).toMatchObject({
      status: 'AUTHENTICATED',
      failure: null,
      identity: { email: WHOAMI.email, userName: WHOAMI.userName },
    })
    expect(outcome.pageStatus).toBe(200)
    expect(outcome.elapsedMs).toBeLessThan(PAGE_BUDGET_MS)
    expect(outcome.tokenRequests).toBe(1)
    expect(outcome.whoAmIRequests).toBe(requests.whoAmI)
    for (const request of outcome.idp.requestsTo('/whoami')) {
      expect(request.headers.authorization).toBe(`Bearer ${ACCESS_TOKEN}`)
    }
  }

  describe('token endpoint', () => {
    it('never answers: provider_timeout at the deadline', async () => {
      const outcome = await signIn((idp) => idp.on('POST', '/token', hang()))
      expectFailed(outcome, 'provider_timeout', { whoAmI: 0 })
      expect(outcome.elapsedMs).toBeGreaterThanOrEqual(900)
    })

    it('trickles a byte a second: provider_timeout', async () => {
      const outcome = await signIn((idp) =>
        idp.on('POST', '/token', trickle({ intervalMs: 1000, chunk: ' ' })),
      )
      expectFailed(outcome, 'provider_timeout', { whoAmI: 0 })
    })

    it('trickles faster than the pause timer: the total deadline still ends it', async () => {
      const outcome = await signIn((idp) =>
        idp.on('POST', '/token', trickle({ intervalMs: 100, chunk: ' ' })),
      )
      expectFailed(outcome, 'provider_timeout', { whoAmI: 0 })
      expect(outcome.elapsedMs).toBeGreaterThanOrEqual(DEADLINE_MS - 100)
    })

    it('streams 50 MB: invalid_provider_response at the size cap', async () => {
      const outcome = await signIn((idp) =>
        idp.on('POST', '/token', flood({ totalBytes: 50 * 1024 * 1024 })),
      )
      expectFailed(outcome, 'invalid_provider_response', { whoAmI: 0 })
      expect(outcome.session.failure?.message).toMatch(/larger than/)
    })

    it('answers a 500 HTML error page: provider_error, the HTML never shown', async () => {
      const page = `<html><body><h1>${MARKER}</h1><script>alert(1)</script></body></html>`
      const outcome = await signIn((idp) =>
        idp.on(
          'POST',
          '/token',
          raw(page, { status: 500, headers: { 'content-type': 'text/html' } }),
        ),
      )
      // An HTTP error without an OAuth error is the provider's error, not a malformed answer.
      expectFailed(outcome, 'provider_error', { whoAmI: 0 })
      expect(outcome.session.failure?.message).toMatch(/HTTP 500 without an OAuth error/)
      expect(outcome.html).not.toContain('<script>alert')
    })

    it('answers 200 with an HTML page: invalid_provider_response', async () => {
      const outcome = await signIn((idp) =>
        idp.on(
          'POST',
          '/token',
          raw(`<html>${MARKER}</html>`, { headers: { 'content-type': 'text/html' } }),
        ),
      )
      expectFailed(outcome, 'invalid_provider_response', { whoAmI: 0 })
    })

    it('answers invalid UTF-8: invalid_provider_response', async () => {
      const body = Buffer.concat([
        Buffer.from(`{"access_token":"${MARKER}`),
        Buffer.from([0xc3, 0x28]),
        Buffer.from('","token_type":"bearer"}'),
      ])
      const outcome = await signIn((idp) =>
        idp.on('POST', '/token', raw(body, { headers: { 'content-type': 'application/json' } })),
      )
      expectFailed(outcome, 'invalid_provider_response', { whoAmI: 0 })
      expect(outcome.session.failure?.message).toMatch(/not valid UTF-8/)
    })

    it('answers 200 {"error":"bad_verification_code"} (GitHub): invalid_grant', async () => {
      const outcome = await signIn((idp) =>
        idp.on(
          'POST',
          '/token',
          json({ error: 'bad_verification_code', error_description: MARKER }),
        ),
      )
      expectFailed(outcome, 'invalid_grant', { whoAmI: 0 })
      expect(outcome.session.failure?.message).toContain('bad_verification_code')
    })

    it('drops the connection: provider_unreachable, and the code is not sent again', async () => {
      const outcome = await signIn((idp) => idp.on('POST', '/token', dropConnection()))
      expectFailed(outcome, 'provider_unreachable', { whoAmI: 0 })
    })

    it('redirects to a loopback canary: not followed, provider_error', async () => {
      const outcome = await signIn((idp) =>
        idp.on('POST', '/token', redirect(`http://127.0.0.1:${canary.port}/${MARKER}`)),
      )
      expectFailed(outcome, 'provider_error', { whoAmI: 0 })
      expect(outcome.session.failure?.message).toMatch(
        /redirect \(HTTP 302\), which is not followed/,
      )
      expect(canary.hits).toBe(0)
    })

    it('redirects with 307 to a private address: not followed, provider_error', async () => {
      const outcome = await signIn((idp) =>
        idp.on('POST', '/token', redirect('http://10.0.0.5/token', 307)),
      )
      expectFailed(outcome, 'provider_error', { whoAmI: 0 })
    })

    it('has a host name that resolves to loopback: blocked_address, no connection', async () => {
      const outcome = await signIn(() => {}, {
        urls: (idp) => ({ tokenUrl: `https://${LOOPBACK_NAME}:${idp.port}/token` }),
      })
      expectFailed(outcome, 'blocked_address', { whoAmI: 0, tokens: 0 })
      // The browser's visit to /authorize is the fake's only connection.
      expect(outcome.idp.connections).toBe(1)
      expect(outcome.session.failure?.message).toContain(
        `${LOOPBACK_NAME} resolves to an address that is not a public address`,
      )
      expect(outcome.session.failure?.message).not.toContain('127.0.0.1')
    })
  })

  describe('token answer quirks accepted end to end', () => {
    const quirks: ReadonlyArray<readonly [string, ProviderHandler]> = [
      ['form-encoded (old GitHub)', form({ access_token: ACCESS_TOKEN, token_type: 'bearer' })],
      ['no token_type', json({ access_token: ACCESS_TOKEN })],
      ['token_type "BEARER"', json({ access_token: ACCESS_TOKEN, token_type: 'BEARER' })],
      ['expires_in "3600"', json({ ...TOKEN, expires_in: '3600' })],
      ['scope as an array', json({ ...TOKEN, scope: ['read:user', 'user:email'] })],
      ['JSON as text/plain', json(TOKEN, { headers: { 'content-type': 'text/plain' } })],
    ]
    for (const [name, handler] of quirks) {
      it(`${name}: AUTHENTICATED`, async () => {
        const outcome = await signIn((idp) => {
          idp.on('POST', '/token', handler)
          idp.on('GET', '/whoami', json(WHOAMI))
        })
        expectAuthenticated(outcome)
        const [token] = outcome.idp.requestsTo('/token')
        expect(token!.form.get('grant_type')).toBe('authorization_code')
        expect(token!.form.get('code')).toMatch(/^code-/)
      })
    }
  })

  describe('WhoAmI endpoint', () => {
    const tokenOk = (idp: FakeProvider) => idp.on('POST', '/token', json(TOKEN))

    it('answers 401: whoami_failed, not retried', async () => {
      const outcome = await signIn((idp) => {
        tokenOk(idp)
        idp.on(
          'GET',
          '/whoami',
          json(
            { message: MARKER },
            { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } },
          ),
        )
      })
      expectFailed(outcome, 'whoami_failed', { whoAmI: 1 })
      expect(outcome.session.failure?.message).toContain('invalid_token')
    })

    it('answers a JSON array: invalid_provider_response (not an object)', async () => {
      const outcome = await signIn((idp) => {
        tokenOk(idp)
        idp.on('GET', '/whoami', json([WHOAMI, MARKER]))
      })
      expectFailed(outcome, 'invalid_provider_response', { whoAmI: 1 })
      expect(outcome.session.failure?.message).toMatch(/JSON but not an object/)
    })

    it('answers JSON nested 10,000 deep: invalid_provider_response', async () => {
      const outcome = await signIn((idp) => {
        tokenOk(idp)
        idp.on(
          'GET',
          '/whoami',
          raw(nested(10_000), { headers: { 'content-type': 'application/json' } }),
        )
      })
      expectFailed(outcome, 'invalid_provider_response', { whoAmI: 1 })
      expect(outcome.session.failure?.message).toMatch(/nested too deeply/)
    })

    it('resets the connection once, then answers: AUTHENTICATED after one retry', async () => {
      const outcome = await signIn((idp) => {
        tokenOk(idp)
        idp.on('GET', '/whoami', dropConnection())
        idp.on('GET', '/whoami', json(WHOAMI))
      })
      expectAuthenticated(outcome, { whoAmI: 2 })
    })

    it('resets the connection twice: FAILED, provider_unreachable, no third try', async () => {
      const outcome = await signIn((idp) => {
        tokenOk(idp)
        idp.on('GET', '/whoami', dropConnection(), { times: 2 })
      })
      expectFailed(outcome, 'provider_unreachable', { whoAmI: 2 })
    })

    it('redirects to a loopback canary: not followed, whoami_failed', async () => {
      const outcome = await signIn((idp) => {
        tokenOk(idp)
        idp.on('GET', '/whoami', redirect(`http://127.0.0.1:${canary.port}/${MARKER}`, 307))
      })
      expectFailed(outcome, 'whoami_failed', { whoAmI: 1 })
      expect(canary.hits).toBe(0)
    })

    it('never answers: provider_timeout at the deadline, not retried', async () => {
      const outcome = await signIn((idp) => {
        tokenOk(idp)
        idp.on('GET', '/whoami', hang())
      })
      expectFailed(outcome, 'provider_timeout', { whoAmI: 1 })
    })

    it('answers NUL and bidi characters: AUTHENTICATED, stored without the NUL', async () => {
      const outcome = await signIn((idp) => {
        tokenOk(idp)
        idp.on('GET', '/whoami', json({ ...WHOAMI, userName: 'a\u0000da', fullName: 'Ada\u202eL' }))
      })
      expect(outcome.session).toMatchObject({
        status: 'AUTHENTICATED',
        identity: { email: WHOAMI.email, userName: 'ada' },
      })
      expect(outcome.elapsedMs).toBeLessThan(PAGE_BUDGET_MS)
    })

    it('is not called with an access token that cannot be a header value', async () => {
      const outcome = await signIn((idp) =>
        idp.on('POST', '/token', json({ access_token: `a\u0000${MARKER}`, token_type: 'bearer' })),
      )
      // Refused when the token answer is read: it could never be sent in a header.
      expectFailed(outcome, 'invalid_provider_response', { whoAmI: 0 })
    })
  })

  describe('one budget for the callback', () => {
    it('shares one deadline between a slow token answer and a slow WhoAmI', async () => {
      // Its own app with a 3 s deadline: the token answer trickles in and completes at 1.5 s,
      // leaving WhoAmI 1.5 s (ample on a loaded machine: with the suite's 1.5 s deadline the
      // margin was 0.3 s, and a busy embedded run once ran out of it before WhoAmI was called);
      // WhoAmI then trickles. Sharing the deadline ends the page within 3 + 1 s; separate
      // deadlines would take 1.5 + 3 s.
      const deadlineMs = 3000
      const patient = await createTestApp({
        serve: true,
        database,
        env: { OUTBOUND_ALLOW_HOSTS: '127.0.0.1' },
        outbound: { ...OUTBOUND, deadlineMs },
      })
      try {
        const outcome = await signIn(
          (idp) => {
            idp.on('POST', '/token', (_req, res) => {
              res.writeHead(200, { 'content-type': 'application/json' })
              let sent = 0
              const timer = setInterval(() => {
                if (++sent < 15) {
                  res.write(' ')
                } else {
                  clearInterval(timer)
                  res.end(JSON.stringify(TOKEN))
                }
              }, 100)
              res.on('close', () => clearInterval(timer))
            })
            idp.on('GET', '/whoami', trickle({ intervalMs: 100 }))
          },
          { flowApp: patient },
        )
        expectFailed(outcome, 'provider_timeout', { whoAmI: 1, pageBudgetMs: deadlineMs + 1000 })
        expect(outcome.session.failure?.message).toContain('WhoAmI request')
      } finally {
        await patient.close()
      }
    })
  })

  it('refuses a token URL whose host left the allow list after the integration was saved', async () => {
    // The same database and tenant, served by an app whose OUTBOUND_ALLOW_HOSTS no longer
    // names 127.0.0.1: the saved http://127.0.0.1 token URL must not be called.
    const strict = await createTestApp({
      serve: true,
      database,
      env: { OUTBOUND_ALLOW_HOSTS: 'idp.example.com' },
      outbound: OUTBOUND,
    })
    try {
      const outcome = await signIn(() => {}, { saveWith: t, flowApp: strict })
      expectFailed(outcome, 'blocked_address', { whoAmI: 0, tokens: 0 })
      expect(outcome.idp.connections).toBe(1)
    } finally {
      await strict.close()
    }
  })
})
