/**
 * The gateway's `discover(issuer)`: OpenID Connect Discovery, then RFC 8414 after a 404, through
 * the guarded client; the metadata's `issuer` identical to the configured one; the required
 * endpoints present and absolute. Against oidc-provider for the real thing, a scripted provider
 * for everything else. Errors are admin messages: asserted whole, and never quoting an address
 * a name resolved to.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createProviderGateway, type ProviderGatewayOptions } from '../../src/oauth/gateway.ts'
import {
  forbidOffMachineConnections,
  startCanary,
  type Canary,
  type OffMachineGuard,
} from '../helpers/canary.ts'
import {
  flood,
  hang,
  json,
  raw,
  redirect,
  startFakeProvider,
  type FakeProvider,
} from '../helpers/fake-provider.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'

const OIDC_PATH = '/.well-known/openid-configuration'
const OAUTH_PATH = '/.well-known/oauth-authorization-server'

let guard: OffMachineGuard
let canary: Canary
let idp: FakeProvider
let op: TestProvider
const gateways: ReturnType<typeof createProviderGateway>[] = []

function gateway(options: Partial<ProviderGatewayOptions> = {}) {
  const g = createProviderGateway({ allowHosts: ['127.0.0.1'], ...options })
  gateways.push(g)
  return g
}

beforeAll(async () => {
  guard = forbidOffMachineConnections()
  canary = await startCanary()
  idp = await startFakeProvider()
  op = await startTestProvider()
})

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()))
  expect(guard.attempts).toEqual([])
  expect(canary.hits).toBe(0)
  idp.assertAllCalled()
  await idp.waitForNoOpenSockets()
})

afterAll(async () => {
  await op.close()
  await idp.close()
  await canary.close()
  guard.restore()
})

/** Metadata for `issuer` at the fake, `extra` on top (undefined removes a member). */
function metadata(issuer: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const all: Record<string, unknown> = {
    issuer,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    ...extra,
  }
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined))
}

async function refused(issuer: string, options: Partial<ProviderGatewayOptions> = {}) {
  const result = await gateway(options).discover(issuer)
  expect(result.ok).toBe(false)
  return result.ok ? '' : result.error
}

describe('discovery that works', () => {
  it('reads oidc-provider’s OpenID Connect metadata', async () => {
    const result = await gateway().discover(op.issuer)
    expect(result.ok).toBe(true)
    if (!result.ok) return
    expect(result.value).toMatchObject({
      issuer: op.issuer,
      authorizationEndpoint: op.authorizationUrl,
      tokenEndpoint: op.tokenUrl,
      userinfoEndpoint: op.userinfoUrl,
      jwksUri: op.jwksUrl,
      issParameterSupported: true,
      codeChallengeMethods: ['S256'],
    })
    expect(result.value.signingAlgorithms).toContain('RS256')
    expect(result.value.tokenEndpointAuthMethods).toContain('client_secret_post')
  })

  it('reads the OpenID Connect form under an issuer path (appended)', async () => {
    const issuer = idp.url('/tenants/acme')
    idp.on(
      'GET',
      `/tenants/acme${OIDC_PATH}`,
      json(metadata(issuer, { jwks_uri: `${issuer}/jwks` })),
    )
    const result = await gateway().discover(issuer)
    expect(result).toEqual({
      ok: true,
      value: {
        issuer,
        authorizationEndpoint: `${issuer}/authorize`,
        tokenEndpoint: `${issuer}/token`,
        userinfoEndpoint: null,
        jwksUri: `${issuer}/jwks`,
        issParameterSupported: false,
        signingAlgorithms: null,
        codeChallengeMethods: null,
        tokenEndpointAuthMethods: null,
      },
    })
  })

  it('falls back to RFC 8414 after a 404, the well-known path inserted before the issuer path', async () => {
    const issuer = idp.url('/tenant-a')
    idp.on('GET', `/tenant-a${OIDC_PATH}`, json({ error: 'not_found' }, { status: 404 }))
    idp.on(
      'GET',
      `${OAUTH_PATH}/tenant-a`,
      json(
        metadata(issuer, {
          authorization_response_iss_parameter_supported: true,
          code_challenge_methods_supported: ['S256', 'plain'],
        }),
      ),
    )
    const result = await gateway().discover(issuer)
    expect(result.ok && result.value).toMatchObject({
      issuer,
      tokenEndpoint: `${issuer}/token`,
      issParameterSupported: true,
      codeChallengeMethods: ['S256', 'plain'],
    })
    expect(idp.requests.slice(-2).map((r) => r.path)).toEqual([
      `/tenant-a${OIDC_PATH}`,
      `${OAUTH_PATH}/tenant-a`,
    ])
    expect(idp.requests.at(-1)?.headers.accept).toBe('application/json')
  })

  it('falls back to RFC 8414 for an issuer without a path', async () => {
    idp.on('GET', OIDC_PATH, raw('no', { status: 404 }))
    idp.on('GET', OAUTH_PATH, json(metadata(idp.origin)))
    const result = await gateway().discover(idp.origin)
    expect(result.ok && result.value.issuer).toBe(idp.origin)
  })

  it('accepts JSON served as text/plain', async () => {
    idp.on(
      'GET',
      OIDC_PATH,
      raw(JSON.stringify(metadata(idp.origin)), { headers: { 'content-type': 'text/plain' } }),
    )
    expect((await gateway().discover(idp.origin)).ok).toBe(true)
  })
})

