/**
 * The one HTTP client for tenants' URLs (token, WhoAmI, discovery, JWKS and webhooks). Rules it
 * enforces:
 *
 * - Its own undici dispatchers: never the global dispatcher, no proxy environment variables, no
 *   pool shared with internal calls (any of these would let a call bypass the address checks
 *   below).
 * - Connections are reused (keep-alive): a CPU profile under load showed a fresh TCP and TLS
 *   connection per call as a major cost. What keeps that safe:
 *   - One undici `Pool` per origin (scheme, host and port as the URL spells them after the checks
 *     below), per client: a pooled socket only ever carries requests for the host it was opened
 *     for, with that host's SNI and certificate check and this client's `ca`. A caller's `Host`
 *     header is dropped for the same reason.
 *   - Every call resolves and checks its host first (so whether a call is refused never depends on
 *     what happens to be pooled), and the pool's connector opens sockets only on addresses a
 *     check allowed.
 *   - `pipelining: 1`: no request queues behind another on a socket, so a failed answer takes no
 *     one else's request down with its socket.
 *   - A call that fails once sent (deadline, cancellation, size cap, timeout, broken connection,
 *     anything else) aborts its undici request, which destroys that socket, and retires the
 *     origin's pool: new calls get a new one, the old one closes when its other calls end. (undici
 *     reconnects for an aborted request before it notices the abort and keeps that new socket
 *     idle; an earlier shared `Agent` kept such sockets until it was destroyed.)
 *   - Bounds: idle sockets close after `keepAliveTimeoutMs` (default 4 s, and 2 s less than the
 *     server's own `Keep-Alive: timeout` hint when that is shorter, so we do not send on a
 *     socket the server is closing); at most `connectionsPerOrigin` sockets in an origin's pool
 *     (further calls queue, within their deadline); at most `maxPooledOrigins` pools, the least recently
 *     used one closed (after its calls in flight) when another origin comes. `close()` destroys
 *     every pool.
 * - Each call resolves the host once and is refused if any address is not public unicast; the
 *   pool's connector does no lookup of its own and opens sockets on the checked IP literals, so no
 *   second lookup can answer differently (DNS rebinding). IP literals, which undici's `lookup`
 *   hook would never see, go through the same check.
 * - Hosts in `OUTBOUND_ALLOW_HOSTS` are the only exception, and the only hosts reachable over plain
 *   `http`.
 * - Redirects are never followed: a 3xx comes back as it is (a redirect could lead to a
 *   host the address checks never saw, and would carry the request on).
 * - Time: a connect timeout (for DNS, then again for the TCP and TLS handshake), a headers timeout
 *   that also bounds each pause in the body (undici's coarse timers: up to ~1 s late), and a total
 *   deadline over the whole call, body included, which is exact.
 * - Size: the body is counted while it streams and the call fails past the cap, whatever
 *   `Content-Length` says (a lying or missing length cannot make us read more). Each call names
 *   its cap.
 *
 * Failures are thrown as `OutboundError` with a `kind`, so callers can turn them into failure codes.
 */
import { promises as dns } from 'node:dns'
import net from 'node:net'
import tls from 'node:tls'
import { buildConnector, Pool } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'
import {
  addressKind,
  describeAddressKind,
  isAllowListed as isAllowListedUrl,
  isAllowListedHost,
  isPublicUnicast,
  normaliseAllowHosts,
  type AllowedHost,
} from '../core/ip-address.ts'
import {
  findExcessiveNesting,
  isJsonObject,
  parseJsonBounded,
  WHOAMI_MAX_DEPTH,
  type JsonObject,
} from '../core/json-limits.ts'
import { err, ok, type Result } from '../core/result.ts'

export type OutboundErrorKind =
  | 'invalid_url'
  | 'insecure_http'
  | 'blocked_address'
  | 'timeout'
  | 'too_large'
  | 'connection_failed'
  | 'tls_failed'
  | 'invalid_response'
  | 'aborted'

export class OutboundError extends Error {
  readonly kind: OutboundErrorKind
  /** For the log line only: what the message must not say (e.g. the address a name resolved to). */
  readonly detail: string

  constructor(
    kind: OutboundErrorKind,
    message: string,
    options?: ErrorOptions & { readonly detail?: string },
  ) {
    super(message, options)
    this.name = 'OutboundError'
    this.kind = kind
    this.detail = options?.detail ?? ''
  }
}

