/**
 * Connection reuse in the outbound client, against real loopback sockets. The server records the
 * client port (remotePort) of the socket that carried each request, so a test can tell a reused
 * connection from a new one, and which sockets it has seen close. Host names are mapped to the
 * server's address by an injected resolver and allow-listed (the address checks themselves are
 * outbound.test.ts's subject). Each test proves reuse happens where it should, so a client that
 * never reuses, or always does, fails.
 */
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  createOutboundClient,
  OutboundError,
  type OutboundClient,
  type OutboundErrorKind,
  type OutboundOptions,
} from '../../src/oauth/outbound.ts'
import { forbidOffMachineConnections, type OffMachineGuard } from '../helpers/canary.ts'
import { TEST_TLS_CERT, TEST_TLS_KEY } from './tls-fixture.ts'

interface Seen {
  readonly path: string
  readonly host: string | undefined
  /** The client's port: one per TCP connection. */
  readonly port: number
  /** TLS only: the name the client sent in SNI. */
  readonly servername: string | undefined
}

interface Server {
  readonly port: number
  readonly seen: Seen[]
  /** Client ports of sockets open now. */
  open(): number[]
  /** Client ports of sockets that have closed. */
  readonly closed: Set<number>
  /** The most sockets open at once since the last `resetPeak()`. */
  readonly peak: number
  resetPeak(): void
  /** Client ports, in the order of the requests to `path`. */
  portsFor(path: string): number[]
  close(): Promise<void>
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void

/** The server's answers, by path. It never closes an idle connection itself (60 s). */
const routes: Record<string, Handler> = {
  '/ok': (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{"ok":true}')
  },
  '/slow': (_req, res) => {
    setTimeout(() => {
      res.writeHead(200)
      res.end('slow')
    }, 150)
  },
  // 256 KiB, announced or chunked: over any cap below.
  '/big': (_req, res) => {
    res.writeHead(200, { 'content-length': 256 * 1024 })
    res.end(Buffer.alloc(256 * 1024, 0x20))
  },
  '/big-chunked': (_req, res) => {
    res.writeHead(200)
    for (let i = 0; i < 4; i++) res.write(Buffer.alloc(64 * 1024, 0x20))
    res.end()
  },
  // Headers and a first byte, then a byte every 50 ms, never the end.
  '/trickle': (_req, res) => {
    res.writeHead(200)
    res.write('{')
    const timer = setInterval(() => res.write(' '), 50)
    res.on('close', () => clearInterval(timer))
  },
  '/hang': () => {},
  // The server asks for a short keep-alive (3 s): the client must close before it.
  '/short-hint': (_req, res) => {
    res.writeHead(200, { 'keep-alive': 'timeout=3' })
    res.end('hint')
  },
}

async function startServer(tlsOptions?: { key: string; cert: string }): Promise<Server> {
  const seen: Seen[] = []
  const sockets = new Map<number, Socket>()
  const closed = new Set<number>()
  let peak = 0
  const listener: http.RequestListener = (req, res) => {
    seen.push({
      path: req.url ?? '',
      host: req.headers.host,
      port: req.socket.remotePort ?? -1,
      servername: tlsOptions ? ((req.socket as TLSSocket).servername as string) : undefined,
    })
    res.on('error', () => {})
    const route = routes[req.url ?? '']
    if (route === undefined) {
      res.writeHead(404)
      res.end()
      return
    }
    req.resume()
    route(req, res)
  }
  const server = tlsOptions ? https.createServer(tlsOptions, listener) : http.createServer(listener)
  server.keepAliveTimeout = 60_000
  server.prependListener('connection', (socket: Socket) => {
    const port = socket.remotePort ?? -1
    sockets.set(port, socket)
    peak = Math.max(peak, sockets.size)
    socket.on('error', () => {})
    socket.on('close', () => {
      sockets.delete(port)
      closed.add(port)
    })
  })
  server.on('tlsClientError', () => {})
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    open: () => [...sockets.keys()],
    closed,
    get peak() {
      return peak
    },
    resetPeak: () => (peak = sockets.size),
    portsFor: (path) => seen.filter((s) => s.path === path).map((s) => s.port),
    async close() {
      for (const socket of sockets.values()) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Waits for `condition`, failing after `ms`. */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const HOSTS = ['a.provider.test', 'b.provider.test', 'c.provider.test']

let guard: OffMachineGuard
let server: Server
const clients: OutboundClient[] = []
let lookups: string[] = []

/** Every name in HOSTS resolves to the server (127.0.0.1) and is allow-listed. */
function client(options: Partial<OutboundOptions> = {}): OutboundClient {
  const c = createOutboundClient({
    allowHosts: HOSTS,
    resolver: async (host) => {
      lookups.push(host)
      return ['127.0.0.1']
    },
    ...options,
  })
  clients.push(c)
  return c
}

const url = (host: string, path: string, s: Server = server) => `http://${host}:${s.port}${path}`
const get = (c: OutboundClient, host: string, path: string, extra: object = {}) =>
  c.request(url(host, path), { maxResponseBytes: 1024, ...extra })

async function failure(call: Promise<unknown>): Promise<OutboundErrorKind> {
  try {
    await call
  } catch (e) {
    if (e instanceof OutboundError) return e.kind
    throw e
  }
  throw new Error('the call succeeded but should have failed')
}

beforeAll(async () => {
  guard = forbidOffMachineConnections()
  server = await startServer()
})

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()))
  lookups = []
  expect(guard.attempts).toEqual([])
  await until(() => server.open().length === 0, 1000, 'every socket closed after close()')
})

