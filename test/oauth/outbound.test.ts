/**
 * The outbound client against real sockets: a scriptable fake provider and a canary listener on
 * loopback, no HTTP mocking. Every refused call asserts zero canary hits; every call asserts it
 * ended within its deadline plus a second and left no socket open on the server side.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  createOutboundClient,
  decodeUtf8Strict,
  OutboundError,
  parseJsonObject,
  type OutboundClient,
  type OutboundErrorKind,
  type OutboundOptions,
  type OutboundResponse,
} from '../../src/oauth/outbound.ts'
import {
  forbidOffMachineConnections,
  startCanary,
  type Canary,
  type OffMachineGuard,
} from '../helpers/canary.ts'
import {
  dropConnection,
  flood,
  hang,
  json,
  raw,
  redirect,
  startFakeProvider,
  trickle,
  type FakeProvider,
} from '../helpers/fake-provider.ts'
import { TEST_TLS_CERT, TEST_TLS_KEY } from './tls-fixture.ts'

/**
 * Timing tests run with short limits so the suite stays fast; every other client keeps the
 * production defaults, so a loaded CI machine cannot turn a good answer into a timeout.
 */
const DEADLINE_MS = 600
const FAST: Omit<OutboundOptions, 'allowHosts'> = {
  connectTimeoutMs: 300,
  headersTimeoutMs: 300,
  deadlineMs: DEADLINE_MS,
}

let guard: OffMachineGuard
let canary: Canary
let idp: FakeProvider
const clients: OutboundClient[] = []

function client(options: Partial<OutboundOptions> = {}): OutboundClient {
  const c = createOutboundClient({ allowHosts: [], ...options })
  clients.push(c)
  return c
}

/** Runs a call that must fail, and returns its error kind and how long it took. */
async function failure(
  call: Promise<OutboundResponse>,
): Promise<{ kind: OutboundErrorKind; message: string; detail: string; ms: number }> {
  const started = Date.now()
  try {
    await call
  } catch (e) {
    if (!(e instanceof OutboundError)) throw e
    return { kind: e.kind, message: e.message, detail: e.detail, ms: Date.now() - started }
  }
  throw new Error('the call succeeded but should have failed')
}

const text = (res: OutboundResponse) => new TextDecoder().decode(res.body)

beforeAll(async () => {
  guard = forbidOffMachineConnections()
  canary = await startCanary()
  idp = await startFakeProvider()
})

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()))
  expect(guard.attempts).toEqual([])
  expect(canary.hits).toBe(0)
  idp.assertAllCalled()
  await idp.waitForNoOpenSockets()
})

afterAll(async () => {
  await idp.close()
  await canary.close()
  guard.restore()
})