/** Resolves a host name to its addresses (tests inject one; the default is the system resolver). */
export type Resolver = (hostname: string) => Promise<readonly string[]>

export interface OutboundOptions {
  /** `OUTBOUND_ALLOW_HOSTS` entries: `host` or `host:port` (see core/ip-address.ts). */
  readonly allowHosts: readonly string[]
  /** DNS resolution plus TCP (and TLS) handshake. Default 5 s. */
  readonly connectTimeoutMs?: number
  /** Until the response headers arrive, and the longest pause between body chunks. Default 5 s. */
  readonly headersTimeoutMs?: number
  /** The whole call, from the first DNS query to the last body byte. Default 10 s. */
  readonly deadlineMs?: number
  /** The cap of `fetch`; `fetchLike()` and `request()` name their own. Default 1 MiB. */
  readonly maxResponseBytes?: number
  readonly resolver?: Resolver
  /**
   * Decides which resolved or literal addresses may be called when the host is not allow-listed.
   * Only tests change it (to treat a second loopback address as "public" and prove that the
   * connection goes to the checked address); the default is `isPublicUnicast`.
   */
  readonly isPublicAddress?: (ip: string) => boolean
  /** Extra trust anchors (PEM) for TLS, e.g. a corporate CA; system roots stay trusted. */
  readonly ca?: string | readonly string[]
  /** How long a pooled socket may stay idle before the client closes it. Default 4 s. */
  readonly keepAliveTimeoutMs?: number
  /** Sockets per origin; more concurrent calls queue (within their deadline). Default 256. */
  readonly connectionsPerOrigin?: number
  /** Origins with a pool; past this the least recently used pool is closed. Default 64. */
  readonly maxPooledOrigins?: number
}

export const OUTBOUND_DEFAULTS = {
  connectTimeoutMs: 5_000,
  headersTimeoutMs: 5_000,
  deadlineMs: 10_000,
  maxResponseBytes: 1024 * 1024,
  keepAliveTimeoutMs: 4_000,
  // A slow provider must not make sign-ins queue behind each other (before pooling, every call had
  // a connection of its own): 256 calls at once per provider is hundreds of sign-ins a second
  // even where its token endpoint takes a second. Idle sockets close after keepAliveTimeoutMs, so
  // only a burst leaves many open, and for at most that long.
  connectionsPerOrigin: 256,
  maxPooledOrigins: 64,
} as const

export interface OutboundRequest {
  readonly method?: string
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: string | Uint8Array | null
  readonly maxResponseBytes: number
  /** Shorter than the client's deadline when a caller shares one budget across calls. */
  readonly deadlineMs?: number
  readonly signal?: AbortSignal | null
}

export interface OutboundResponse {
  readonly status: number
  readonly headers: Headers
  /** The whole body, at most `maxResponseBytes` long. */
  readonly body: Uint8Array<ArrayBuffer>
}

export interface FetchLimits {
  readonly maxResponseBytes: number
  readonly deadlineMs?: number
}

/** `fetch`'s arguments, the answer as the client read it (capped body, status, headers). */
export type FetchLike = (
  input: Parameters<typeof fetch>[0],
  init?: RequestInit,
) => Promise<OutboundResponse>

export interface OutboundClient {
  /** One call; throws `OutboundError`. */
  request(url: string | URL, init: OutboundRequest): Promise<OutboundResponse>
  /**
   * `fetch`'s arguments with its own response cap and deadline, answered with what the client
   * read rather than a Fetch Response: for oauth4webapi's `customFetch`, behind a caller that
   * reads the body itself (the token request's quirk table) and would only take it out again.
   */
  fetchLike(limits: FetchLimits): FetchLike
  /** A Fetch `fetch` over `fetchLike` with the client's default cap. */
  readonly fetch: typeof fetch
  /** The total deadline of one call, for callers that share a budget across calls. */
  readonly deadlineMs: number
  /** Whether plain http (and private addresses) are allowed for this URL's host and port. */
  isAllowListed(url: URL): boolean
  /** Destroys every pooled socket; calls in flight fail, and so does any later call. */
  close(): Promise<void>
}