afterAll(async () => {
  await server.close()
  guard.restore()
})

describe('reuse', () => {
  it('carries consecutive calls to one origin on one connection', async () => {
    const c = client()
    expect((await get(c, 'a.provider.test', '/ok')).status).toBe(200)
    expect((await get(c, 'a.provider.test', '/ok')).status).toBe(200)
    const [first, second] = server.portsFor('/ok').slice(-2)
    expect(second).toBe(first)
    expect(server.closed.has(first!)).toBe(false)
  })

  it('still resolves and checks the host on every call, pooled socket or not', async () => {
    const c = client()
    await get(c, 'a.provider.test', '/ok')
    await get(c, 'a.provider.test', '/ok')
    expect(lookups).toEqual(['a.provider.test', 'a.provider.test'])
  })
})

describe('one pool per origin', () => {
  it('never sends a request for host B over host A’s socket, though both resolve alike', async () => {
    const c = client()
    const from = server.seen.length
    for (let i = 0; i < 3; i++) {
      await get(c, 'a.provider.test', '/ok')
      await get(c, 'b.provider.test', '/ok')
    }
    await Promise.all(
      [...Array(4)].flatMap(() => [
        get(c, 'a.provider.test', '/slow'),
        get(c, 'b.provider.test', '/slow'),
      ]),
    )
    const seen = server.seen.slice(from)
    const portsOf = (host: string) => {
      const mine = seen.filter((s) => s.host === `${host}:${server.port}`)
      expect(mine).toHaveLength(7)
      return new Set(mine.map((s) => s.port))
    }
    const a = portsOf('a.provider.test')
    const b = portsOf('b.provider.test')
    expect([...a].filter((p) => b.has(p))).toEqual([])
    // Reuse did happen within each origin (the three sequential calls shared a socket).
    const sequentialA = seen.filter((s) => s.path === '/ok' && s.host?.startsWith('a.'))
    expect(new Set(sequentialA.map((s) => s.port)).size).toBe(1)
  })

  it('sends its own Host, not a caller’s, over an origin’s socket', async () => {
    const c = client()
    await get(c, 'a.provider.test', '/ok', { headers: { Host: 'b.provider.test' } })
    expect(server.seen.at(-1)?.host).toBe(`a.provider.test:${server.port}`)
  })

  it('treats spellings of one origin as one (case), and ports as different origins', async () => {
    const other = await startServer()
    try {
      const c = client()
      await get(c, 'a.provider.test', '/ok')
      await get(c, 'A.Provider.Test', '/ok')
      expect(new Set(server.portsFor('/ok').slice(-2)).size).toBe(1)
      await c.request(url('a.provider.test', '/ok', other), { maxResponseBytes: 64 })
      expect(other.seen).toHaveLength(1)
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.close()))
      await other.close()
    }
  })
})

