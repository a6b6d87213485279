/**
 * The provider adapter end to end over real sockets: oauth4webapi's token request through the
 * outbound client and the quirk shim, the callback checks, and WhoAmI. Every case asserts the
 * final failure code and message, that the call ended within the deadline plus a second, that
 * no socket stayed open, and that no secret reached the message or the log detail.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { AuthFailureReport } from '../../src/core/auth-failure.ts'
import type { Result } from '../../src/core/result.ts'
import {
  createOutboundClient,
  OUTBOUND_DEFAULTS,
  type OutboundClient,
} from '../../src/oauth/outbound.ts'
import {
  createProviderClient,
  validateCallback,
  type ProviderClient,
  type TokenEndpointConfig,
  type ValidatedCallback,
} from '../../src/oauth/provider-client.ts'
import {
  forbidOffMachineConnections,
  startCanary,
  type Canary,
  type OffMachineGuard,
} from '../helpers/canary.ts'
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

/**
 * The hostile timing cases use a client with short limits (600 ms) so the suite stays fast;
 * everything else goes through a client with the production defaults, so a loaded CI machine
 * cannot turn a good answer into a timeout.
 */
const DEADLINE_MS = 600
const SECRET = 'client-secret-0123456789'
const CODE = 'authorization-code-abcdef'
const STATE = 'state-value-0123456789'
const VERIFIER = 'pkce-verifier-0123456789-0123456789-0123456789'
const ACCESS_TOKEN = 'access-token-0123456789'
const REDIRECT_URI = 'https://auth.example.com/idp/eu/oauth/callback'

let guard: OffMachineGuard
let canary: Canary
let idp: FakeProvider
let outbound: OutboundClient
let fastOutbound: OutboundClient
let provider: ProviderClient
let fastProvider: ProviderClient

const caps = { tokenMaxBytes: 64 * 1024, whoAmIMaxBytes: 256 * 1024 }
const via = (fast: boolean) =>
  fast
    ? { client: fastProvider, deadlineMs: DEADLINE_MS }
    : { client: provider, deadlineMs: OUTBOUND_DEFAULTS.deadlineMs }

beforeAll(async () => {
  guard = forbidOffMachineConnections()
  canary = await startCanary()
  idp = await startFakeProvider()
  // The clients live for the whole file while afterEach asks that no socket stay open: a short
  // keep-alive lets a good call's pooled socket close well within that check's second.
  outbound = createOutboundClient({ allowHosts: ['127.0.0.1'], keepAliveTimeoutMs: 50 })
  fastOutbound = createOutboundClient({
    allowHosts: ['127.0.0.1'],
    keepAliveTimeoutMs: 50,
    connectTimeoutMs: 300,
    headersTimeoutMs: 300,
    deadlineMs: DEADLINE_MS,
  })
  provider = createProviderClient({ outbound, ...caps })
  fastProvider = createProviderClient({ outbound: fastOutbound, ...caps })
})

afterEach(async () => {
  expect(guard.attempts).toEqual([])
  expect(canary.hits).toBe(0)
  idp.assertAllCalled()
  await idp.waitForNoOpenSockets()
})

afterAll(async () => {
  await outbound.close()
  await fastOutbound.close()
  await idp.close()
  await canary.close()
  guard.restore()
})

function integration(overrides: Partial<TokenEndpointConfig> = {}): TokenEndpointConfig {
  return {
    clientId: 'client-1',
    clientSecret: SECRET,
    tokenUrl: idp.url('/token'),
    tokenEndpointAuthMethod: 'CLIENT_SECRET_POST',
    issuer: null,
    ...overrides,
  }
}

function callback(extra: Record<string, string> = {}): ValidatedCallback {
  const r = validateCallback({
    params: new URLSearchParams({ code: CODE, state: STATE, ...extra }),
    expectedState: STATE,
    issuer: null,
    clientId: 'client-1',
  })
  if (!r.ok) throw new Error(r.error.failure.message)
  return r.value
}