describe('addresses that are refused at connect time', () => {
  // Spellings of this machine's own addresses; the canary listens on 127.0.0.1 and ::1.
  const loopbackForms = [
    '127.0.0.1',
    '2130706433',
    '0x7f000001',
    '0x7f.1',
    '0177.0.0.1',
    '017700000001',
    '127.1',
    '127.0.1',
    '127.000.000.001',
    '0.0.0.0',
    '0',
    '[::1]',
    '[0:0:0:0:0:0:0:1]',
    '[::]',
    '[::ffff:127.0.0.1]',
    '[::ffff:7f00:1]',
    '[::127.0.0.1]',
    '[64:ff9b::7f00:1]',
    'localhost',
  ]
  it.each(loopbackForms)('https://%s is refused and the canary is not hit', async (host) => {
    const r = await failure(
      client().request(`https://${host}:${canary.port}/token`, { maxResponseBytes: 1024 }),
    )
    expect(r.kind).toBe('blocked_address')
    expect(r.message).toMatch(/not in OUTBOUND_ALLOW_HOSTS/)
    expect(r.ms).toBeLessThan(DEADLINE_MS + 1000)
  })

  it('refuses localhost. (absolute name) too, by address or because it does not resolve', async () => {
    const r = await failure(
      client().request(`https://LOCALHOST.:${canary.port}/`, { maxResponseBytes: 1 }),
    )
    expect(['blocked_address', 'connection_failed']).toContain(r.kind)
  })

  // Not on this machine: the off-machine guard proves nothing would have been sent.
  const remoteForms = [
    ['10.0.0.5', 'a private address'],
    ['172.16.0.1', 'a private address'],
    ['192.168.1.1', 'a private address'],
    ['100.64.0.1', 'a carrier-grade NAT address'],
    ['169.254.169.254', 'a link-local address'],
    ['[fd00:ec2::254]', 'a unique local IPv6 address'],
    ['[fc00::1]', 'a unique local IPv6 address'],
    ['[fe80::1]', 'a link-local address'],
    ['[64:ff9b::a00:5]', 'a NAT64 address'],
    ['[2002:a00:5::1]', 'a 6to4 address'],
    ['198.18.0.1', 'a benchmarking address'],
    ['192.0.2.1', 'a documentation address'],
    ['224.0.0.1', 'a multicast address'],
    ['255.255.255.255', 'the broadcast address'],
    ['240.0.0.1', 'a reserved address'],
  ]
  it.each(remoteForms)('https://%s is refused as %s', async (host, what) => {
    const r = await failure(client().request(`https://${host}/token`, { maxResponseBytes: 1024 }))
    expect(r.kind).toBe('blocked_address')
    expect(r.message).toContain(what)
  })

  it('refuses a name that resolves to loopback (nip.io style), without a second lookup', async () => {
    const asked: string[] = []
    const c = client({
      resolver: async (host) => {
        asked.push(host)
        return ['127.0.0.1']
      },
    })
    const r = await failure(
      c.request(`https://app.127.0.0.1.nip.io:${canary.port}/`, { maxResponseBytes: 1024 }),
    )
    expect(r.kind).toBe('blocked_address')
    expect(r.message).toBe(
      'host app.127.0.0.1.nip.io resolves to an address that is not a public address, and the host is not in OUTBOUND_ALLOW_HOSTS',
    )
    // The resolved address is for the log only.
    expect(r.detail).toBe('app.127.0.0.1.nip.io resolves to 127.0.0.1, a loopback address')
    expect(asked).toEqual(['app.127.0.0.1.nip.io'])
  })

  it('refuses a name when any one of its addresses is private', async () => {
    const c = client({ resolver: async () => ['93.184.216.34', '10.0.0.7'] })
    const r = await failure(c.request('https://mixed.example/', { maxResponseBytes: 1024 }))
    expect(r.kind).toBe('blocked_address')
    expect(r.message).not.toContain('10.0.0.7')
    expect(r.detail).toBe('mixed.example resolves to 10.0.0.7, a private address')
  })

  it('refuses an IPv6 zone id as an invalid URL', async () => {
    const r = await failure(
      client().request(`https://[fe80::1%25lo]:${canary.port}/`, { maxResponseBytes: 1 }),
    )
    expect(r.kind).toBe('invalid_url')
  })

  it('reports a name that does not resolve as a connection failure', async () => {
    const c = client({
      resolver: async () => {
        throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' })
      },
    })
    const r = await failure(c.request('https://nowhere.example/', { maxResponseBytes: 1 }))
    expect(r.kind).toBe('connection_failed')
  })

  it('gives up on a resolver that never answers at the connect timeout', async () => {
    const c = client({ ...FAST, resolver: () => new Promise(() => {}) })
    const r = await failure(c.request('https://slow-dns.example/', { maxResponseBytes: 1 }))
    expect(r.kind).toBe('timeout')
    expect(r.ms).toBeLessThan(DEADLINE_MS + 1000)
  })
})