const systemResolver: Resolver = async (hostname) =>
  (await dns.lookup(hostname, { all: true, verbatim: true })).map((a) => a.address)

export function createOutboundClient(options: OutboundOptions): OutboundClient {
  const allowHosts = normaliseAllowHosts(options.allowHosts)
  const connectTimeoutMs = options.connectTimeoutMs ?? OUTBOUND_DEFAULTS.connectTimeoutMs
  const headersTimeoutMs = options.headersTimeoutMs ?? OUTBOUND_DEFAULTS.headersTimeoutMs
  const deadlineMs = options.deadlineMs ?? OUTBOUND_DEFAULTS.deadlineMs
  const defaultCap = options.maxResponseBytes ?? OUTBOUND_DEFAULTS.maxResponseBytes
  const keepAliveMs = options.keepAliveTimeoutMs ?? OUTBOUND_DEFAULTS.keepAliveTimeoutMs
  const connections = options.connectionsPerOrigin ?? OUTBOUND_DEFAULTS.connectionsPerOrigin
  const maxOrigins = options.maxPooledOrigins ?? OUTBOUND_DEFAULTS.maxPooledOrigins

  const settings: ConnectorSettings = {
    allowHosts,
    connectTimeoutMs,
    resolver: options.resolver ?? systemResolver,
    isPublicAddress: options.isPublicAddress ?? isPublicUnicast,
  }
  const connectChecked = checkedConnector(connectTimeoutMs, options.ca)
  /** By origin, least recently used first (Map order). */
  const pools = new Map<string, OriginPool>()
  /** Pools pushed out of `pools`, closing once their calls in flight end. */
  const retiring = new Set<Pool>()
  const shutdown = new AbortController()

  const isAllowListed = (url: URL): boolean => isAllowListedUrl(url, allowHosts)

  function poolFor(origin: string): OriginPool {
    const found = pools.get(origin)
    if (found !== undefined) {
      pools.delete(origin)
      pools.set(origin, found)
      return found
    }
    const entry: OriginPool = {
      checked: [],
      retired: false,
      pool: new Pool(origin, {
        // Only the addresses the latest call to this origin checked, never a lookup of its own.
        connect: (opts, callback) => connectChecked(opts, entry.checked, callback),
        connections,
        pipelining: 1,
        keepAliveTimeout: keepAliveMs,
        keepAliveMaxTimeout: keepAliveMs,
        headersTimeout: headersTimeoutMs,
        bodyTimeout: headersTimeoutMs,
      }),
    }
    pools.set(origin, entry)
    for (const [oldest, old] of pools) {
      if (pools.size <= maxOrigins) break
      retire(oldest, old)
    }
    return entry
  }

  /** New calls get a new pool; this one closes once the calls it carries have ended. */
  function retire(origin: string, entry: OriginPool): void {
    if (pools.get(origin) === entry) pools.delete(origin)
    if (entry.retired) return
    entry.retired = true
    retiring.add(entry.pool)
    entry.pool
      .close()
      .catch(() => {})
      .finally(() => retiring.delete(entry.pool))
  }

  async function request(input: string | URL, init: OutboundRequest): Promise<OutboundResponse> {
    const url = checkUrl(input, isAllowListed)
    const budget = Math.min(init.deadlineMs ?? deadlineMs, deadlineMs)
    const controller = new AbortController()
    // Errors are built only when they happen: a stack trace costs more than the rest of a call.
    const timer = setTimeout(
      () =>
        controller.abort(new OutboundError('timeout', `no complete answer within ${budget} ms`)),
      budget,
    )
    const onCallerAbort = (): void =>
      controller.abort(new OutboundError('aborted', 'the call was cancelled'))
    const onShutdown = (): void =>
      controller.abort(new OutboundError('aborted', 'the outbound client was closed'))
    if (init.signal?.aborted) onCallerAbort()
    if (shutdown.signal.aborted) onShutdown()
    init.signal?.addEventListener('abort', onCallerAbort, { once: true })
    shutdown.signal.addEventListener('abort', onShutdown, { once: true })
    let dispatched: OriginPool | undefined
    try {
      const checked = await untilAborted(checkHost(url, settings), controller.signal)
      let entry = poolFor(url.origin)
      // undici hands a socket back to its pool one event-loop turn after its answer (so a server
      // that closes despite keep-alive is noticed first); a call made inside that turn would
      // open another connection instead of waiting that turn for this one.
      const stats = entry.pool.stats
      if (stats.free === 0 && stats.connected > stats.running) {
        await untilAborted(new Promise((resolve) => setImmediate(resolve)), controller.signal)
        entry = poolFor(url.origin)
      }
      entry.checked = checked
      dispatched = entry
      const res = await entry.pool.request({
        path: `${url.pathname}${url.search}`,
        method: (init.method ?? 'GET').toUpperCase(),
        headers: withoutHost(init.headers),
        body: init.body ?? null,
        signal: controller.signal,
      })
      const body = await readCapped(res.body, res.headers, init.maxResponseBytes)
      return { status: res.statusCode, headers: toHeaders(res.headers), body }
    } catch (error) {
      // undici destroys the socket of an aborted request, but its client then connects again
      // for that request before it notices the abort, and keeps the new socket idle. Retiring
      // the whole pool closes that one too, and leaves other calls in flight to finish.
      if (dispatched !== undefined) retire(url.origin, dispatched)
      throw classify(error, controller.signal)
    } finally {
      clearTimeout(timer)
      init.signal?.removeEventListener('abort', onCallerAbort)
      shutdown.signal.removeEventListener('abort', onShutdown)
    }
  }

  function fetchLike(limits: FetchLimits): FetchLike {
    return async (input, init) => {
      if (typeof input !== 'string' && !(input instanceof URL)) {
        throw new TypeError('the outbound fetch takes a URL, not a Request')
      }
      const headers = new Headers(init?.headers)
      const body = toBody(init?.body, headers)
      const res = await request(input, {
        method: init?.method ?? 'GET',
        headers: Object.fromEntries(headers),
        body,
        maxResponseBytes: limits.maxResponseBytes,
        ...(limits.deadlineMs !== undefined && { deadlineMs: limits.deadlineMs }),
        signal: init?.signal ?? null,
      })
      // What a Fetch Response could not hold is no answer (undici parses any three digits).
      if (res.status < 200 || res.status > 599) {
        throw new OutboundError('invalid_response', `HTTP status ${res.status} is not valid`)
      }
      return res
    }
  }

  const defaultFetch = fetchLike({ maxResponseBytes: defaultCap })

  return {
    request,
    fetchLike,
    fetch: async (input, init) => toResponse(await defaultFetch(input, init)),
    deadlineMs,
    isAllowListed,
    close: async () => {
      shutdown.abort()
      const all = [...[...pools.values()].map((e) => e.pool), ...retiring]
      pools.clear()
      retiring.clear()
      await Promise.all(all.map((pool) => pool.destroy()))
    },
  }
}

