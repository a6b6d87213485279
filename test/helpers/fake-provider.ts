/**
 * A scriptable OAuth provider on a real socket (127.0.0.1:0 by default, or https with a given
 * certificate). Each route answers from a queue of scripted handlers, consumed in order; every
 * request is recorded; `assertAllCalled()` fails when a scripted answer was not used or a request
 * arrived that nothing expected (oauth4webapi's "mocks must be consumed" habit).
 *
 *   const idp = await startFakeProvider()
 *   idp.on('POST', '/token', json({ access_token: 'at', token_type: 'bearer' }))
 *   ... call the code under test with idp.url('/token') ...
 *   idp.assertAllCalled()
 *   await idp.waitForNoOpenSockets()
 *   await idp.close()
 *
 * Handlers for hostile behaviour are below: `hang`, `trickle`, `flood`, `redirect`, `raw`,
 * `dropConnection`.
 */
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo, Socket } from 'node:net'

export interface RecordedRequest {
  readonly method: string
  /** Path without the query. */
  readonly path: string
  readonly query: URLSearchParams
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
  /** The parsed body when it was form-encoded (token requests), else an empty set. */
  readonly form: URLSearchParams
}

export type ProviderHandler = (
  req: RecordedRequest,
  res: http.ServerResponse,
) => void | Promise<void>

export interface FakeProviderOptions {
  /** Default 127.0.0.1. Use ::1 or another loopback address when a test needs one. */
  readonly host?: string
  /** Default 0 (any free port). */
  readonly port?: number
  /** Serve https with this key and certificate. */
  readonly tls?: { readonly key: string; readonly cert: string }
}

export interface FakeProvider {
  /** e.g. http://127.0.0.1:41234 */
  readonly origin: string
  readonly host: string
  readonly port: number
  url(path: string): string
  /** Queues `handler` for the next `times` (default 1) requests to `method path`. */
  on(method: string, path: string, handler: ProviderHandler, options?: { times?: number }): this
  /** Every request received, in arrival order, scripted or not. */
  readonly requests: readonly RecordedRequest[]
  /** Requests to one path. */
  requestsTo(path: string): readonly RecordedRequest[]
  /** TCP connections accepted since start. */
  readonly connections: number
  /** Sockets currently open on the server side. */
  openSockets(): number
  /** Resolves once every server-side socket is closed; rejects after `timeoutMs` (default 1 s). */
  waitForNoOpenSockets(timeoutMs?: number): Promise<void>
  /** Throws if a scripted answer was not consumed or an unscripted request arrived. */
  assertAllCalled(): void
  close(): Promise<void>
}

interface Script {
  readonly handler: ProviderHandler
  remaining: number
}

const MAX_REQUEST_BODY = 1024 * 1024

