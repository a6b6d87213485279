/**
 * The request log: one line per request with the route as a template, never a link token, a
 * session id, a callback key or a callback's query string.
 */
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { routeTemplate } from '../../src/observability/route-template.ts'
import { ScriptedBrowser } from '../helpers/browser.ts'
import { createFlowApp, postLink, seedIntegration, start } from '../helpers/flow.ts'
import { requestOverSocket, type SeededTenant, type TestApp } from '../helpers/test-app.ts'

describe('routeTemplate', () => {
  it.each([
    ['/', '/'],
    ['/graphql', '/graphql'],
    ['/graphql?query=%7B%7D', '/graphql'],
    ['/idp/eu/oauth/callback/k3y?code=c&state=s', '/idp/eu/oauth/callback/:callbackKey'],
    ['/healthz', '/healthz'],
    ['/l/abcDEF123_-', '/l/:token'],
    ['/r/0d4c3e2a-1111-4222-8333-944455556666', '/r/:sessionId'],
    ['/idp/eu/oauth/callback', '/idp/eu/oauth/callback'],
    ['/idp/eu/oauth/callback/k3y0123456789abc', '/idp/eu/oauth/callback/:callbackKey'],
    ['/web/inbound/abc/oauth/redirect/k3y', '/web/inbound/abc/oauth/redirect/:callbackKey'],
    ['/web/inbound/abc/oauth/abcAuth2Redirect', '/web/inbound/abc/oauth/abcAuth2Redirect'],
    ['/wp-admin/secret-looking-path', 'other'],
    ['/graphqlx', 'other'],
  ])('%s → %s', (path, template) => {
    expect(routeTemplate(path)).toBe(template)
  })
})

describe('one line per request', () => {
  let t: TestApp
  let tenant: SeededTenant
  beforeAll(async () => {
    t = await createFlowApp()
    tenant = await t.seedTenant('request-log')
  })
  afterAll(async () => t?.close())

  async function waitUntil(condition: () => boolean): Promise<void> {
    for (let i = 0; i < 100 && !condition(); i++) await new Promise((r) => setTimeout(r, 20))
    expect(condition()).toBe(true)
  }

  const requestLines = () =>
    t.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request')

  it('logs a request whose client went away before the answer, marked aborted', async () => {
    const base = await t.listen()
    const before = requestLines().length
    // Half a declared body, then the client hangs up: the answer is never sent.
    const socket = connect(Number(new URL(base).port), '127.0.0.1')
    await new Promise<void>((resolve) => socket.once('connect', resolve))
    socket.write(
      'POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n' +
        'content-length: 100\r\n\r\n{"query":',
    )
    await new Promise((resolve) => setTimeout(resolve, 100))
    socket.destroy()
    await waitUntil(() => requestLines().length > before)
    const [line, ...more] = requestLines().slice(before)
    expect(more).toEqual([])
    expect(line).toMatchObject({ method: 'POST', route: '/graphql', aborted: true })
    // And a request that was answered carries no such mark.
    const answered = await requestOverSocket(base, new Request(`${base}/healthz`))
    await answered.text()
    await waitUntil(() => requestLines().length > before + 1)
    expect(requestLines().at(-1)).not.toHaveProperty('aborted')
  })

  it('logs method, template, status and time, and none of the request’s secrets', async () => {
    const integration = await seedIntegration(t, tenant, {
      clientId: 'log-client',
      clientSecret: 'log-secret-0123456789',
      authorizationUrl: 'https://idp.example.com/authorize',
      tokenUrl: 'https://idp.example.com/token',
    })
    const { authorizationLink } = await start(t, tenant.agentKey, {
      integrationId: integration.id,
      conversationId: 'conv-log',
    })
    const before = requestLines().length
    const browser = new ScriptedBrowser()
    await postLink(browser, authorizationLink)
    const callback = `${integration.redirectUrls[0]}?code=CODE-SECRET-123&state=STATE-SECRET-456`
    const refused = await requestOverSocket(t.baseUrl, new Request(callback))
    // An unknown state: refused with the same page as any forged callback.
    expect(refused.status).toBe(404)
    await refused.text()
    const lines = requestLines().slice(before)
    expect(lines.map((l) => [l.method, l.route, l.status])).toEqual([
      ['POST', '/l/:token', 303],
      ['GET', '/idp/eu/oauth/callback/:callbackKey', 404],
    ])
    for (const line of lines) expect(typeof line.ms).toBe('number')
    const text = t.logs.join('\n')
    const token = new URL(authorizationLink).pathname.slice('/l/'.length)
    const key = integration.redirectUrls[0]!.split('/').at(-1)!
    for (const secret of [token, key, 'CODE-SECRET-123', 'STATE-SECRET-456', tenant.agentKey]) {
      expect(text).not.toContain(secret)
    }
  })
})