interface OriginPool {
  readonly pool: Pool
  /** What the latest call to this origin resolved and checked: new sockets go to these only. */
  checked: readonly string[]
  /** Out of `pools`: closing, or closed. */
  retired: boolean
}

/** The pool sets `host` from its origin; a caller's own would send another host over this socket. */
function withoutHost(
  headers: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers ?? {}).filter(([name]) => name.toLowerCase() !== 'host'),
  )
}

/** Settles like `promise`, or rejects with the signal's reason as soon as it aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    if (signal.aborted) onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

function checkUrl(input: string | URL, isAllowListed: (url: URL) => boolean): URL {
  let url: URL
  try {
    url = new URL(input)
  } catch {
    throw new OutboundError('invalid_url', 'not an absolute URL')
  }
  if (url.username !== '' || url.password !== '') {
    throw new OutboundError('invalid_url', 'the URL contains credentials')
  }
  if (url.protocol === 'https:') return url
  if (url.protocol === 'http:') {
    if (isAllowListed(url)) return url
    throw new OutboundError(
      'insecure_http',
      `plain http to ${url.host} refused: only hosts in OUTBOUND_ALLOW_HOSTS may use http`,
    )
  }
  throw new OutboundError('invalid_url', `scheme ${url.protocol} is not http(s)`)
}

interface ConnectorSettings {
  readonly allowHosts: readonly AllowedHost[]
  readonly connectTimeoutMs: number
  readonly resolver: Resolver
  readonly isPublicAddress: (ip: string) => boolean
}

/**
 * Resolves the URL's host once and checks every address (IP literals too); throws
 * `OutboundError` when any address is refused. The result is all a connection may use.
 */