/** Times a call and checks its deadline and that no secret leaked into what it returned. */
async function timed<T>(
  call: Promise<Result<T, AuthFailureReport>>,
  deadlineMs: number = OUTBOUND_DEFAULTS.deadlineMs,
) {
  const started = Date.now()
  const result = await call
  const ms = Date.now() - started
  expect(ms).toBeLessThan(deadlineMs + 1000)
  if (!result.ok) {
    for (const secret of [SECRET, CODE, VERIFIER, ACCESS_TOKEN, STATE]) {
      expect(result.error.failure.message).not.toContain(secret)
      expect(result.error.detail).not.toContain(secret)
    }
  }
  return { result, ms }
}

async function exchange(handler: ProviderHandler, fast = false) {
  idp.on('POST', '/token', handler)
  const { client, deadlineMs } = via(fast)
  return timed(
    client.exchangeCode({
      integration: integration(),
      callback: callback(),
      redirectUri: REDIRECT_URI,
      codeVerifier: VERIFIER,
    }),
    deadlineMs,
  )
}

async function expectExchangeFailure(
  handler: ProviderHandler,
  code: string,
  message: string | RegExp,
  fast = false,
) {
  const { result } = await exchange(handler, fast)
  expect(result.ok).toBe(false)
  if (result.ok) return
  expect(result.error.failure.code).toBe(code)
  if (typeof message === 'string') expect(result.error.failure.message).toBe(message)
  else expect(result.error.failure.message).toMatch(message)
  return result.error
}

describe('exchangeCode: the request', () => {
  it('posts the code, redirect URI, verifier and client credentials in the body (client_secret_post)', async () => {
    const { result } = await exchange(
      json({ access_token: ACCESS_TOKEN, token_type: 'bearer', expires_in: 3600 }),
    )
    expect(result).toEqual({
      ok: true,
      value: {
        accessToken: ACCESS_TOKEN,
        tokenType: 'bearer',
        expiresIn: 3600,
        scope: null,
        idToken: null,
      },
    })
    const sent = idp.requests.at(-1)!
    expect(sent.headers.accept).toBe('application/json')
    expect(sent.headers.authorization).toBeUndefined()
    expect(Object.fromEntries(sent.form)).toEqual({
      grant_type: 'authorization_code',
      code: CODE,
      redirect_uri: REDIRECT_URI,
      code_verifier: VERIFIER,
      client_id: 'client-1',
      client_secret: SECRET,
    })
  })

  it('sends client credentials in a Basic header (client_secret_basic) and no verifier without PKCE', async () => {
    idp.on('POST', '/token', json({ access_token: ACCESS_TOKEN, token_type: 'bearer' }))
    const { result } = await timed(
      provider.exchangeCode({
        integration: integration({
          tokenEndpointAuthMethod: 'CLIENT_SECRET_BASIC',
          clientId: 'client:1',
        }),
        callback: callback(),
        redirectUri: REDIRECT_URI,
        codeVerifier: null,
      }),
    )
    expect(result.ok).toBe(true)
    const sent = idp.requests.at(-1)!
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
    const basic = Buffer.from(
      sent.headers.authorization!.replace(/^Basic /, ''),
      'base64',
    ).toString()
    expect(basic.split(':').map(decodeURIComponent)).toEqual(['client:1', SECRET])
    expect(sent.form.has('client_secret')).toBe(false)
    expect(sent.form.has('code_verifier')).toBe(false)
  })

  it('never retries the token request, even when the connection drops', async () => {
    const before = idp.requests.length
    await expectExchangeFailure(
      dropConnection(),
      'provider_unreachable',
      'token request: the provider could not be reached',
    )
    expect(idp.requests.length - before).toBe(1)
  })
})