describe('limits', () => {
  it('closes an idle socket after keepAliveTimeoutMs, then connects afresh', async () => {
    const c = client({ keepAliveTimeoutMs: 200 })
    await get(c, 'a.provider.test', '/ok')
    const port = server.portsFor('/ok').at(-1)!
    expect(server.open()).toContain(port)
    const started = Date.now()
    await until(() => server.closed.has(port), 2000, 'the idle socket closed')
    // Closed by the client's timer: the server keeps idle sockets for 60 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(100)
    await get(c, 'a.provider.test', '/ok')
    expect(server.portsFor('/ok').at(-1)).not.toBe(port)
  })

  it('closes sooner when the server’s Keep-Alive hint is shorter', async () => {
    const c = client({ keepAliveTimeoutMs: 30_000 })
    await get(c, 'a.provider.test', '/short-hint')
    const port = server.portsFor('/short-hint').at(-1)!
    // undici keeps 2 s of margin below the hint: about 1 s here, not 30.
    await until(() => server.closed.has(port), 3000, 'the socket closed before the hint')
  })

  it('closes the least recently used origin’s pool past maxPooledOrigins', async () => {
    const c = client({ maxPooledOrigins: 2 })
    await get(c, 'a.provider.test', '/ok')
    const a = server.portsFor('/ok').at(-1)!
    await get(c, 'b.provider.test', '/ok')
    const b = server.portsFor('/ok').at(-1)!
    await get(c, 'a.provider.test', '/ok') // a is now more recent than b
    expect(server.portsFor('/ok').at(-1)).toBe(a)
    await get(c, 'c.provider.test', '/ok') // a third origin: b's pool goes
    await until(() => server.closed.has(b), 1000, 'b’s socket closed')
    expect(server.closed.has(a)).toBe(false)
    await get(c, 'a.provider.test', '/ok')
    expect(server.portsFor('/ok').at(-1)).toBe(a)
    await get(c, 'b.provider.test', '/ok')
    expect(server.portsFor('/ok').at(-1)).not.toBe(b)
  })

  it('opens at most connectionsPerOrigin sockets; further calls wait for one', async () => {
    const c = client({ connectionsPerOrigin: 2 })
    server.resetPeak()
    const from = server.seen.length
    const answers = await Promise.all([...Array(6)].map(() => get(c, 'a.provider.test', '/slow')))
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200])
    expect(new Set(server.seen.slice(from).map((s) => s.port)).size).toBe(2)
    expect(server.peak).toBeLessThanOrEqual(2)
  })
})