describe('the metadata names another issuer: refused, both shown', () => {
  it.each([
    ['a trailing slash', (o: string) => `${o}/`, (o: string) => o],
    [
      'no trailing slash where the configured one has one',
      (o: string) => o,
      (o: string) => `${o}/`,
    ],
    ['another case in the path', (o: string) => `${o}/Tenant`, (o: string) => `${o}/tenant`],
    ['another host', () => 'https://evil.example', (o: string) => o],
  ])('%s', async (_name, named, configured) => {
    const issuer = configured(idp.origin)
    const path = `${new URL(issuer).pathname.replace(/\/$/, '')}${OIDC_PATH}`
    idp.on('GET', path, json(metadata(named(idp.origin))))
    expect(await refused(issuer)).toBe(
      `issuer: the metadata at ${idp.origin}${path} names the issuer "${named(idp.origin)}", not "${issuer}"`,
    )
  })

  it('a configured issuer in other case than oidc-provider’s (scheme)', async () => {
    const issuer = op.issuer.replace('http:', 'HTTP:')
    expect(await refused(issuer)).toBe(
      `issuer: the metadata at ${op.issuer}${OIDC_PATH} names the issuer "${op.issuer}", not "${issuer}"`,
    )
  })

  it('a configured issuer with a trailing slash that oidc-provider does not have', async () => {
    expect(await refused(`${op.issuer}/`)).toBe(
      `issuer: the metadata at ${op.issuer}${OIDC_PATH} names the issuer "${op.issuer}", not "${op.issuer}/"`,
    )
  })

  it('no issuer, or one that is not a string', async () => {
    idp.on('GET', OIDC_PATH, json(metadata(idp.origin, { issuer: undefined })))
    expect(await refused(idp.origin)).toBe(
      `issuer: the metadata at ${idp.origin}${OIDC_PATH} names no issuer`,
    )
    idp.on('GET', OIDC_PATH, json(metadata(idp.origin, { issuer: 42 })))
    expect(await refused(idp.origin)).toBe(
      `issuer: the metadata at ${idp.origin}${OIDC_PATH} names an issuer that is not a string`,
    )
  })

  it('quotes a hostile issuer escaped and shortened', async () => {
    const hostile = `https://evil.example/\u202e${'x'.repeat(1000)}`
    idp.on('GET', OIDC_PATH, json(metadata(idp.origin, { issuer: hostile })))
    const message = await refused(idp.origin)
    expect(message).toContain('\\u202e')
    expect(message).not.toContain('\u202e')
    expect(message.length).toBeLessThan(400)
  })
})