describe('exchangeCode: quirks real providers have are accepted', () => {
  const ok = (extra: Record<string, unknown> = {}) => ({
    access_token: ACCESS_TOKEN,
    token_type: 'bearer',
    ...extra,
  })

  it.each<[string, ProviderHandler, Record<string, unknown>]>([
    [
      'a form-encoded answer (old GitHub)',
      form({ access_token: ACCESS_TOKEN, token_type: 'bearer', scope: 'repo,gist' }),
      { scope: 'repo,gist' },
    ],
    ['no token_type', json({ access_token: ACCESS_TOKEN }), {}],
    ['token_type "Bearer"', json(ok({ token_type: 'Bearer' })), {}],
    ['token_type "BEARER"', json(ok({ token_type: 'BEARER' })), {}],
    ['expires_in as a string', json(ok({ expires_in: '3600' })), { expiresIn: 3600 }],
    ['no expires_in', json(ok()), { expiresIn: null }],
    ['scope as an array', json(ok({ scope: ['openid', 'email'] })), { scope: 'openid email' }],
    [
      'JSON served as text/plain',
      json(ok(), { headers: { 'content-type': 'text/plain; charset=utf-8' } }),
      {},
    ],
    ['JSON with no content type', raw(JSON.stringify(ok())), {}],
    [
      'JSON with a UTF-8 BOM',
      raw(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(ok()))]), {
        headers: { 'content-type': 'application/json' },
      }),
      {},
    ],
    [
      'an id_token without OpenID Connect (ignored: identity comes from WhoAmI)',
      json(ok({ id_token: 'not.a.jwt' })),
      {},
    ],
    ['a refresh_token (dropped)', json(ok({ refresh_token: 'rt' })), {}],
  ])('%s', async (_name, handler, expected) => {
    const { result } = await exchange(handler)
    expect(result).toEqual({
      ok: true,
      value: {
        accessToken: ACCESS_TOKEN,
        tokenType: 'bearer',
        expiresIn: null,
        scope: null,
        idToken: null,
        ...expected,
      },
    })
  })
})

describe('exchangeCode: everything else malformed is refused', () => {
  const bad = 'invalid_provider_response'
  it.each<[string, ProviderHandler, string]>([
    ['[]', json([]), 'token request: the answer is JSON but not an object'],
    ['"str"', json('str'), 'token request: the answer is JSON but not an object'],
    ['null', json(null), 'token request: the answer is JSON but not an object'],
    [
      '{}',
      json({}),
      'token request: the answer is malformed ("response" body "access_token" property must be a string)',
    ],
    [
      'access_token 123',
      json({ access_token: 123, token_type: 'bearer' }),
      'token request: the answer is malformed ("response" body "access_token" property must be a string)',
    ],
    [
      'access_token ""',
      json({ access_token: '', token_type: 'bearer' }),
      'token request: the answer is malformed ("response" body "access_token" property must not be empty)',
    ],
    [
      'token_type 5',
      json({ access_token: 'a', token_type: 5 }),
      'token request: the answer is malformed ("response" body "token_type" property must be a string)',
    ],
    [
      'expires_in "abc"',
      json({ access_token: 'a', token_type: 'bearer', expires_in: 'abc' }),
      'token request: expires_in is not a whole number of seconds',
    ],
    [
      'expires_in "12abc"',
      json({ access_token: 'a', token_type: 'bearer', expires_in: '12abc' }),
      'token request: expires_in is not a whole number of seconds',
    ],
    [
      'expires_in -5',
      json({ access_token: 'a', token_type: 'bearer', expires_in: -5 }),
      'token request: the answer is malformed ("response" body "expires_in" property must be a non-negative number)',
    ],
    [
      'token_type "mac"',
      json({ access_token: 'a', token_type: 'mac' }),
      'token request: the token type is not bearer',
    ],
    [
      'scope [1, 2]',
      json({ access_token: 'a', token_type: 'bearer', scope: [1, 2] }),
      'token request: the answer is malformed ("response" body "scope" property must be a string)',
    ],
    [
      'refresh_token 1',
      json({ access_token: 'a', token_type: 'bearer', refresh_token: 1 }),
      'token request: the answer is malformed ("response" body "refresh_token" property must be a string)',
    ],
    [
      'an HTML page with 200',
      raw('<html><body>Oops</body></html>', { headers: { 'content-type': 'text/html' } }),
      'token request: the answer is an HTML page, not JSON',
    ],
    [
      'XML',
      raw('<a/>', { headers: { 'content-type': 'application/xml' } }),
      'token request: the answer is content of type application/xml, not JSON',
    ],
    [
      'invalid UTF-8',
      raw(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]), {
        headers: { 'content-type': 'application/json' },
      }),
      'token request: the answer is not valid UTF-8',
    ],
    [
      'UTF-16 with a BOM',
      raw(
        Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{"access_token":"a"}', 'utf16le')]),
        { headers: { 'content-type': 'application/json' } },
      ),
      'token request: the answer is not valid UTF-8',
    ],
    [
      'an empty body',
      raw('', { headers: { 'content-type': 'application/json' } }),
      'token request: the answer is empty',
    ],
    [
      'truncated JSON',
      raw('{"access_token":"a"', { headers: { 'content-type': 'application/json' } }),
      'token request: the answer is not JSON',
    ],
    [
      'a form answer repeating a field',
      raw('access_token=a&access_token=b&token_type=bearer', {
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
      'token request: the form answer repeats "access_token"',
    ],
    [
      'HTTP 201',
      json({ access_token: 'a', token_type: 'bearer' }, { status: 201 }),
      'token request: the token endpoint answered HTTP 201 without an OAuth error',
    ],
    [
      'HTTP 999, a status no Fetch Response can hold',
      json({ access_token: 'a', token_type: 'bearer' }, { status: 999 }),
      'token request: the answer is not valid HTTP',
    ],
  ])('%s', async (_name, handler, message) => {
    await expectExchangeFailure(handler, bad, message)
  })

  it('refuses a 50 MB answer at the token cap', async () => {
    await expectExchangeFailure(
      flood({ totalBytes: 50 * 1024 * 1024 }),
      bad,
      'token request: the answer is larger than 65536 bytes',
    )
  })

  it('refuses a Content-Length that lies low as malformed, without reading on', async () => {
    await expectExchangeFailure(
      flood({ totalBytes: 50 * 1024 * 1024, contentLength: 10 }),
      bad,
      'token request: the answer is empty',
    )
  })
})