describe('plain http and the allow list', () => {
  it('refuses http to a host that is not allow-listed, before connecting', async () => {
    const r = await failure(
      client().request(`http://127.0.0.1:${canary.port}/`, { maxResponseBytes: 1 }),
    )
    expect(r.kind).toBe('insecure_http')
  })

  it('refuses schemes other than http(s) and URLs with credentials', async () => {
    expect(
      (await failure(client().request('ftp://example.com/', { maxResponseBytes: 1 }))).kind,
    ).toBe('invalid_url')
    const withCredentials = `http://user:pw@127.0.0.1:${idp.port}/`
    const c = client({ allowHosts: ['127.0.0.1'] })
    expect((await failure(c.request(withCredentials, { maxResponseBytes: 1 }))).kind).toBe(
      'invalid_url',
    )
  })

  it('reaches an allow-listed host over http (any port when the entry has none)', async () => {
    idp.on('GET', '/hello', json({ hello: 'world' }))
    const res = await client({ allowHosts: ['127.0.0.1'] }).request(idp.url('/hello'), {
      maxResponseBytes: 1024,
    })
    expect(res.status).toBe(200)
    expect(text(res)).toBe('{"hello":"world"}')
  })

  it('matches allow-list entries normalised: case, other IPv4 spellings, port', async () => {
    idp.on('GET', '/a', json({}), { times: 2 })
    await client({ allowHosts: ['0x7f.1'] }).request(idp.url('/a'), { maxResponseBytes: 64 })
    await client({ allowHosts: [`127.0.0.1:${idp.port}`] }).request(idp.url('/a'), {
      maxResponseBytes: 64,
    })
    const otherPort = client({ allowHosts: ['127.0.0.1:1'] })
    expect((await failure(otherPort.request(idp.url('/a'), { maxResponseBytes: 64 }))).kind).toBe(
      'insecure_http',
    )
  })

  it('reaches an allow-listed name through the system resolver', async () => {
    idp.on('GET', '/by-name', json({}))
    const res = await client({ allowHosts: ['LocalHost'] }).request(
      `http://localhost:${idp.port}/by-name`,
      { maxResponseBytes: 64 },
    )
    expect(res.status).toBe(200)
  })

  it('tries the next checked address when the first refuses the connection', async () => {
    idp.on('GET', '/second', json({}))
    const c = client({ allowHosts: ['two.example'], resolver: async () => ['::1', '127.0.0.1'] })
    // Nothing listens on ::1 at the provider's port (the canary's ::1 listener has another port).
    const res = await c.request(`http://two.example:${idp.port}/second`, { maxResponseBytes: 64 })
    expect(res.status).toBe(200)
  })

  it('ignores proxy environment variables', async () => {
    const saved = { ...process.env }
    const proxy = `http://127.0.0.1:${canary.port}`
    Object.assign(process.env, {
      HTTP_PROXY: proxy,
      HTTPS_PROXY: proxy,
      ALL_PROXY: proxy,
      http_proxy: proxy,
    })
    try {
      idp.on('GET', '/direct', json({}))
      const res = await client({ allowHosts: ['127.0.0.1'] }).request(idp.url('/direct'), {
        maxResponseBytes: 64,
      })
      expect(res.status).toBe(200)
    } finally {
      for (const key of ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy']) {
        if (saved[key] === undefined) delete process.env[key]
        else process.env[key] = saved[key]
      }
    }
  })
})