async function checkHost(url: URL, settings: ConnectorSettings): Promise<readonly string[]> {
  const port = url.port || (url.protocol === 'https:' ? '443' : '80')
  // WHATWG keeps IPv6 literals in brackets; resolution and `net` want them without.
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1')
  const literal = net.isIP(hostname) !== 0
  const allowed = isAllowListedHost(url.hostname, port, settings.allowHosts)
  return resolveChecked(hostname, literal, allowed, settings)
}

type CheckedConnect = (
  opts: buildConnector.Options,
  checked: readonly string[],
  callback: buildConnector.Callback,
) => void

/**
 * undici calls the pool's connector for every new connection, with the origin's host. The socket
 * is opened on one of the checked IP literals (never a lookup of its own), with the name kept for
 * TLS (SNI and certificate verification).
 */
function checkedConnector(
  connectTimeoutMs: number,
  ca: string | readonly string[] | undefined,
): CheckedConnect {
  const base = buildConnector({
    timeout: connectTimeoutMs,
    ...(ca !== undefined && { ca: [...tls.rootCertificates, ...[ca].flat()] }),
  })
  return (opts, checked, callback) => {
    if (checked.length === 0) {
      callback(new OutboundError('connection_failed', 'no checked address to connect to'), null)
      return
    }
    const literal = net.isIP(opts.hostname) !== 0
    const servername = literal ? undefined : opts.hostname.replace(/\.$/, '')
    connectFirst<net.Socket>(checked, (address, cb) =>
      base({ ...opts, hostname: address, ...(servername !== undefined && { servername }) }, cb),
    ).then(
      (socket) => callback(null, socket),
      (error: unknown) => callback(error instanceof Error ? error : new Error(String(error)), null),
    )
  }
}

async function resolveChecked(
  hostname: string,
  literal: boolean,
  allowed: boolean,
  settings: ConnectorSettings,
): Promise<readonly string[]> {
  let addresses: readonly string[]
  if (literal) {
    addresses = [hostname]
  } else {
    try {
      addresses = await withTimeout(settings.resolver(hostname), settings.connectTimeoutMs)
    } catch (cause) {
      if (cause instanceof OutboundError) throw cause
      throw new OutboundError('connection_failed', `could not resolve ${hostname}`, { cause })
    }
    if (addresses.length === 0) {
      throw new OutboundError('connection_failed', `${hostname} resolved to no address`)
    }
  }
  if (allowed) return addresses
  const bad = addresses.find((a) => !settings.isPublicAddress(a))
  if (bad !== undefined) {
    const what = describeAddressKind(addressKind(bad) === 'public' ? 'reserved' : addressKind(bad))
    const shown = net.isIPv6(hostname) ? `[${hostname}]` : hostname
    // The message reaches tenant admins: a name's resolved address stays in the log (`detail`),
    // so the refusal cannot be used to read the service's internal DNS.
    const where = literal
      ? `host ${shown} is not a public address (${what})`
      : `host ${shown} resolves to an address that is not a public address`
    throw new OutboundError(
      'blocked_address',
      `${where}, and the host is not in OUTBOUND_ALLOW_HOSTS`,
      literal ? {} : { detail: `${shown} resolves to ${bad}, ${what}` },
    )
  }
  return addresses
}

/** Tries the checked addresses in order (the resolver's order), like Node does for a name. */
function connectFirst<T>(
  addresses: readonly string[],
  connect: (address: string, cb: (...args: [null, T] | [Error, null]) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const attempt = (i: number): void => {
      try {
        connect(addresses[i]!, (error, socket) => {
          if (error === null) resolve(socket as T)
          else if (i + 1 < addresses.length && isRetryableConnectError(error)) attempt(i + 1)
          else reject(error)
        })
      } catch (error) {
        reject(error)
      }
    }
    attempt(0)
  })
}

function isRetryableConnectError(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code
  return code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new OutboundError('timeout', `name resolution took longer than ${ms} ms`)),
      ms,
    )
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

