/**
 * The end-user pages, redirects and health answers go out with a Content-Length, not chunked: a
 * body the node:http adapter cannot take as one string is pumped as a stream and, without a
 * length, sent as chunks and a terminating chunk (two socket writes per answer, and more bytes
 * for every browser). src/http/response.ts builds them so that they go out in one.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFlowApp, seedIntegration, start } from '../helpers/flow.ts'
import { requestOverSocket, type SeededTenant, type TestApp } from '../helpers/test-app.ts'

describe('end-user answers are framed by Content-Length', () => {
  let t: TestApp
  let tenant: SeededTenant
  let base: string
  let link: string
  let callback: string
  beforeAll(async () => {
    t = await createFlowApp()
    base = await t.listen()
    tenant = await t.seedTenant('framing')
    const integration = await seedIntegration(t, tenant, {
      clientId: 'framing-client',
      clientSecret: 'framing-secret-0123456789',
      authorizationUrl: 'https://idp.example.com/authorize',
      tokenUrl: 'https://idp.example.com/token',
    })
    link = (await start(t, tenant.agentKey, { integrationId: integration.id, conversationId: 'c' }))
      .authorizationLink
    callback = `${integration.redirectUrls[0]}?code=c&state=${'s'.repeat(43)}`
  })
  afterAll(async () => t?.close())

  async function framed(request: Request, status: number): Promise<Response> {
    const response = await requestOverSocket(base, request)
    const body = Buffer.from(await response.clone().arrayBuffer())
    expect(response.status).toBe(status)
    expect(response.headers.get('transfer-encoding')).toBeNull()
    expect(response.headers.get('content-length')).toBe(String(body.length))
    return response
  }

  it('the Continue page, and the 303 with its cookie that pressing Continue answers', async () => {
    const page = await framed(new Request(link), 200)
    expect(await page.text()).toContain('<form')
    const posted = await framed(new Request(link, { method: 'POST' }), 303)
    expect(posted.headers.get('location')).toMatch(/^https:\/\/idp\.example\.com\/authorize\?/)
    expect(posted.headers.getSetCookie()).toHaveLength(1)
    expect(posted.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
  })

  it('a refused callback and an unknown result page', async () => {
    await framed(new Request(callback), 404)
    const unknown = await framed(new Request(`${base}/r/${randomUUID()}`), 404)
    expect(unknown.headers.get('content-type')).toBe('text/html; charset=utf-8')
  })

  it('the health answers', async () => {
    const health = await framed(new Request(`${base}/healthz`), 200)
    expect(health.headers.get('content-type')).toBe('application/json; charset=utf-8')
  })
})