describe('DNS rebinding and TLS on a pinned address', () => {
  let tlsIdp: FakeProvider
  let sameP: Canary

  beforeAll(async () => {
    // The "public" provider on 127.0.0.2, the canary on 127.0.0.1 with the same port: a second
    // lookup that answers 127.0.0.1 would hit the canary.
    tlsIdp = await startFakeProvider({
      host: '127.0.0.2',
      tls: { key: TEST_TLS_KEY, cert: TEST_TLS_CERT },
    })
    sameP = await startCanary({ hosts: ['127.0.0.1'], port: tlsIdp.port })
  })

  afterEach(async () => {
    // Runs before the outer afterEach: close the clients first, or a good call's pooled
    // (keep-alive) socket would still be open here.
    await Promise.all(clients.splice(0).map((c) => c.close()))
    expect(sameP.hits).toBe(0)
    tlsIdp.assertAllCalled()
    await tlsIdp.waitForNoOpenSockets()
  })

  afterAll(async () => {
    await tlsIdp.close()
    await sameP.close()
  })

  /** Test-only policy: 127.0.0.2 plays a public address. */
  const isPublicAddress = (ip: string) => ip === '127.0.0.2'

  it('connects to the address it checked, once, whatever later lookups say', async () => {
    const answers = [['127.0.0.2'], ['127.0.0.1'], ['127.0.0.1']]
    let lookups = 0
    const c = client({
      isPublicAddress,
      ca: TEST_TLS_CERT,
      resolver: async () => answers[Math.min(lookups++, answers.length - 1)]!,
    })
    tlsIdp.on('GET', '/whoami', json({ sub: '1' }))
    const url = `https://rebind.provider.test:${tlsIdp.port}/whoami`
    const res = await c.request(url, { maxResponseBytes: 1024 })
    expect(res.status).toBe(200)
    expect(lookups).toBe(1)
    expect(tlsIdp.requests.at(-1)?.headers.host).toBe(`rebind.provider.test:${tlsIdp.port}`)
    // The next call resolves again (a new connection), gets the private answer and is refused.
    const second = await failure(c.request(url, { maxResponseBytes: 1024 }))
    expect(second.kind).toBe('blocked_address')
    expect(lookups).toBe(2)
  })

  it('refuses when the answer mixes a public and a private address', async () => {
    const c = client({
      isPublicAddress,
      ca: TEST_TLS_CERT,
      resolver: async () => ['127.0.0.2', '127.0.0.1'],
    })
    const before = tlsIdp.connections
    const r = await failure(
      c.request(`https://mix.provider.test:${tlsIdp.port}/`, { maxResponseBytes: 64 }),
    )
    expect(r.kind).toBe('blocked_address')
    expect(tlsIdp.connections).toBe(before)
  })

  it('verifies the certificate against the host name, not the pinned IP', async () => {
    const c = client({ isPublicAddress, ca: TEST_TLS_CERT, resolver: async () => ['127.0.0.2'] })
    const r = await failure(
      c.request(`https://wrong-name.example:${tlsIdp.port}/`, { maxResponseBytes: 64 }),
    )
    expect(r.kind).toBe('tls_failed')
  })

  it('does not trust a self-signed certificate without the test CA', async () => {
    const c = client({ isPublicAddress, resolver: async () => ['127.0.0.2'] })
    const r = await failure(
      c.request(`https://ok.provider.test:${tlsIdp.port}/`, { maxResponseBytes: 64 }),
    )
    expect(r.kind).toBe('tls_failed')
  })
})