describe('exchangeCode: provider errors', () => {
  it('maps 200 {"error": "bad_verification_code"} (GitHub) to invalid_grant', async () => {
    await expectExchangeFailure(
      json({
        error: 'bad_verification_code',
        error_description: 'The code passed is incorrect or expired.',
      }),
      'invalid_grant',
      'token request: the provider answered error "bad_verification_code" (HTTP 200)',
    )
  })

  it('maps 200 {"error": "invalid_grant"} to invalid_grant', async () => {
    await expectExchangeFailure(
      json({ error: 'invalid_grant' }),
      'invalid_grant',
      'token request: the provider answered error "invalid_grant" (HTTP 200)',
    )
  })

  it('maps 400 invalid_grant to invalid_grant', async () => {
    await expectExchangeFailure(
      json({ error: 'invalid_grant' }, { status: 400 }),
      'invalid_grant',
      'token request: the provider answered error "invalid_grant" (HTTP 400)',
    )
  })

  it('keeps error_description out of the message, and in the log detail only', async () => {
    const error = await expectExchangeFailure(
      json(
        { error: 'invalid_client', error_description: '<img src=x onerror=alert(1)>' },
        { status: 401 },
      ),
      'provider_error',
      'token request: the provider answered error "invalid_client" (HTTP 401)',
    )
    expect(error?.detail).toContain('error_description=<img src=x onerror=alert(1)>')
  })

  it('refuses to quote an error code that is not a plain token', async () => {
    await expectExchangeFailure(
      json({ error: '<script>alert(1)</script>' }, { status: 400 }),
      'provider_error',
      'token request: the provider answered an OAuth error with a malformed code (HTTP 400)',
    )
  })

  it('reads the error of a WWW-Authenticate challenge when the body has none', async () => {
    await expectExchangeFailure(
      raw('', {
        status: 401,
        headers: { 'www-authenticate': 'Basic realm="idp", error="invalid_client"' },
      }),
      'provider_error',
      'token request: the provider answered error "invalid_client" (HTTP 401)',
    )
  })

  it('reports an HTML error page with a 500 as a provider error, body only in the detail', async () => {
    const error = await expectExchangeFailure(
      raw(`<html><body>Internal error; code=${CODE}</body></html>`, {
        status: 500,
        headers: { 'content-type': 'text/html' },
      }),
      'provider_error',
      'token request: the token endpoint answered HTTP 500 without an OAuth error; the answer is an HTML page, not JSON',
    )
    expect(error?.detail).toContain('<html><body>Internal error; code=[redacted]')
  })

  it('does not follow a redirect, even to an allow-listed host', async () => {
    const error = await expectExchangeFailure(
      redirect(idp.url('/elsewhere'), 307),
      'provider_error',
      'token request: the token endpoint answered with a redirect (HTTP 307), which is not followed',
    )
    expect(idp.requests.some((r) => r.path === '/elsewhere')).toBe(false)
    expect(error?.detail).toContain('/elsewhere')
  })

  it('does not follow a redirect to a private address', async () => {
    await expectExchangeFailure(
      redirect(`https://127.0.0.1:${canary.port}/`),
      'provider_error',
      /redirect \(HTTP 302\)/,
    )
  })
})

