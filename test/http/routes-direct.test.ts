/**
 * The routes (end-user pages, callbacks, health) are answered before yoga: by app.fetch, and by
 * app.handleNode straight from node:http when the path is plain. A path only the URL parser
 * normalises (a dot segment) still reaches the same route through yoga's routes plugin. Each way
 * gives the same answer, and a failing route gives the end user's error page on each.
 */
import { createServer, request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp, type App } from '../../src/runtime/app.ts'
import { endUserRoutes } from '../../src/http/index.ts'
import type { Route } from '../../src/http/routes.ts'
import { createTestApp, requestOverSocket, type TestApp } from '../helpers/test-app.ts'

const failing: Route = {
  methods: ['GET'],
  path: '/test-failing-route',
  handler: () => {
    throw new Error('the handler failed')
  },
}

/** Status, headers but Date and Connection, and body: what a browser would be given. */
async function shape(response: Response) {
  const headers: Record<string, string> = {}
  response.headers.forEach((value, key) => {
    if (key !== 'date' && key !== 'connection' && key !== 'keep-alive') headers[key] = value
  })
  return { status: response.status, headers, body: await response.text() }
}

describe('routes without yoga', () => {
  let t: TestApp
  let app: App
  let server: Server
  let base: string
  beforeAll(async () => {
    t = await createTestApp()
    app = createApp(t.deps, t.database, [...endUserRoutes, failing])
    server = createServer(app.handleNode)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve))
    await app?.close()
    await t?.close()
  })

  const both = async (path: string, init?: RequestInit) => {
    const before = app.directRoutes.answered
    const overSocket = await requestOverSocket(base, new Request(`${base}${path}`, init))
    const direct = app.directRoutes.answered - before
    const inProcess = await app.fetch(new Request(`${base}${path}`, init))
    return { socket: await shape(overSocket), fetch: await shape(inProcess), direct }
  }

  it.each([
    ['/', undefined],
    ['/healthz', undefined],
    ['/l/no-such-link', undefined],
    ['/l/no-such-link?utm_source=chat', undefined],
    [
      '/l/no-such-link',
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 's=a&t=b&i=c',
      },
    ],
    ['/idp/eu/oauth/callback?state=unknown&code=x', undefined],
    ['/web/inbound/abc/oauth/abcAuth2Redirect/abcdefgh12345678?state=unknown', undefined],
    ['/r/00000000-0000-4000-8000-000000000000', undefined],
  ] as const)('answers %s over the socket as app.fetch does, without yoga', async (path, init) => {
    const { socket, fetch, direct } = await both(path, init)
    expect(direct).toBe(1)
    expect(socket).toEqual(fetch)
    expect(socket.status).toBeLessThan(500)
  })

  it('sends a path with a dot segment through yoga, to the same route', async () => {
    const before = app.directRoutes.answered
    const response = await requestOverSocket(base, new Request(`${base}/healthz`))
    expect(app.directRoutes.answered).toBe(before + 1)
    // A URL normalises the path itself; a raw request target keeps the dot segment.
    const { port } = server.address() as AddressInfo
    const dotted = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/l/../healthz' }, (res) => {
        let body = ''
        res.on('data', (chunk: Buffer) => (body += chunk.toString()))
        res.once('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
      req.once('error', reject)
      req.end()
    })
    expect(app.directRoutes.answered).toBe(before + 1)
    expect(dotted).toEqual({ status: 200, body: await response.text() })
  })

  it('answers HEAD without a body', async () => {
    const response = await requestOverSocket(
      base,
      new Request(`${base}/healthz`, { method: 'HEAD' }),
    )
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('')
  })

  it("shows the end user's error page when a route fails, on both ways", async () => {
    const { socket, fetch, direct } = await both('/test-failing-route')
    expect(direct).toBe(1)
    expect(socket).toEqual(fetch)
    expect(socket.status).toBe(500)
    expect(socket.headers['content-type']).toBe('text/html; charset=utf-8')
    expect(socket.body).not.toContain('the handler failed')
  })

  it('leaves other paths and methods to yoga', async () => {
    const before = app.directRoutes.answered
    const missing = await requestOverSocket(base, new Request(`${base}/no-such-route`))
    const wrongMethod = await requestOverSocket(
      base,
      new Request(`${base}/healthz`, { method: 'DELETE' }),
    )
    expect(app.directRoutes.answered).toBe(before)
    expect(missing.status).toBe(404)
    expect(wrongMethod.status).toBe(404)
  })
})
