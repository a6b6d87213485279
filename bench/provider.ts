/**
 * A fast fake OAuth provider for the `flow` and `soak` scenarios, in its own process: plain
 * node:http, nothing checked, nothing stored but timings.
 *
 * - `GET /authorize` 302s straight back to `redirect_uri` with a fresh `code` and the `state`.
 * - `POST /token` answers `access_token = at.<code>` (so the WhoAmI call can be tied to its code).
 * - `GET /whoami` answers the documentation's example WhoAmI payload (with a clean email).
 * - Each token and WhoAmI answer carries `Server-Timing: provider;dur=<ms>`, and the time is also
 *   added up per code: `POST /_timings {"codes":[...]}` returns (and forgets) them, so the flow
 *   driver can subtract the provider's own time from the callback it measured.
 *
 * Started by bench/run.ts with `fork`; reports `{ port }` over IPC once listening.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

const spent = new Map<string, number>()

function addTime(code: string, ms: number): void {
  spent.set(code, (spent.get(code) ?? 0) + ms)
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (body += chunk))
    req.on('end', () => resolve(body))
    req.on('error', reject)
  })
}

function sendJson(res: ServerResponse, status: number, body: unknown, started?: number): void {
  const text = JSON.stringify(body)
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  }
  if (started !== undefined)
    headers['server-timing'] = `provider;dur=${(performance.now() - started).toFixed(3)}`
  res.writeHead(status, headers)
  res.end(text)
}

/** Records the time from the request's arrival until its answer is handed to the socket. */
function timed(res: ServerResponse, started: number, code: string): void {
  res.once('finish', () => addTime(code, performance.now() - started))
}

const server = createServer((req, res) => {
  const started = performance.now()
  const url = new URL(req.url ?? '/', 'http://provider')
  void (async () => {
    if (req.method === 'GET' && url.pathname === '/authorize') {
      const redirect = new URL(url.searchParams.get('redirect_uri') ?? 'http://invalid/')
      redirect.searchParams.set('code', randomBytes(16).toString('hex'))
      redirect.searchParams.set('state', url.searchParams.get('state') ?? '')
      res.writeHead(302, { location: redirect.href, 'content-length': 0 })
      res.end()
      return
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      const form = new URLSearchParams(await readBody(req))
      const code = form.get('code') ?? ''
      timed(res, started, code)
      sendJson(
        res,
        200,
        { access_token: `at.${code}`, token_type: 'Bearer', expires_in: 3600 },
        started,
      )
      return
    }
    if (req.method === 'GET' && url.pathname === '/whoami') {
      const token = /^Bearer\s+at\.(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? ''
      timed(res, started, token)
      sendJson(
        res,
        200,
        {
          user: {
            id: 'billy.bob',
            name: 'Billy Bob',
            email: 'billy.bob@example.com',
            other: 'stuff',
          },
          roles: ['SomeRole', 'OtherRole'],
          other: 'stuff',
        },
        started,
      )
      return
    }
    if (req.method === 'POST' && url.pathname === '/_timings') {
      const { codes } = JSON.parse(await readBody(req)) as { codes: string[] }
      const out: Record<string, number> = {}
      for (const code of codes) {
        out[code] = spent.get(code) ?? 0
        spent.delete(code)
      }
      sendJson(res, 200, out)
      return
    }
    sendJson(res, 404, { error: 'not_found' })
  })().catch((error: unknown) => {
    if (!res.headersSent) sendJson(res, 500, { error: String(error) })
  })
})
server.keepAliveTimeout = 30_000

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.send?.({ port })
})
process.on('disconnect', () => process.exit(0))