describe('exchangeCode: time and addresses', () => {
  it('answers provider_timeout when the endpoint never answers', async () => {
    await expectExchangeFailure(
      hang(),
      'provider_timeout',
      'token request: the provider did not answer in time',
      true,
    )
  })

  it('answers provider_timeout when the body trickles in a byte at a time', async () => {
    await expectExchangeFailure(
      trickle({ intervalMs: 100 }),
      'provider_timeout',
      'token request: the provider did not answer in time',
      true,
    )
  })

  it('refuses a token URL on a loopback address that is not allow-listed', async () => {
    const strict = createProviderClient({
      outbound: createOutboundClient({ allowHosts: [], deadlineMs: DEADLINE_MS }),
    })
    for (const host of ['127.0.0.1', '2130706433', '[::1]', '[::ffff:127.0.0.1]', 'localhost']) {
      const { result } = await timed(
        strict.exchangeCode({
          integration: integration({ tokenUrl: `https://${host}:${canary.port}/token` }),
          callback: callback(),
          redirectUri: REDIRECT_URI,
          codeVerifier: VERIFIER,
        }),
      )
      expect(result.ok || result.error.failure.code).toBe('blocked_address')
      expect(result.ok || result.error.failure.message).toMatch(
        /^token request: host \S+ (is not a public address \(.+\)|resolves to an address that is not a public address), and the host is not in OUTBOUND_ALLOW_HOSTS$/,
      )
      if (host === 'localhost') {
        // A name: its resolved address reaches the log detail, never the message.
        expect(result.ok || result.error.failure.message).not.toMatch(/127\.0\.0\.1|::1/)
        expect(result.ok || result.error.detail).toMatch(/localhost resolves to (127\.0\.0\.1|::1)/)
      }
    }
  })

  it('refuses a plain http token URL whose host is not allow-listed', async () => {
    const strict = createProviderClient({ outbound: createOutboundClient({ allowHosts: [] }) })
    const { result } = await timed(
      strict.exchangeCode({
        integration: integration({ tokenUrl: `http://127.0.0.1:${canary.port}/token` }),
        callback: callback(),
        redirectUri: REDIRECT_URI,
        codeVerifier: VERIFIER,
      }),
    )
    expect(result.ok || result.error.failure).toEqual({
      code: 'blocked_address',
      message: 'token request: plain http is allowed only for hosts in OUTBOUND_ALLOW_HOSTS',
    })
  })

  it('reports a token URL that does not parse', async () => {
    const { result } = await timed(
      provider.exchangeCode({
        integration: integration({ tokenUrl: 'not a url' }),
        callback: callback(),
        redirectUri: REDIRECT_URI,
        codeVerifier: null,
      }),
    )
    expect(result.ok || result.error.failure.code).toBe('provider_error')
  })
})