async function readCapped(
  body: AsyncIterable<Buffer> & { destroy(error?: Error): unknown },
  headers: IncomingHttpHeaders,
  max: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = () => new OutboundError('too_large', `the answer is larger than ${max} bytes`)
  const declared = Number(headers['content-length'])
  if (Number.isFinite(declared) && declared > max) {
    const error = tooLarge()
    body.destroy(error)
    throw error
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > max) {
      const error = tooLarge()
      body.destroy(error)
      throw error
    }
    chunks.push(chunk)
  }
  return new Uint8Array(Buffer.concat(chunks, size))
}

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
])

function classify(error: unknown, signal: AbortSignal): OutboundError {
  // Our own deadline or the caller's cancellation wins over whatever undici reported for it.
  if (signal.aborted && signal.reason instanceof OutboundError) return signal.reason
  const found = findCause(error, (e) => e instanceof OutboundError)
  if (found instanceof OutboundError) return found
  const code = errorCode(error)
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return new OutboundError('timeout', describeError(error), { cause: error })
  }
  if (code !== undefined && isTlsCode(code)) {
    return new OutboundError('tls_failed', describeError(error), { cause: error })
  }
  return new OutboundError('connection_failed', describeError(error), { cause: error })
}

function isTlsCode(code: string): boolean {
  return (
    code.startsWith('ERR_TLS_') ||
    code.startsWith('ERR_SSL_') ||
    code.includes('CERT') ||
    code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    code === 'EPROTO'
  )
}

function findCause(error: unknown, test: (e: unknown) => boolean): unknown {
  let current = error
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    if (test(current)) return current
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

function errorCode(error: unknown): string | undefined {
  const withCode = findCause(error, (e) => typeof (e as { code?: unknown }).code === 'string')
  return (withCode as { code?: string } | undefined)?.code
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const code = errorCode(error)
  return code !== undefined ? `${code}: ${error.message}` : error.message
}

function toHeaders(raw: IncomingHttpHeaders): Headers {
  const headers = new Headers()
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue
    try {
      for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v)
    } catch {
      // A header value fetch's Headers refuses; providers' answers never need one.
    }
  }
  return headers
}

function toBody(body: BodyInit | null | undefined, headers: Headers): string | Uint8Array | null {
  if (body === undefined || body === null) return null
  if (typeof body === 'string') return body
  if (body instanceof URLSearchParams) {
    if (!headers.has('content-type')) {
      headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8')
    }
    return body.toString()
  }
  if (body instanceof Uint8Array) return body
  if (body instanceof ArrayBuffer) return new Uint8Array(body)
  throw new TypeError('the outbound fetch sends string, URLSearchParams or byte bodies only')
}

const NULL_BODY_STATUSES = new Set([204, 205, 304])

function toResponse(res: OutboundResponse): Response {
  return new Response(NULL_BODY_STATUSES.has(res.status) ? null : res.body, {
    status: res.status,
    headers: res.headers,
  })
}

/**
 * Decodes a provider's body: UTF-8 only, any invalid byte refuses the whole body (no silent
 * U+FFFD), and a leading BOM is dropped. Returns null when the bytes are not UTF-8.
 */
export function decodeUtf8Strict(bytes: Uint8Array): string | null {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes)
  } catch {
    return null
  }
}

/** The depth bound the mapping layer assumes for WhoAmI payloads (core/json-limits.ts). */
export const DEFAULT_MAX_JSON_DEPTH = WHOAMI_MAX_DEPTH

export type JsonProblem = 'not_json' | 'not_object' | 'too_deep'

/**
 * Parses a provider's JSON strictly, through core/json-limits.ts: nesting deeper than `maxDepth`
 * is refused before parsing (nothing downstream recurses into a hostile document), objects come
 * back with null prototypes (`__proto__` is plain data), and the top level must be an object.
 * Size is not checked again here: the body was capped while it streamed.
 */
export function parseJsonObject(
  text: string,
  maxDepth: number = DEFAULT_MAX_JSON_DEPTH,
): Result<JsonObject, JsonProblem> {
  const parsed = parseJsonBounded(text, { maxBytes: Number.POSITIVE_INFINITY, maxDepth })
  if (!parsed.ok) {
    return err(findExcessiveNesting(text, maxDepth) !== null ? 'too_deep' : 'not_json')
  }
  if (!isJsonObject(parsed.value)) return err('not_object')
  return ok(parsed.value)
}