describe('hostile answers', () => {
  const allowed = () => client({ allowHosts: ['127.0.0.1'] })
  const allowedFast = () => client({ allowHosts: ['127.0.0.1'], ...FAST })

  it('returns a redirect as it is and does not follow it', async () => {
    idp.on('POST', '/token', redirect(`https://127.0.0.1:${canary.port}/steal`, 307))
    const res = await allowed().request(idp.url('/token'), {
      method: 'POST',
      body: 'code=x',
      maxResponseBytes: 1024,
    })
    expect(res.status).toBe(307)
    expect(res.headers.get('location')).toBe(`https://127.0.0.1:${canary.port}/steal`)
    expect(idp.requests.at(-1)?.path).toBe('/token')
  })

  it('times out on an endpoint that never answers', async () => {
    idp.on('POST', '/token', hang())
    const r = await failure(
      allowedFast().request(idp.url('/token'), { method: 'POST', maxResponseBytes: 1024 }),
    )
    expect(r.kind).toBe('timeout')
    // The header timer (300 ms, undici's coarse clock) or the deadline (600 ms), whichever fires.
    expect(r.ms).toBeGreaterThanOrEqual(FAST.headersTimeoutMs! - 50)
    expect(r.ms).toBeLessThan(DEADLINE_MS + 1000)
  })

  it('times out on a body that trickles in, whatever the pause timer says', async () => {
    idp.on('POST', '/token', trickle({ intervalMs: 100 }))
    const r = await failure(
      allowedFast().request(idp.url('/token'), { method: 'POST', maxResponseBytes: 1024 }),
    )
    expect(r.kind).toBe('timeout')
    expect(r.message).toBe(`no complete answer within ${DEADLINE_MS} ms`)
    expect(r.ms).toBeLessThan(DEADLINE_MS + 1000)
  })

  it('honours a shorter per-call deadline', async () => {
    idp.on('GET', '/slow', hang())
    const r = await failure(
      allowed().request(idp.url('/slow'), { maxResponseBytes: 1, deadlineMs: 150 }),
    )
    expect(r.kind).toBe('timeout')
    expect(r.ms).toBeLessThan(500)
  })

  it.each([
    ['chunked, no Content-Length', {}],
    ['an honest Content-Length', { contentLength: 50 * 1024 * 1024 }],
  ])('stops a 50 MB answer at the cap (%s)', async (_name, extra) => {
    idp.on('POST', '/token', flood({ totalBytes: 50 * 1024 * 1024, ...extra }))
    const r = await failure(
      allowed().request(idp.url('/token'), { method: 'POST', maxResponseBytes: 64 * 1024 }),
    )
    expect(r.kind).toBe('too_large')
    expect(r.message).toBe('the answer is larger than 65536 bytes')
    expect(r.ms).toBeLessThan(1000)
  })

  it('reads no more than Content-Length says when it lies low, and closes the connection', async () => {
    idp.on('POST', '/token', flood({ totalBytes: 50 * 1024 * 1024, contentLength: 10 }))
    const res = await allowed().request(idp.url('/token'), {
      method: 'POST',
      maxResponseBytes: 64 * 1024,
    })
    expect(res.body).toHaveLength(10)
  })

  it('reports a connection closed mid-request as a connection failure', async () => {
    idp.on('GET', '/reset', dropConnection())
    const r = await failure(allowed().request(idp.url('/reset'), { maxResponseBytes: 64 }))
    expect(r.kind).toBe('connection_failed')
  })

  it('reports a refused connection as a connection failure', async () => {
    const closed = await startFakeProvider()
    const url = closed.url('/')
    await closed.close()
    const r = await failure(allowed().request(url, { maxResponseBytes: 64 }))
    expect(r.kind).toBe('connection_failed')
  })

  it('stops when the caller cancels', async () => {
    idp.on('GET', '/cancel', hang())
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 50)
    const r = await failure(
      allowed().request(idp.url('/cancel'), { maxResponseBytes: 64, signal: controller.signal }),
    )
    expect(r.kind).toBe('aborted')
    expect(r.ms).toBeLessThan(500)
  })

  it('close() ends calls in flight', async () => {
    idp.on('GET', '/inflight', hang())
    const c = allowed()
    const pending = failure(c.request(idp.url('/inflight'), { maxResponseBytes: 64 }))
    await new Promise((r) => setTimeout(r, 50))
    await c.close()
    expect((await pending).ms).toBeLessThan(300)
  })
})