describe('validateCallback', () => {
  const check = (params: Record<string, string> | string, issuer: string | null = null) =>
    validateCallback({
      params: new URLSearchParams(params),
      expectedState: STATE,
      issuer,
      clientId: 'client-1',
    })
  const failure = (r: ReturnType<typeof check>) => (r.ok ? null : r.error.failure)

  it('accepts code and state, and hands back the parameters', () => {
    const r = check({ code: CODE, state: STATE })
    expect(r.ok && r.value.get('code')).toBe(CODE)
  })

  it('refuses a missing or different state', () => {
    expect(failure(check({ code: CODE }))).toEqual({
      code: 'invalid_state',
      message: 'authorization: the callback state does not match this sign-in',
    })
    expect(failure(check({ code: CODE, state: 'other' }))?.code).toBe('invalid_state')
  })

  it('maps error=access_denied to access_denied, other errors to provider_error with the code', () => {
    expect(
      failure(check({ error: 'access_denied', error_description: 'User said no', state: STATE })),
    ).toEqual({
      code: 'access_denied',
      message: 'authorization: the provider answered error "access_denied"',
    })
    expect(failure(check({ error: 'invalid_scope', state: STATE }))).toEqual({
      code: 'provider_error',
      message: 'authorization: the provider answered error "invalid_scope"',
    })
    expect(failure(check({ error: '<b>x</b>', state: STATE }))?.message).toBe(
      'authorization: the provider answered an error with a malformed code',
    )
  })

  it('ignores iss when the integration has no issuer (RFC 9207 only applies when configured)', () => {
    expect(check({ code: CODE, state: STATE, iss: 'https://anything.example' }).ok).toBe(true)
  })

  it('checks iss against a configured issuer', () => {
    const issuer = 'https://idp.example.com'
    expect(check({ code: CODE, state: STATE, iss: issuer }, issuer).ok).toBe(true)
    expect(check({ code: CODE, state: STATE }, issuer).ok).toBe(true)
    expect(
      failure(check({ code: CODE, state: STATE, iss: 'https://evil.example' }, issuer)),
    ).toEqual({
      code: 'issuer_mismatch',
      message:
        'authorization: the callback names a different issuer than the integration (RFC 9207)',
    })
  })

  it('refuses a callback without a code, with a repeated parameter, or from an implicit flow', () => {
    expect(failure(check({ state: STATE }))).toEqual({
      code: 'invalid_request',
      message: 'authorization: the callback carries no authorization code',
    })
    expect(failure(check(`code=a&code=b&state=${STATE}`))).toEqual({
      code: 'invalid_request',
      message: 'authorization: the callback repeats the parameter "code"',
    })
    for (const token of ['access_token', 'token', 'id_token']) {
      expect(failure(check({ code: CODE, state: STATE, [token]: 'x' }))).toEqual({
        code: 'invalid_request',
        message:
          'authorization: the callback is malformed (implicit and hybrid flows are not supported)',
      })
    }
  })

  it('keeps code and state out of the log detail', () => {
    const r = check({ code: CODE, state: 'wrong-state-0123456789' })
    expect(r.ok).toBe(false)
    const detail = r.ok ? '' : r.error.detail
    expect(detail).toBe('code=[redacted]&state=[redacted]')
  })
})