describe('a failed call leaves no socket to reuse', () => {
  /** A good call, the failing call on the same (pooled) socket, then a good call. */
  async function afterFailure(
    options: Partial<OutboundOptions>,
    failing: (c: OutboundClient) => Promise<unknown>,
  ): Promise<OutboundErrorKind> {
    const c = client(options)
    await get(c, 'a.provider.test', '/ok')
    const pooled = server.portsFor('/ok').at(-1)!
    const from = server.seen.length
    const kind = await failure(failing(c))
    // The failing request rode the pooled socket (so the test is about that socket)...
    expect(server.seen[from]?.port).toBe(pooled)
    // ...which the client destroyed, leaving no other socket behind (undici reconnects for an
    // aborted request), and the next call connects afresh.
    await until(() => server.closed.has(pooled), 1000, 'the failed call’s socket closed')
    await until(() => server.open().length === 0, 1000, 'no socket left after the failure')
    await get(c, 'a.provider.test', '/ok')
    expect(server.portsFor('/ok').at(-1)).not.toBe(pooled)
    return kind
  }

  it.each(['/big', '/big-chunked'])('an answer over the cap (%s)', async (path) => {
    const kind = await afterFailure({}, (c) => get(c, 'a.provider.test', path))
    expect(kind).toBe('too_large')
  })

  it('the deadline hit mid-body', async () => {
    const kind = await afterFailure({}, (c) =>
      get(c, 'a.provider.test', '/trickle', { deadlineMs: 200 }),
    )
    expect(kind).toBe('timeout')
  })

  it('the headers timeout', async () => {
    const kind = await afterFailure({ headersTimeoutMs: 200 }, (c) =>
      get(c, 'a.provider.test', '/hang'),
    )
    expect(kind).toBe('timeout')
  })

  it.each(['/trickle', '/hang'])('the caller’s AbortSignal (%s)', async (path) => {
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 100)
    const kind = await afterFailure({}, (c) =>
      get(c, 'a.provider.test', path, { signal: controller.signal }),
    )
    expect(kind).toBe('aborted')
  })
})

describe('a failed call and the calls beside it', () => {
  it('lets a call in flight on the same origin finish, and pools afresh after', async () => {
    const c = client()
    const slow = get(c, 'a.provider.test', '/slow')
    await until(() => server.portsFor('/slow').length > 0, 1000, 'the slow call sent')
    expect(await failure(get(c, 'a.provider.test', '/big'))).toBe('too_large')
    expect((await slow).status).toBe(200)
    await get(c, 'a.provider.test', '/ok')
    await get(c, 'a.provider.test', '/ok')
    const [first, second] = server.portsFor('/ok').slice(-2)
    expect(second).toBe(first)
    expect(first).not.toBe(server.portsFor('/slow').at(-1))
  })
})

describe('close()', () => {
  it('destroys every pooled socket at once, and refuses calls afterwards', async () => {
    const c = client()
    await get(c, 'a.provider.test', '/ok')
    await get(c, 'b.provider.test', '/ok')
    expect(server.open().length).toBeGreaterThanOrEqual(2)
    await c.close()
    await until(() => server.open().length === 0, 500, 'no socket open after close()')
    expect(await failure(get(c, 'a.provider.test', '/ok'))).toBe('aborted')
  })
})

describe('TLS', () => {
  let tlsServer: Server
  beforeAll(async () => {
    tlsServer = await startServer({ key: TEST_TLS_KEY, cert: TEST_TLS_CERT })
  })
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()))
    await until(() => tlsServer.open().length === 0, 1000, 'every TLS socket closed')
  })
  afterAll(() => tlsServer.close())

  const tlsGet = (c: OutboundClient, host: string) =>
    c.request(`https://${host}:${tlsServer.port}/ok`, { maxResponseBytes: 64 })

  it('reuses a TLS connection per host name, each with its own SNI', async () => {
    const c = client({ ca: TEST_TLS_CERT })
    for (let i = 0; i < 2; i++) {
      await tlsGet(c, 'a.provider.test')
      await tlsGet(c, 'b.provider.test')
    }
    const [a1, b1, a2, b2] = tlsServer.seen.slice(-4)
    expect(a2!.port).toBe(a1!.port)
    expect(b2!.port).toBe(b1!.port)
    expect(b1!.port).not.toBe(a1!.port)
    expect([a1, a2].map((s) => s!.servername)).toEqual(['a.provider.test', 'a.provider.test'])
    expect([b1, b2].map((s) => s!.servername)).toEqual(['b.provider.test', 'b.provider.test'])
  })

  it('shares no pool between clients: one without the CA still fails after one with it', async () => {
    await tlsGet(client({ ca: TEST_TLS_CERT }), 'a.provider.test')
    expect(await failure(tlsGet(client(), 'a.provider.test'))).toBe('tls_failed')
  })
})