describe('fetch for oauth4webapi', () => {
  it('sends form bodies and headers and returns a Response with status, headers and body', async () => {
    idp.on(
      'POST',
      '/token',
      raw('{"ok":true}', { status: 201, headers: { 'content-type': 'text/plain', 'x-a': '1' } }),
    )
    const fetchFn = client({ allowHosts: ['127.0.0.1'] }).fetch
    const res = await fetchFn(idp.url('/token'), {
      method: 'POST',
      headers: { accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: 'c' }),
      redirect: 'manual',
    })
    expect(res).toBeInstanceOf(Response)
    expect(res.status).toBe(201)
    expect(res.headers.get('x-a')).toBe('1')
    expect(await res.text()).toBe('{"ok":true}')
    const seen = idp.requests.at(-1)!
    expect(seen.headers['content-type']).toBe('application/x-www-form-urlencoded;charset=UTF-8')
    expect(seen.headers.accept).toBe('application/json')
    expect(seen.form.get('code')).toBe('c')
  })

  it('throws OutboundError through fetch as well', async () => {
    const fetchFn = client().fetch
    await expect(fetchFn(`https://127.0.0.1:${canary.port}/`)).rejects.toMatchObject({
      name: 'OutboundError',
      kind: 'blocked_address',
    })
  })

  it('gives 204 an empty body', async () => {
    idp.on('GET', '/empty', raw('', { status: 204 }))
    const res = await client({ allowHosts: ['127.0.0.1'] }).fetch(idp.url('/empty'))
    expect(res.status).toBe(204)
    expect(res.body).toBeNull()
  })
})

describe('strict decoding', () => {
  const bytes = (...b: number[]) => new Uint8Array(b)

  it('refuses invalid UTF-8 and UTF-16, and drops a UTF-8 BOM', () => {
    expect(decodeUtf8Strict(bytes(0x7b, 0xc3, 0x28, 0x7d))).toBeNull()
    expect(decodeUtf8Strict(bytes(0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00))).toBeNull()
    expect(decodeUtf8Strict(bytes(0xef, 0xbb, 0xbf, 0x7b, 0x7d))).toBe('{}')
    expect(decodeUtf8Strict(new TextEncoder().encode('{"n":"Zoë 山田"}'))).toBe('{"n":"Zoë 山田"}')
  })

  it('accepts only a JSON object at the top level', () => {
    for (const t of ['[]', '"str"', 'null', '1', 'true'])
      expect(parseJsonObject(t)).toEqual({ ok: false, error: 'not_object' })
    for (const t of ['', '{', '<html>', '{"a":1}x'])
      expect(parseJsonObject(t)).toEqual({ ok: false, error: 'not_json' })
    expect(parseJsonObject('{"a":[1,{"b":2}]}')).toEqual({ ok: true, value: { a: [1, { b: 2 }] } })
  })

  it('refuses deep nesting before parsing, counting brackets outside strings only', () => {
    const deep = `{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`
    expect(parseJsonObject(deep)).toEqual({ ok: false, error: 'too_deep' })
    expect(parseJsonObject(`{"a":"${'['.repeat(1000)}"}`).ok).toBe(true)
    // The bound is core/json-limits.ts's WhoAmI depth: `{}` is depth 1.
    expect(parseJsonObject(`{"a":${'['.repeat(63)}${']'.repeat(63)}}`).ok).toBe(true)
    expect(parseJsonObject(`{"a":${'['.repeat(64)}${']'.repeat(64)}}`)).toEqual({
      ok: false,
      error: 'too_deep',
    })
    expect(parseJsonObject('{"a":[[1]]}', 2)).toEqual({ ok: false, error: 'too_deep' })
  })

  it('keeps __proto__ an ordinary key and builds objects without prototypes', () => {
    const r = parseJsonObject(
      '{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"x":1}},"sub":"1"}',
    )
    expect(r.ok && Object.keys(r.value)).toEqual(['__proto__', 'constructor', 'sub'])
    expect(r.ok && Object.getPrototypeOf(r.value)).toBeNull()
    expect(({} as { isAdmin?: boolean }).isAdmin).toBeUndefined()
    expect(({} as { x?: number }).x).toBeUndefined()
  })
})