describe('metadata that is not usable', () => {
  const at = () => `issuer: the metadata at ${idp.origin}${OIDC_PATH}`

  it.each<[string, () => Parameters<FakeProvider['on']>[2], string]>([
    [
      'an HTML page',
      () => raw('<html>hi</html>', { headers: { 'content-type': 'text/html' } }),
      'could not be read: the answer is an HTML page, not JSON',
    ],
    [
      'not JSON',
      () => raw('{oops', { headers: { 'content-type': 'application/json' } }),
      'could not be read: the answer is not JSON',
    ],
    [
      'a JSON array',
      () => json([metadata('x')]),
      'could not be read: the answer is JSON but not an object',
    ],
    [
      'invalid UTF-8',
      () =>
        raw(Buffer.from([0x7b, 0xff, 0x7d]), { headers: { 'content-type': 'application/json' } }),
      'could not be read: the answer is not valid UTF-8',
    ],
    ['HTTP 500 (no fallback)', () => json({}, { status: 500 }), 'answered HTTP 500'],
    [
      'a redirect (not followed)',
      () => redirect(`http://127.0.0.1:${canary.port}/.well-known/openid-configuration`),
      'answered with a redirect (HTTP 302), which is not followed',
    ],
    [
      'a huge body',
      () => flood({ totalBytes: 5 * 1024 * 1024 }),
      'could not be read: the answer is larger than 262144 bytes',
    ],
  ])('%s', async (_name, handler, problem) => {
    idp.on('GET', OIDC_PATH, handler())
    expect(await refused(idp.origin)).toBe(`${at()} ${problem}`)
  })

  it('no metadata at either well-known URL', async () => {
    idp.on('GET', `/t${OIDC_PATH}`, raw('', { status: 404 }))
    idp.on('GET', `${OAUTH_PATH}/t`, raw('', { status: 404 }))
    expect(await refused(idp.url('/t'))).toBe(
      `issuer: no metadata at ${idp.url(`/t${OIDC_PATH}`)} nor at ${idp.url(`${OAUTH_PATH}/t`)} (both answered HTTP 404)`,
    )
  })

  it.each<[string, Record<string, unknown>, string]>([
    ['no token_endpoint', { token_endpoint: undefined }, 'has no token_endpoint'],
    [
      'no authorization_endpoint',
      { authorization_endpoint: undefined },
      'has no authorization_endpoint',
    ],
    [
      'a relative authorization_endpoint',
      { authorization_endpoint: '/authorize' },
      'has an authorization_endpoint that is not an absolute URL',
    ],
    [
      'a token_endpoint that is a number',
      { token_endpoint: 7 },
      'has a token_endpoint that is not a string',
    ],
    [
      'a javascript: endpoint',
      { authorization_endpoint: 'javascript:alert(1)' },
      'has an authorization_endpoint that is not an https URL',
    ],
    [
      'a jwks_uri over plain http to a host that is not allow-listed',
      { jwks_uri: 'http://keys.example.com/jwks' },
      'has a jwks_uri that uses plain http, which is allowed only for hosts in OUTBOUND_ALLOW_HOSTS',
    ],
    [
      'an endpoint with a fragment',
      { token_endpoint: 'https://idp.example.com/token#x' },
      'has a token_endpoint that has a fragment',
    ],
    [
      'an endpoint with credentials',
      { userinfo_endpoint: 'https://user:pw@idp.example.com/me' },
      'has a userinfo_endpoint that contains credentials',
    ],
    [
      'a list that is not a list of strings',
      { id_token_signing_alg_values_supported: 'RS256' },
      'has an id_token_signing_alg_values_supported that is not a list of strings',
    ],
    [
      'an iss parameter flag that is not a boolean',
      { authorization_response_iss_parameter_supported: 'yes' },
      'has an authorization_response_iss_parameter_supported that is not true or false',
    ],
  ])('%s', async (_name, extra, problem) => {
    idp.on('GET', OIDC_PATH, json(metadata(idp.origin, extra)))
    expect(await refused(idp.origin)).toBe(`${at()} ${problem}`)
  })

  it('does not echo the credentials of an endpoint', async () => {
    idp.on(
      'GET',
      OIDC_PATH,
      json(metadata(idp.origin, { token_endpoint: 'https://u:s3cret@x.example/t' })),
    )
    expect(await refused(idp.origin)).not.toContain('s3cret')
  })
})

