/**
 * What a browser finds at the service's address: `GET /` names the service and links GraphiQL
 * (outside production) and the health routes; GraphiQL is the service's own page, with every
 * script and style inline, so it works on a machine that reaches no CDN.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestApp, type TestApp } from '../helpers/test-app.ts'

const HTML = { accept: 'text/html' }

describe('GET / and GraphiQL, outside production', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp()
  })
  afterAll(async () => t?.close())

  it('GET / is a small page linking GraphiQL and the health routes', async () => {
    const response = await t.fetch('/', { headers: HTML })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(response.headers.get('content-security-policy')).toContain("script-src 'none'")
    const html = await response.text()
    expect(html).toContain('<a href="/graphql">GraphiQL</a>')
    expect(html).toContain('<a href="/healthz">')
    expect(html).toContain('<a href="/readyz">')
  })

  it('GraphiQL is served by the service: no script, style or font from another origin', async () => {
    const response = await t.fetch('/graphql', { headers: HTML })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/html/)
    const html = await response.text()
    expect(html).toContain('<title>end-user-oauth</title>')
    expect(html).toContain('YogaGraphiQL.renderYogaGraphiQL')
    // Every <script> and <link> is inline: none names a src or href.
    expect(html).not.toMatch(/<script[^>]+src=/i)
    expect(html).not.toMatch(/<link[^>]+href="https?:/i)
    expect(html).not.toMatch(/unpkg\.com|jsdelivr\.net|cdnjs/)
    // The Authorization header template and the example query reach the page.
    expect(html).toContain('Bearer <your API key>')
    expect(html).toContain('apikey create')
  })
})

describe('GET / and GraphiQL in production', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp({ env: { NODE_ENV: 'production' } })
  })
  afterAll(async () => t?.close())

  it('GET / does not link GraphiQL, and /graphql serves none', async () => {
    const html = await (await t.fetch('/', { headers: HTML })).text()
    expect(html).not.toContain('GraphiQL')
    expect(html).toContain('<a href="/healthz">')
    const graphql = await t.fetch('/graphql', { headers: HTML })
    expect(await graphql.text()).not.toContain('YogaGraphiQL')
    // Only / itself: another path is not the landing page.
    expect(await (await t.fetch('/nothing-here', { headers: HTML })).text()).not.toContain(
      'end-user-oauth',
    )
  })
})