describe('fetchWhoAmI', () => {
  const call = (fast = false) => {
    const { client, deadlineMs } = via(fast)
    return timed(client.fetchWhoAmI(idp.url('/whoami'), ACCESS_TOKEN), deadlineMs)
  }
  const whoFailure = async (
    handlers: ProviderHandler[],
    code: string,
    message: string | RegExp,
    fast = false,
  ) => {
    for (const h of handlers) idp.on('GET', '/whoami', h)
    const { result } = await call(fast)
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.error.failure.code).toBe(code)
    if (typeof message === 'string') expect(result.error.failure.message).toBe(message)
    else expect(result.error.failure.message).toMatch(message)
  }

  it('sends the token in the Authorization header only and returns the object', async () => {
    idp.on('GET', '/whoami', json({ sub: '42', name: 'Billy Bob', email: 'b@example.com' }))
    const { result } = await call()
    expect(result.ok && result.value.payload).toEqual({
      sub: '42',
      name: 'Billy Bob',
      email: 'b@example.com',
    })
    const sent = idp.requests.at(-1)!
    expect(sent.headers.authorization).toBe(`Bearer ${ACCESS_TOKEN}`)
    expect(sent.headers.accept).toBe('application/json')
    expect(sent.query.toString()).toBe('')
  })

  it('accepts JSON served as text/plain and an application/*+json type', async () => {
    idp.on('GET', '/whoami', json({ sub: '1' }, { headers: { 'content-type': 'text/plain' } }))
    idp.on(
      'GET',
      '/whoami',
      json({ sub: '2' }, { headers: { 'content-type': 'application/vnd.api+json' } }),
    )
    expect((await call()).result.ok).toBe(true)
    expect((await call()).result.ok).toBe(true)
  })

  it('retries once after a connection error, then succeeds', async () => {
    await idp.waitForNoOpenSockets()
    const before = idp.requests.length
    idp.on('GET', '/whoami', dropConnection())
    idp.on('GET', '/whoami', json({ sub: '1' }))
    const { result } = await call()
    expect(result.ok).toBe(true)
    expect(idp.requests.length - before).toBe(2)
  })

  it('gives up after the one retry', async () => {
    const before = idp.requests.length
    await whoFailure(
      [dropConnection(), dropConnection()],
      'provider_unreachable',
      'WhoAmI request: the provider could not be reached',
    )
    expect(idp.requests.length - before).toBe(2)
  })

  it('does not retry a 401, and names the challenge error', async () => {
    const before = idp.requests.length
    await whoFailure(
      [raw('', { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } })],
      'whoami_failed',
      'WhoAmI request: the WhoAmI endpoint answered HTTP 401 (invalid_token)',
    )
    expect(idp.requests.length - before).toBe(1)
  })

  it('does not retry a 503', async () => {
    const before = idp.requests.length
    await whoFailure(
      [json({ error: 'unavailable' }, { status: 503 })],
      'whoami_failed',
      'WhoAmI request: the WhoAmI endpoint answered HTTP 503',
    )
    expect(idp.requests.length - before).toBe(1)
  })

  it('does not follow a redirect (the token must not travel on)', async () => {
    await whoFailure(
      [redirect(`https://127.0.0.1:${canary.port}/`, 307)],
      'whoami_failed',
      'WhoAmI request: the WhoAmI endpoint answered a redirect (HTTP 307), which is not followed',
    )
  })

  it.each<[string, ProviderHandler, string]>([
    ['an array', json([{ sub: '1' }]), 'WhoAmI request: the answer is JSON but not an object'],
    [
      'an HTML page',
      raw('<html></html>', { headers: { 'content-type': 'text/html; charset=utf-8' } }),
      'WhoAmI request: the answer is an HTML page, not JSON',
    ],
    [
      'invalid UTF-8',
      raw(Buffer.from([0x7b, 0x22, 0x6e, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]), {
        headers: { 'content-type': 'application/json' },
      }),
      'WhoAmI request: the answer is not valid UTF-8',
    ],
    [
      'JSON 100,000 levels deep',
      raw(`{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, {
        headers: { 'content-type': 'application/json' },
      }),
      'WhoAmI request: the answer is nested too deeply',
    ],
    [
      'an empty 200',
      raw('', { headers: { 'content-type': 'application/json' } }),
      'WhoAmI request: the answer is empty',
    ],
  ])('refuses %s', async (_name, handler, message) => {
    await whoFailure([handler], 'invalid_provider_response', message)
  })

  it('refuses a 50 MB answer at the WhoAmI cap', async () => {
    await whoFailure(
      [flood({ totalBytes: 50 * 1024 * 1024 })],
      'invalid_provider_response',
      'WhoAmI request: the answer is larger than 262144 bytes',
    )
  })

  it('answers provider_timeout when WhoAmI never answers, without a retry', async () => {
    const before = idp.requests.length
    await whoFailure(
      [hang()],
      'provider_timeout',
      'WhoAmI request: the provider did not answer in time',
      true,
    )
    expect(idp.requests.length - before).toBe(1)
  })

  it('refuses a WhoAmI URL on a private address that is not allow-listed', async () => {
    const strict = createProviderClient({ outbound: createOutboundClient({ allowHosts: [] }) })
    const { result } = await timed(
      strict.fetchWhoAmI(`https://[::1]:${canary.port}/me`, ACCESS_TOKEN),
    )
    expect(result.ok || result.error.failure.code).toBe('blocked_address')
  })
})