describe('the issuer URL and the address rules', () => {
  it.each([
    ['not a URL', 'idp.example.com', 'issuer: not an absolute URL'],
    ['another scheme', 'ftp://idp.example.com', 'issuer: must be an https URL'],
    ['a query', 'https://idp.example.com/?tenant=a', 'issuer: must not have a query or a fragment'],
    ['a fragment', 'https://idp.example.com/#a', 'issuer: must not have a query or a fragment'],
    ['credentials', 'https://u:p@idp.example.com', 'issuer: must not contain credentials'],
    [
      'plain http to a host that is not allow-listed',
      `http://localhost:${0}`,
      'issuer: plain http is allowed only for hosts in OUTBOUND_ALLOW_HOSTS',
    ],
  ])('%s: refused before any request', async (_name, issuer, message) => {
    const before = idp.requests.length
    expect(await refused(issuer.replace(':0', `:${canary.port}`))).toBe(message)
    expect(idp.requests.length).toBe(before)
  })

  it('a name that resolves to loopback: not a public address, the address not quoted', async () => {
    const issuer = `https://localhost:${canary.port}`
    const message = await refused(issuer, { allowHosts: [] })
    expect(message).toBe(
      `issuer: the metadata at ${issuer}${OIDC_PATH} could not be read: host localhost resolves to an address that is not a public address, and the host is not in OUTBOUND_ALLOW_HOSTS`,
    )
  })

  it('a name that resolves to a private address: the address not quoted', async () => {
    const message = await refused('https://idp.internal.example', {
      allowHosts: [],
      resolver: async () => ['10.0.0.7'],
    })
    expect(message).toContain(
      'host idp.internal.example resolves to an address that is not a public address',
    )
    expect(message).not.toContain('10.0.0.7')
  })

  it('a private or metadata IP literal: not a public address', async () => {
    expect(await refused('https://10.0.0.5', { allowHosts: [] })).toBe(
      `issuer: the metadata at https://10.0.0.5${OIDC_PATH} could not be read: host 10.0.0.5 is not a public address (a private address), and the host is not in OUTBOUND_ALLOW_HOSTS`,
    )
    expect(await refused('https://169.254.169.254/latest', { allowHosts: [] })).toContain(
      'host 169.254.169.254 is not a public address (a link-local address)',
    )
  })

  it('a provider that does not answer: within the outbound deadline', async () => {
    idp.on('GET', OIDC_PATH, hang())
    const started = Date.now()
    const message = await refused(idp.origin, {
      connectTimeoutMs: 300,
      headersTimeoutMs: 300,
      deadlineMs: 600,
    })
    expect(message).toBe(
      `issuer: the metadata at ${idp.origin}${OIDC_PATH} could not be read: the provider did not answer in time`,
    )
    expect(Date.now() - started).toBeLessThan(1600)
  })

  it('the fallback shares the one deadline with the first request', async () => {
    idp.on('GET', OIDC_PATH, async (_req, res) => {
      await new Promise((r) => setTimeout(r, 400))
      res.writeHead(404).end()
    })
    idp.on('GET', OAUTH_PATH, hang())
    const started = Date.now()
    const message = await refused(idp.origin, {
      connectTimeoutMs: 300,
      headersTimeoutMs: 1000,
      deadlineMs: 600,
    })
    expect(message).toMatch(
      /oauth-authorization-server could not be read: the provider did not answer in time$/,
    )
    expect(Date.now() - started).toBeLessThan(1600)
  })
})