export async function startFakeProvider(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  const host = options.host ?? '127.0.0.1'
  const scripts = new Map<string, Script[]>()
  const requests: RecordedRequest[] = []
  const unexpected: string[] = []
  const failures: string[] = []
  const sockets = new Set<Socket>()
  let connections = 0

  const listener: http.RequestListener = (req, res) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size <= MAX_REQUEST_BODY) chunks.push(chunk)
    })
    req.on('end', () => {
      const target = new URL(req.url ?? '/', 'http://fake')
      const body = Buffer.concat(chunks).toString('utf8')
      const isForm = (req.headers['content-type'] ?? '').startsWith(
        'application/x-www-form-urlencoded',
      )
      const recorded: RecordedRequest = {
        method: req.method ?? 'GET',
        path: target.pathname,
        query: target.searchParams,
        headers: req.headers,
        body,
        form: new URLSearchParams(isForm ? body : ''),
      }
      requests.push(recorded)
      const key = `${recorded.method} ${recorded.path}`
      const queue = scripts.get(key) ?? []
      const script = queue[0]
      if (script === undefined) {
        unexpected.push(key)
        res.writeHead(500, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: 'unscripted_request', error_description: key }))
        return
      }
      if (--script.remaining <= 0) queue.shift()
      Promise.resolve(script.handler(recorded, res)).catch((error: unknown) => {
        failures.push(`${key}: ${String(error)}`)
        res.destroy()
      })
    })
    // A client that goes away mid-answer must not crash the test process.
    res.on('error', () => {})
  }

  const server = options.tls
    ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, listener)
    : http.createServer(listener)
  // Count TCP connections (TLS or not) as they arrive, before any handshake.
  server.prependListener('connection', (socket: Socket) => {
    connections++
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  server.on('tlsClientError', () => {})
  server.keepAliveTimeout = 60_000

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  const origin = `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`

  const provider: FakeProvider = {
    origin,
    host,
    port,
    url: (path) => `${origin}${path}`,
    on(method, path, handler, opts) {
      const key = `${method.toUpperCase()} ${path}`
      const queue = scripts.get(key) ?? []
      queue.push({ handler, remaining: opts?.times ?? 1 })
      scripts.set(key, queue)
      return this
    },
    requests,
    requestsTo: (path) => requests.filter((r) => r.path === path),
    get connections() {
      return connections
    },
    openSockets: () => sockets.size,
    async waitForNoOpenSockets(timeoutMs = 1000) {
      const until = Date.now() + timeoutMs
      while (sockets.size > 0) {
        if (Date.now() > until) {
          throw new Error(`${sockets.size} socket(s) still open on the fake provider`)
        }
        await new Promise((r) => setTimeout(r, 10))
      }
    },
    assertAllCalled() {
      const pending = [...scripts.entries()]
        .filter(([, queue]) => queue.length > 0)
        .map(([key, queue]) => `${key} (${queue.reduce((n, s) => n + s.remaining, 0)} left)`)
      const problems = [
        ...pending.map((p) => `not called: ${p}`),
        ...unexpected.map((u) => `unscripted request: ${u}`),
        ...failures.map((f) => `handler failed: ${f}`),
      ]
      if (problems.length > 0) throw new Error(`fake provider: ${problems.join('; ')}`)
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  return provider
}

// ---------------------------------------------------------------------------------------------
// Handlers

export interface AnswerOptions {
  readonly status?: number
  readonly headers?: Readonly<Record<string, string>>
}

/** A JSON answer (`application/json` unless `headers` says otherwise). */
export function json(body: unknown, options: AnswerOptions = {}): ProviderHandler {
  return raw(JSON.stringify(body), {
    ...options,
    headers: { 'content-type': 'application/json', ...options.headers },
  })
}

/** A form-encoded answer, as old GitHub token endpoints gave. */
export function form(
  fields: Readonly<Record<string, string>>,
  options: AnswerOptions = {},
): ProviderHandler {
  return raw(new URLSearchParams(fields).toString(), {
    ...options,
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...options.headers },
  })
}

/** Any body, bytes as given; no content type unless `headers` sets one. */
export function raw(body: string | Uint8Array, options: AnswerOptions = {}): ProviderHandler {
  return (_req, res) => {
    res.writeHead(options.status ?? 200, { ...options.headers })
    res.end(body)
  }
}

export function redirect(location: string, status = 302): ProviderHandler {
  return (_req, res) => {
    res.writeHead(status, { location })
    res.end()
  }
}

/** Closes the connection without answering (a connection error for the client). */
export function dropConnection(): ProviderHandler {
  return (_req, res) => {
    res.socket?.destroy()
  }
}

/** Accepts the request and never answers (until the client gives up or the server closes). */
export function hang(): ProviderHandler {
  return () => {}
}

/** Sends headers at once, then `chunk` every `intervalMs`, forever (a slowloris body). */
export function trickle(options: { intervalMs?: number; chunk?: string } = {}): ProviderHandler {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write('{')
    const timer = setInterval(() => res.write(options.chunk ?? ' '), options.intervalMs ?? 1000)
    res.on('close', () => clearInterval(timer))
  }
}

/**
 * Streams `totalBytes` of JSON-ish filler with backpressure, stopping as soon as the client goes.
 * `contentLength`: a number to announce (true or a lie), or omit for chunked encoding.
 */
export function flood(options: {
  totalBytes: number
  contentLength?: number
  chunkBytes?: number
}): ProviderHandler {
  return async (_req, res) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/json' }
    if (options.contentLength !== undefined) headers['content-length'] = options.contentLength
    res.writeHead(200, headers)
    const chunk = Buffer.alloc(options.chunkBytes ?? 64 * 1024, 0x20)
    let sent = 0
    let closed = false
    let wake: (() => void) | null = null
    res.on('close', () => {
      closed = true
      wake?.()
    })
    res.on('drain', () => wake?.())
    while (!closed && sent < options.totalBytes) {
      sent += chunk.length
      if (!res.write(chunk)) await new Promise<void>((resolve) => (wake = resolve))
      wake = null
    }
    if (!closed) res.end()
  }
}
