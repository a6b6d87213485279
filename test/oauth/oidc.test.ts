/**
 * OpenID Connect at the provider layer, through the gateway the sign-in flow uses: the callback's
 * RFC 9207 `iss`, and the ID token validated in full (signature against the issuer's JWK Set,
 * fetched through the guarded client and cached; iss, aud, azp, exp, iat, nonce, sub, auth_time)
 * before the access token is returned.
 *
 * Against oidc-provider (a certified OpenID Provider) where it can be made to do the thing; a
 * scripted provider on a real socket (test/helpers/fake-provider.ts, tokens signed by
 * test/helpers/jwt.ts) for the tokens no honest provider issues. Every refusal asserts the exact
 * failure code, that the result is an error (so no access token), and that no secret reached the
 * message or the log detail. The fake's scripts count the JWKS requests: an unscripted fetch or
 * an unused answer fails the test (afterEach).
 */
import { createPublicKey } from 'node:crypto'
import * as oauth from 'oauth4webapi'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { AuthFailureReport } from '../../src/core/auth-failure.ts'
import type { OAuthIntegration } from '../../src/core/integration.ts'
import type { Result } from '../../src/core/result.ts'
import { ID_TOKEN_CLOCK_TOLERANCE_S } from '../../src/oauth/id-token.ts'
import { createProviderGateway, type ProviderGatewayOptions } from '../../src/oauth/gateway.ts'
import type { CallbackIssuer, OidcExpectations, TokenExchange } from '../../src/services/deps.ts'
import { loginAtTestProvider, ScriptedBrowser } from '../helpers/browser.ts'
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
  startFakeProvider,
  type FakeProvider,
  type ProviderHandler,
} from '../helpers/fake-provider.ts'
import { generateSigningKey, nowSeconds, signJwt } from '../helpers/jwt.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'

const CLIENT_ID = 'oidc-client'
// Long enough for HS256 at oidc-provider (it wants a secret of the hash's size at least).
const SECRET = 'client-secret-0123456789-0123456789-0123456789'
const CODE = 'authorization-code-0123456789'
const STATE = 'state-0123456789-0123456789'
const NONCE = 'nonce-0123456789-0123456789'
const VERIFIER = 'pkce-verifier-0123456789-0123456789-0123456789'
const ACCESS_TOKEN = 'access-token-0123456789-abcdef'
const REDIRECT_URI = 'https://app.example.com/oauth/callback'

const keyA = generateSigningKey('key-a')
const keyB = generateSigningKey('key-b')
const stranger = generateSigningKey('key-a') // same kid as keyA, another key pair

let guard: OffMachineGuard
let canary: Canary
let idp: FakeProvider
const gateways: ReturnType<typeof createProviderGateway>[] = []

/** A gateway with an empty key cache, as a fresh process has. */
function newGateway(options: Partial<ProviderGatewayOptions> = {}) {
  const gateway = createProviderGateway({ allowHosts: ['127.0.0.1'], ...options })
  gateways.push(gateway)
  return gateway
}

beforeAll(async () => {
  guard = forbidOffMachineConnections()
  canary = await startCanary()
  idp = await startFakeProvider()
})

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()))
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

function integrationFor(overrides: Partial<OAuthIntegration> = {}): OAuthIntegration {
  return {
    id: 'integration-1',
    tenantId: 'tenant-1',
    hasClientSecret: true,
    createdAt: new Date(0),
    updatedAt: new Date(0),
    name: 'OIDC test',
    clientId: CLIENT_ID,
    scope: 'openid',
    authorizationUrl: idp.url('/authorize'),
    tokenUrl: idp.url('/token'),
    whoAmIUrl: null,
    whoAmIMapping: null,
    tokenEndpointAuthMethod: 'CLIENT_SECRET_POST',
    pkce: true,
    issuer: idp.origin,
    splitFullName: true,
    overwriteContact: false,
    sessionTtlSeconds: 600,
    messageText: null,
    messageButtonLabel: null,
    ...overrides,
  } as OAuthIntegration
}

const expectations = (overrides: Partial<OidcExpectations> = {}): OidcExpectations => ({
  nonce: NONCE,
  issuer: idp.origin,
  jwksUri: idp.url('/jwks'),
  signingAlgorithms: null,
  maxAgeSeconds: null,
  ...overrides,
})

/** The claims of a good ID token from the fake, `extra` on top (undefined removes a claim). */
function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds()
  const all: Record<string, unknown> = {
    iss: idp.origin,
    sub: 'user-1',
    aud: CLIENT_ID,
    iat: now,
    exp: now + 300,
    nonce: NONCE,
    ...extra,
  }
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined))
}

const tokenAnswer = (idToken: string | undefined, extra: Record<string, unknown> = {}) =>
  json({ access_token: ACCESS_TOKEN, token_type: 'bearer', id_token: idToken, ...extra })

const jwks = (...keys: ReturnType<typeof generateSigningKey>[]) =>
  json({ keys: keys.map((k) => k.publicJwk) })

function callbackUrl(params: Record<string, string | null> = {}): URL {
  const url = new URL(REDIRECT_URI)
  const all: Record<string, string | null> = {
    code: CODE,
    state: STATE,
    iss: idp.origin,
    ...params,
  }
  for (const [k, v] of Object.entries(all)) if (v !== null) url.searchParams.set(k, v)
  return url
}

interface Exchange {
  readonly gateway?: ReturnType<typeof createProviderGateway>
  readonly oidc?: Partial<OidcExpectations> | null
  readonly issuer?: CallbackIssuer
  readonly callback?: URL
  readonly integration?: Partial<OAuthIntegration>
}

async function exchange(input: Exchange = {}): Promise<Result<TokenExchange, AuthFailureReport>> {
  const gateway = input.gateway ?? newGateway()
  const result = await gateway.exchangeCode({
    integration: integrationFor(input.integration),
    clientSecret: SECRET,
    callbackUrl: input.callback ?? callbackUrl(),
    expectedState: STATE,
    issuer: input.issuer ?? { expected: idp.origin, required: true },
    redirectUri: REDIRECT_URI,
    codeVerifier: VERIFIER,
    oidc: input.oidc === null ? null : expectations(input.oidc),
  })
  if (!result.ok) {
    for (const secret of [SECRET, CODE, STATE, VERIFIER, ACCESS_TOKEN, NONCE]) {
      expect(result.error.failure.message).not.toContain(secret)
      expect(result.error.detail).not.toContain(secret)
    }
  }
  return result
}

/** The exchange failed with `code` (and `message`): an error, so no access token came back. */
function expectFailure(
  result: Result<TokenExchange, AuthFailureReport>,
  code: string,
  message?: string | RegExp,
): AuthFailureReport {
  expect(result.ok).toBe(false)
  if (result.ok) throw new Error('unreachable')
  expect(result.error.failure.code).toBe(code)
  if (typeof message === 'string') expect(result.error.failure.message).toBe(message)
  else if (message) expect(result.error.failure.message).toMatch(message)
  expect(JSON.stringify(result.error)).not.toContain(ACCESS_TOKEN)
  return result.error
}

/** One sign-in at the fake: its token answer carries `idToken`, its JWKS is answered `keys`. */
async function withToken(
  idToken: string | undefined,
  options: Exchange & { readonly jwksAnswer?: ProviderHandler | null } = {},
) {
  idp.on('POST', '/token', tokenAnswer(idToken))
  if (options.jwksAnswer !== null) idp.on('GET', '/jwks', options.jwksAnswer ?? jwks(keyA))
  return exchange(options)
}

const signedByA = (extra: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
  signJwt(claims(extra), { key: keyA }, header)

describe('a valid ID token', () => {
  it('returns the access token and every claim, with null prototypes', async () => {
    const idToken = signedByA({
      auth_time: nowSeconds() - 5,
      acr: 'urn:mace:incommon:iap:silver',
      amr: ['pwd', 'otp'],
      email: 'ada@example.com',
      address: { country: 'UK' },
      ['__proto__']: { polluted: true },
    })
    const result = await withToken(idToken)
    expect(result.ok).toBe(true)
    if (!result.ok) return
    expect(result.value.accessToken).toBe(ACCESS_TOKEN)
    expect(result.value.callbackIssuer).toBe(idp.origin)
    const got = result.value.idToken!
    expect({ ...got }).toMatchObject({
      iss: idp.origin,
      sub: 'user-1',
      aud: CLIENT_ID,
      nonce: NONCE,
      acr: 'urn:mace:incommon:iap:silver',
      amr: ['pwd', 'otp'],
      email: 'ada@example.com',
    })
    expect(Object.getPrototypeOf(got)).toBeNull()
    expect(Object.getPrototypeOf(got.address)).toBeNull()
    expect(Object.keys(got)).toContain('__proto__')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('accepts several audiences when azp is this client, and ES256 keys', async () => {
    const es = generateSigningKey('es-1', 'ES256')
    const idToken = signJwt(claims({ aud: [CLIENT_ID, 'api'], azp: CLIENT_ID }), { key: es })
    const result = await withToken(idToken, {
      jwksAnswer: jwks(keyA, es),
      oidc: { signingAlgorithms: ['RS256', 'ES256'] },
    })
    expect(result.ok && result.value.idToken?.azp).toBe(CLIENT_ID)
  })

  it(`allows ${ID_TOKEN_CLOCK_TOLERANCE_S} s of clock skew on exp and iat`, async () => {
    const now = nowSeconds()
    const idToken = signedByA({ iat: now + 10, exp: now - 10 })
    expect((await withToken(idToken)).ok).toBe(true)
  })

  it('verifies HS256 with the client secret when the integration lists HS256', async () => {
    const idToken = signJwt(claims(), { hmacSecret: SECRET })
    const result = await withToken(idToken, {
      jwksAnswer: null,
      oidc: { signingAlgorithms: ['RS256', 'HS256'] },
    })
    expect(result.ok).toBe(true)
  })

  it('with oidc null, drops the ID token as before and returns no claims', async () => {
    idp.on('POST', '/token', tokenAnswer('not.a.jwt'))
    const result = await exchange({ oidc: null })
    expect(result).toEqual({
      ok: true,
      value: { accessToken: ACCESS_TOKEN, idToken: null, callbackIssuer: idp.origin },
    })
  })
})

describe('ID token refusals (each its own failure code)', () => {
  it('no ID token at all: id_token_missing', async () => {
    expectFailure(
      await withToken(undefined, { jwksAnswer: null }),
      'id_token_missing',
      'ID token: the token endpoint answered without one',
    )
  })

  it('an empty or non-string id_token', async () => {
    expectFailure(await withToken('', { jwksAnswer: null }), 'id_token_missing')
    idp.on(
      'POST',
      '/token',
      json({ access_token: ACCESS_TOKEN, token_type: 'bearer', id_token: 7 }),
    )
    expectFailure(await exchange(), 'id_token_invalid')
  })

  it('a signature by another key with the same kid: id_token_signature_invalid', async () => {
    const idToken = signJwt(claims(), { key: stranger })
    expectFailure(
      await withToken(idToken),
      'id_token_signature_invalid',
      "ID token: its signature does not verify with the issuer's key",
    )
  })

  it('a payload changed after signing: id_token_signature_invalid', async () => {
    const [h, , s] = signedByA().split('.')
    const forged = Buffer.from(JSON.stringify(claims({ sub: 'admin' }))).toString('base64url')
    expectFailure(await withToken(`${h}.${forged}.${s}`), 'id_token_signature_invalid')
  })

  it('a different iss: id_token_issuer_mismatch', async () => {
    const idToken = signedByA({ iss: 'https://evil.example' })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null }),
      'id_token_issuer_mismatch',
      "ID token: its iss is not the integration's issuer",
    )
  })

  it('an iss that differs only by a trailing slash: id_token_issuer_mismatch', async () => {
    const idToken = signedByA({ iss: `${idp.origin}/` })
    expectFailure(await withToken(idToken, { jwksAnswer: null }), 'id_token_issuer_mismatch')
  })

  it('an aud that is another client: id_token_audience_mismatch', async () => {
    const idToken = signedByA({ aud: 'other-client' })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null }),
      'id_token_audience_mismatch',
      'ID token: its aud does not name this client',
    )
  })

  it('several audiences without azp: id_token_audience_mismatch', async () => {
    const idToken = signedByA({ aud: [CLIENT_ID, 'other-client'] })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null }),
      'id_token_audience_mismatch',
      'ID token: it names several audiences and no azp',
    )
  })

  it('several audiences with azp another client: id_token_audience_mismatch', async () => {
    const idToken = signedByA({ aud: [CLIENT_ID, 'other-client'], azp: 'other-client' })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null }),
      'id_token_audience_mismatch',
      'ID token: it names several audiences and its azp is not this client',
    )
  })

  it('one audience and azp another client: id_token_audience_mismatch', async () => {
    const idToken = signedByA({ azp: 'other-client' })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null }),
      'id_token_audience_mismatch',
      'ID token: its azp (authorized party) is not this client',
    )
  })

  it('expired beyond the clock skew: id_token_expired', async () => {
    const now = nowSeconds()
    const idToken = signedByA({ iat: now - 600, exp: now - ID_TOKEN_CLOCK_TOLERANCE_S - 5 })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null }),
      'id_token_expired',
      'ID token: it has expired (exp)',
    )
  })

  it('issued in the future beyond the clock skew: id_token_expired', async () => {
    const now = nowSeconds()
    const idToken = signedByA({ iat: now + ID_TOKEN_CLOCK_TOLERANCE_S + 60, exp: now + 900 })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null }),
      'id_token_expired',
      'ID token: it was issued in the future (iat)',
    )
  })

  it('not valid yet (nbf): id_token_expired', async () => {
    const idToken = signedByA({ nbf: nowSeconds() + 600 })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null }),
      'id_token_expired',
      'ID token: it is not valid yet (nbf)',
    )
  })

  it('no nonce: nonce_mismatch', async () => {
    const idToken = signedByA({ nonce: undefined })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null }),
      'nonce_mismatch',
      'ID token: it carries no nonce',
    )
  })

  it('another nonce: nonce_mismatch', async () => {
    const idToken = signedByA({ nonce: 'nonce-of-another-sign-in' })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null }),
      'nonce_mismatch',
      'ID token: its nonce is not the one of this sign-in',
    )
  })

  it('no sub, an empty sub, a sub that is not a string: id_token_invalid', async () => {
    for (const sub of [undefined, '', 42]) {
      const idToken = signedByA({ sub })
      expectFailure(await withToken(idToken, { jwksAnswer: null }), 'id_token_invalid')
    }
  })

  it('no iat, no exp, no aud, mistyped acr or amr: id_token_invalid', async () => {
    for (const extra of [
      { iat: undefined },
      { exp: undefined },
      { aud: undefined },
      { exp: 'tomorrow' },
      { acr: 2 },
      { amr: 'pwd' },
      { aud: [CLIENT_ID, 7], azp: CLIENT_ID },
    ]) {
      const idToken = signedByA(extra)
      expectFailure(await withToken(idToken, { jwksAnswer: null }), 'id_token_invalid')
    }
  })

  it('not a JWT, or an encrypted one: id_token_invalid', async () => {
    for (const idToken of ['not-a-jwt', 'a.b.c', 'a.b.c.d.e']) {
      expectFailure(await withToken(idToken, { jwksAnswer: null }), 'id_token_invalid')
    }
  })

  it('alg none: id_token_invalid, even when the issuer announces none', async () => {
    const idToken = signJwt(claims(), { none: true })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null }),
      'id_token_invalid',
      'ID token: unexpected JWT "alg" header parameter',
    )
    expectFailure(
      await withToken(idToken, {
        jwksAnswer: null,
        oidc: { signingAlgorithms: ['none', 'RS256'] },
      }),
      'id_token_invalid',
    )
  })

  it('HS256 signed with the client secret when RS256 is expected: id_token_invalid', async () => {
    const idToken = signJwt(claims(), { hmacSecret: SECRET })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null }),
      'id_token_invalid',
      'ID token: unexpected JWT "alg" header parameter',
    )
  })

  it('HS256 listed but keyed with something else than the client secret: id_token_signature_invalid', async () => {
    // The classic confusion: the issuer's public key used as the HMAC secret.
    const publicPem = createPublicKey(keyA.privateKey).export({ format: 'pem', type: 'spki' })
    const idToken = signJwt(claims(), { hmacSecret: publicPem.toString() })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null, oidc: { signingAlgorithms: ['HS256'] } }),
      'id_token_signature_invalid',
      'ID token: its signature does not verify with the client secret (HS256)',
    )
  })

  it('an algorithm the issuer did not announce: id_token_invalid', async () => {
    const es = generateSigningKey('es-1', 'ES256')
    const idToken = signJwt(claims(), { key: es })
    expectFailure(await withToken(idToken, { jwksAnswer: null }), 'id_token_invalid')
  })

  it('a crit header: id_token_invalid', async () => {
    const idToken = signedByA({}, { crit: ['exp'] })
    expectFailure(await withToken(idToken, { jwksAnswer: null }), 'id_token_invalid')
  })

  it('no kid while the issuer publishes several keys: id_token_signature_invalid', async () => {
    const idToken = signedByA({}, { kid: undefined })
    const result = await withToken(idToken, { jwksAnswer: jwks(keyA, keyB) })
    expectFailure(result, 'id_token_signature_invalid', /names no key id/)
  })

  it('an RSA key under 2048 bits: id_token_signature_invalid', async () => {
    const weak = generateSigningKey('weak', 'RS256', { modulusLength: 1024 })
    const idToken = signJwt(claims(), { key: weak })
    expectFailure(
      await withToken(idToken, { jwksAnswer: jwks(weak) }),
      'id_token_signature_invalid',
      /not usable/,
    )
  })

  it('claims nested too deeply, even when signed: id_token_invalid', async () => {
    let deep: unknown = 'bottom'
    for (let i = 0; i < 40; i++) deep = { deeper: deep }
    expectFailure(
      await withToken(signedByA({ deep })),
      'id_token_invalid',
      'ID token: its claims are nested too deeply',
    )
  })

  it('a claim check fails before any key is fetched', async () => {
    const before = idp.requestsTo('/jwks').length
    await withToken(signedByA({ nonce: 'other' }), { jwksAnswer: null })
    expect(idp.requestsTo('/jwks').length).toBe(before)
  })

  it('keeps the ID token, the claims and the secrets out of the log detail', async () => {
    const idToken = signedByA({ email: 'private@example.com', nonce: 'other' })
    const failure = expectFailure(await withToken(idToken, { jwksAnswer: null }), 'nonce_mismatch')
    expect(failure.detail).not.toContain(idToken)
    expect(failure.detail).not.toContain('private@example.com')
    expect(failure.detail).toBe(
      'OperationProcessingError OAUTH_JWT_CLAIM_COMPARISON_FAILED: unexpected ID Token "nonce" claim value',
    )
  })
})

describe('max_age (auth_time)', () => {
  it('auth_time within max_age: accepted', async () => {
    const idToken = signedByA({ auth_time: nowSeconds() - 30 })
    const result = await withToken(idToken, { oidc: { maxAgeSeconds: 300 } })
    expect(result.ok && result.value.idToken?.auth_time).toBeTypeOf('number')
  })

  it('auth_time older than max_age: insufficient_authentication', async () => {
    const idToken = signedByA({ auth_time: nowSeconds() - 3600 })
    expectFailure(
      await withToken(idToken, { jwksAnswer: null, oidc: { maxAgeSeconds: 300 } }),
      'insufficient_authentication',
      'ID token: the end user signed in longer ago than max_age allows',
    )
  })

  it('no auth_time although max_age was sent: insufficient_authentication', async () => {
    expectFailure(
      await withToken(signedByA(), { jwksAnswer: null, oidc: { maxAgeSeconds: 300 } }),
      'insufficient_authentication',
      'ID token: it carries no auth_time, which max_age requires',
    )
  })

  it('an auth_time that is not a number: id_token_invalid', async () => {
    const idToken = signedByA({ auth_time: 'yesterday' })
    expectFailure(await withToken(idToken, { jwksAnswer: null }), 'id_token_invalid')
  })
})

describe('the issuer’s key set (JWKS)', () => {
  it('is fetched once and reused by later sign-ins', async () => {
    const gateway = newGateway()
    const before = idp.requestsTo('/jwks').length
    expect((await withToken(signedByA(), { gateway })).ok).toBe(true)
    for (let i = 0; i < 3; i++) {
      expect((await withToken(signedByA(), { gateway, jwksAnswer: null })).ok).toBe(true)
    }
    expect(idp.requestsTo('/jwks').length - before).toBe(1)
  })

  it('is fetched once for concurrent sign-ins on a cold cache', async () => {
    const gateway = newGateway()
    const before = idp.requestsTo('/jwks').length
    const slowJwks: ProviderHandler = async (req, res) => {
      await new Promise((r) => setTimeout(r, 200))
      await jwks(keyA)(req, res)
    }
    idp.on('GET', '/jwks', slowJwks)
    idp.on('POST', '/token', tokenAnswer(signedByA()), { times: 5 })
    const results = await Promise.all(Array.from({ length: 5 }, () => exchange({ gateway })))
    expect(results.map((r) => r.ok)).toEqual([true, true, true, true, true])
    expect(idp.requestsTo('/jwks').length - before).toBe(1)
  })

  it('is refetched exactly once when the issuer rotates its key, then the sign-in succeeds', async () => {
    const gateway = newGateway()
    const before = idp.requestsTo('/jwks').length
    expect((await withToken(signedByA(), { gateway })).ok).toBe(true)
    // Rotation: the provider now signs with key B and publishes A and B.
    const rotated = signJwt(claims(), { key: keyB })
    const result = await withToken(rotated, { gateway, jwksAnswer: jwks(keyA, keyB) })
    expect(result.ok).toBe(true)
    expect(idp.requestsTo('/jwks').length - before).toBe(2)
    // Both keys are now known: no further fetch for either.
    expect((await withToken(signedByA(), { gateway, jwksAnswer: null })).ok).toBe(true)
    expect((await withToken(rotated, { gateway, jwksAnswer: null })).ok).toBe(true)
    expect(idp.requestsTo('/jwks').length - before).toBe(2)
  })

  it('unknown key ids shortly after a refetch cause no fetch storm', async () => {
    const gateway = newGateway()
    const before = idp.requestsTo('/jwks').length
    expect((await withToken(signedByA(), { gateway })).ok).toBe(true)
    expect(
      (await withToken(signJwt(claims(), { key: keyB }), { gateway, jwksAnswer: jwks(keyA, keyB) }))
        .ok,
    ).toBe(true)
    // Made-up key ids, one after another and at once: refused with the keys we have.
    const unknown = generateSigningKey('key-c')
    const forged = signJwt(claims(), { key: unknown })
    expectFailure(
      await withToken(forged, { gateway, jwksAnswer: null }),
      'id_token_signature_invalid',
      'ID token: it names a key the issuer does not publish (its key set was fetched again once)',
    )
    idp.on('POST', '/token', tokenAnswer(forged), { times: 10 })
    const burst = await Promise.all(Array.from({ length: 10 }, () => exchange({ gateway })))
    for (const r of burst) expectFailure(r, 'id_token_signature_invalid')
    expect(idp.requestsTo('/jwks').length - before).toBe(2)
  })

  it('a rotation right after the first fetch is picked up (one refetch, not after a wait)', async () => {
    const gateway = newGateway()
    const before = idp.requestsTo('/jwks').length
    expect((await withToken(signedByA(), { gateway })).ok).toBe(true)
    const result = await withToken(signJwt(claims(), { key: keyB }), {
      gateway,
      jwksAnswer: jwks(keyB),
    })
    expect(result.ok).toBe(true)
    expect(idp.requestsTo('/jwks').length - before).toBe(2)
  })

  it('an unknown key that is still unknown after the refetch: id_token_signature_invalid', async () => {
    const gateway = newGateway()
    idp.on('GET', '/jwks', jwks(keyA))
    const result = await withToken(signJwt(claims(), { key: keyB }), { gateway })
    expectFailure(result, 'id_token_signature_invalid', /names a key the issuer does not publish/)
    expect(gateway.jwks.size().entries).toBe(1)
  })

  it('answering HTML: invalid_provider_response', async () => {
    const result = await withToken(signedByA(), {
      jwksAnswer: raw('<html>Sign in</html>', { headers: { 'content-type': 'text/html' } }),
    })
    expectFailure(
      result,
      'invalid_provider_response',
      'jwks request: the answer is an HTML page, not JSON',
    )
  })

  it('answering JSON that is not a key set: invalid_provider_response', async () => {
    for (const body of [[], { keys: 'none' }, { keys: [1] }, { notkeys: [] }]) {
      expectFailure(
        await withToken(signedByA(), { jwksAnswer: json(body) }),
        'invalid_provider_response',
        /^jwks request: the answer (is JSON but not an object|is not a key set)/,
      )
    }
  })

  it('answering an empty key set: id_token_signature_invalid after one refetch', async () => {
    idp.on('GET', '/jwks', json({ keys: [] }))
    expectFailure(
      await withToken(signedByA(), { jwksAnswer: json({ keys: [] }) }),
      'id_token_signature_invalid',
    )
  })

  it('answering a huge body: refused at 256 KiB', async () => {
    const result = await withToken(signedByA(), {
      jwksAnswer: flood({ totalBytes: 5 * 1024 * 1024 }),
    })
    expectFailure(
      result,
      'invalid_provider_response',
      'jwks request: the answer is larger than 262144 bytes',
    )
  })

  it('answering HTTP 500 or a redirect: provider_error, not followed', async () => {
    expectFailure(
      await withToken(signedByA(), { jwksAnswer: json({}, { status: 500 }) }),
      'provider_error',
      "jwks request: the issuer's key set answered HTTP 500",
    )
    expectFailure(
      await withToken(signedByA(), {
        jwksAnswer: raw('', {
          status: 302,
          headers: { location: `http://127.0.0.1:${canary.port}/` },
        }),
      }),
      'provider_error',
      "jwks request: the issuer's key set answered a redirect (HTTP 302), which is not followed",
    )
  })

  it('a key that cannot be imported: invalid_provider_response', async () => {
    const broken = { kty: 'RSA', kid: 'key-a', alg: 'RS256', use: 'sig', e: 'AQAB' } // no n
    expectFailure(
      await withToken(signedByA(), { jwksAnswer: json({ keys: [broken] }) }),
      'invalid_provider_response',
      "ID token: the issuer's key for it is malformed",
    )
  })

  it('not answering within the deadline: provider_timeout', async () => {
    const fast = newGateway({ connectTimeoutMs: 300, headersTimeoutMs: 300, deadlineMs: 600 })
    const started = Date.now()
    expectFailure(
      await withToken(signedByA(), { gateway: fast, jwksAnswer: hang() }),
      'provider_timeout',
      'jwks request: the provider did not answer in time',
    )
    expect(Date.now() - started).toBeLessThan(1600)
  })

  it('a failed fetch is not cached: the next sign-in fetches again', async () => {
    const gateway = newGateway()
    expectFailure(
      await withToken(signedByA(), { gateway, jwksAnswer: json({}, { status: 503 }) }),
      'provider_error',
    )
    expect((await withToken(signedByA(), { gateway })).ok).toBe(true)
  })

  it('on a loopback or private address: blocked_address, nothing sent, the address not quoted', async () => {
    const strict = newGateway({
      allowHosts: ['127.0.0.1'],
      resolver: async (host) => (host === 'keys.internal.example' ? ['10.0.0.7'] : ['127.0.0.1']),
    })
    for (const jwksUri of [
      `https://localhost:${canary.port}/jwks`,
      `https://keys.internal.example/jwks`,
      `https://[::1]:${canary.port}/jwks`,
      'https://169.254.169.254/latest/meta-data',
    ]) {
      idp.on('POST', '/token', tokenAnswer(signedByA()))
      const failure = expectFailure(
        await exchange({ gateway: strict, oidc: { jwksUri } }),
        'blocked_address',
        /^jwks request: host \S+ (is not a public address \(.+\)|resolves to an address that is not a public address), and the host is not in OUTBOUND_ALLOW_HOSTS$/,
      )
      expect(failure.failure.message).not.toMatch(/10\.0\.0\.7|127\.0\.0\.1/)
    }
  })

  it('over plain http to a host that is not allow-listed: blocked_address', async () => {
    idp.on('POST', '/token', tokenAnswer(signedByA()))
    expectFailure(
      await exchange({ oidc: { jwksUri: `http://localhost:${canary.port}/jwks` } }),
      'blocked_address',
      /^jwks request: plain http to localhost:\d+ refused: only hosts in OUTBOUND_ALLOW_HOSTS may use http$/,
    )
  })

  it('is bounded in entries, least recently used first', async () => {
    const gateway = newGateway({ jwks: { maxEntries: 2 } })
    for (const path of ['/jwks', '/jwks-2', '/jwks-3']) {
      idp.on('GET', path, jwks(keyA))
      idp.on('POST', '/token', tokenAnswer(signedByA()))
      expect((await exchange({ gateway, oidc: { jwksUri: idp.url(path) } })).ok).toBe(true)
    }
    expect(gateway.jwks.size().entries).toBe(2)
    // The first URI was dropped: it is fetched again.
    expect((await withToken(signedByA(), { gateway })).ok).toBe(true)
  })

  it('is fetched again once its maximum age has passed', async () => {
    let now = Date.now()
    const gateway = newGateway({ jwks: { maxAgeMs: 60_000, now: () => now } })
    expect((await withToken(signedByA(), { gateway })).ok).toBe(true)
    now += 30_000
    expect((await withToken(signedByA(), { gateway, jwksAnswer: null })).ok).toBe(true)
    now += 31_000
    expect((await withToken(signedByA(), { gateway })).ok).toBe(true)
  })
})

describe('the callback’s iss (RFC 9207)', () => {
  it('a different iss: issuer_mismatch, no token request', async () => {
    const before = idp.requestsTo('/token').length
    expectFailure(
      await exchange({ callback: callbackUrl({ iss: 'https://evil.example' }) }),
      'issuer_mismatch',
      'authorization: the callback names a different issuer than the integration (RFC 9207)',
    )
    expect(idp.requestsTo('/token').length).toBe(before)
  })

  it('a different iss on an error answer: issuer_mismatch, not access_denied', async () => {
    const callback = callbackUrl({
      code: null,
      error: 'access_denied',
      iss: 'https://evil.example',
    })
    expectFailure(await exchange({ callback }), 'issuer_mismatch')
  })

  it('no iss although required: issuer_missing, with or without a configured issuer', async () => {
    for (const issuer of [
      { expected: idp.origin, required: true },
      { expected: null, required: true },
    ]) {
      for (const iss of [null, '']) {
        expectFailure(
          await exchange({ issuer, callback: callbackUrl({ iss }) }),
          'issuer_missing',
          'authorization: the callback carries no issuer (iss), which this integration requires (RFC 9207)',
        )
      }
    }
  })

  it('no iss, not required: accepted, recorded as null', async () => {
    idp.on('POST', '/token', tokenAnswer(signedByA()))
    idp.on('GET', '/jwks', jwks(keyA))
    const result = await exchange({
      issuer: { expected: idp.origin, required: false },
      callback: callbackUrl({ iss: null }),
    })
    expect(result.ok && result.value.callbackIssuer).toBeNull()
  })

  it('no issuer configured: iss is not checked, only recorded as it came', async () => {
    idp.on('POST', '/token', json({ access_token: ACCESS_TOKEN, token_type: 'bearer' }))
    const result = await exchange({
      oidc: null,
      issuer: { expected: null, required: false },
      callback: callbackUrl({ iss: 'https://someone-else.example' }),
    })
    expect(result).toEqual({
      ok: true,
      value: {
        accessToken: ACCESS_TOKEN,
        idToken: null,
        callbackIssuer: 'https://someone-else.example',
      },
    })
  })

  it('a repeated iss: invalid_request', async () => {
    const callback = callbackUrl()
    callback.searchParams.append('iss', idp.origin)
    expectFailure(await exchange({ callback }), 'invalid_request')
  })
})

describe('against oidc-provider', () => {
  let op: TestProvider
  let gateway: ReturnType<typeof createProviderGateway>
  const opKey = generateSigningKey('op-key-1')
  const hsClient = 'hs-client'

  beforeAll(async () => {
    op = await startTestProvider({
      accounts: { ada: { email: 'ada@example.com' } },
      signingKeys: [opKey.privateJwk],
      idTokenSigningAlgValues: ['RS256', 'HS256'],
    })
    const base = {
      client_secret: SECRET,
      token_endpoint_auth_method: 'client_secret_post',
      redirect_uris: [REDIRECT_URI],
    } as const
    await op.registerClient({ client_id: CLIENT_ID, ...base })
    await op.registerClient({ client_id: hsClient, ...base, id_token_signed_response_alg: 'HS256' })
  })

  afterAll(async () => {
    await op.close()
  })

  /** A browser sign-in at oidc-provider; then the gateway's exchange of its callback. */
  async function signInAt(
    options: {
      readonly clientId?: string
      readonly authorize?: Record<string, string>
      readonly oidc?: Partial<OidcExpectations>
      readonly tamper?: (callback: URL) => void
      readonly gateway?: ReturnType<typeof createProviderGateway>
    } = {},
  ) {
    const clientId = options.clientId ?? CLIENT_ID
    const verifier = oauth.generateRandomCodeVerifier()
    const state = oauth.generateRandomState()
    const url = new URL(op.authorizationUrl)
    const params: Record<string, string> = {
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: 'openid email',
      state,
      nonce: NONCE,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      ...options.authorize,
    }
    // An empty value leaves the parameter out.
    for (const [k, v] of Object.entries(params)) if (v !== '') url.searchParams.set(k, v)
    const callback = new URL(await loginAtTestProvider(new ScriptedBrowser(), url.href, 'ada'))
    options.tamper?.(callback)
    const tokensBefore = op.tokenRequests()
    gateway ??= newGatewayForOp()
    const result = await (options.gateway ?? gateway).exchangeCode({
      integration: integrationFor({ clientId, tokenUrl: op.tokenUrl, issuer: op.issuer }),
      clientSecret: SECRET,
      callbackUrl: callback,
      expectedState: state,
      issuer: { expected: op.issuer, required: true },
      redirectUri: REDIRECT_URI,
      codeVerifier: verifier,
      oidc: {
        nonce: NONCE,
        issuer: op.issuer,
        jwksUri: op.jwksUrl,
        signingAlgorithms: null,
        maxAgeSeconds: null,
        ...options.oidc,
      },
    })
    return { result, tokenRequests: op.tokenRequests() - tokensBefore }
  }

  // Not in `gateways`: it lives for the whole describe, so its key cache spans the cases.
  function newGatewayForOp() {
    return createProviderGateway({ allowHosts: ['127.0.0.1'] })
  }

  afterAll(async () => {
    await gateway?.close()
  })

  it('signs in: the ID token validated, its claims returned, the callback iss recorded', async () => {
    const { result } = await signInAt({
      authorize: { max_age: '300' },
      oidc: { maxAgeSeconds: 300 },
    })
    expect(result.ok).toBe(true)
    if (!result.ok) return
    expect(result.value.accessToken).toEqual(expect.any(String))
    expect(result.value.callbackIssuer).toBe(op.issuer)
    expect({ ...result.value.idToken }).toMatchObject({
      iss: op.issuer,
      sub: 'ada',
      aud: CLIENT_ID,
      nonce: NONCE,
      auth_time: expect.any(Number),
    })
  })

  it('fetches its JWKS once for several sign-ins', async () => {
    const fresh = newGatewayForOp()
    try {
      const before = op.jwksRequests()
      for (let i = 0; i < 3; i++) expect((await signInAt({ gateway: fresh })).result.ok).toBe(true)
      expect(op.jwksRequests() - before).toBe(1)
    } finally {
      await fresh.close()
    }
  })

  it('an integration issuer the token does not name: id_token_issuer_mismatch', async () => {
    const { result } = await signInAt({ oidc: { issuer: `${op.issuer}/` } })
    expectFailure(result, 'id_token_issuer_mismatch')
  })

  it('a nonce other than the one sent: nonce_mismatch', async () => {
    const { result } = await signInAt({ authorize: { nonce: 'another-nonce-0123456789' } })
    expectFailure(result, 'nonce_mismatch', 'ID token: its nonce is not the one of this sign-in')
  })

  it('no nonce sent, one expected: nonce_mismatch', async () => {
    const { result } = await signInAt({ authorize: { nonce: '' } })
    expectFailure(result, 'nonce_mismatch', 'ID token: it carries no nonce')
  })

  it('max_age expected but not sent (no auth_time): insufficient_authentication', async () => {
    const { result } = await signInAt({ oidc: { maxAgeSeconds: 300 } })
    expectFailure(result, 'insufficient_authentication', /carries no auth_time/)
  })

  it('an HS256 ID token when RS256 is expected: id_token_invalid', async () => {
    const { result } = await signInAt({ clientId: hsClient })
    expectFailure(result, 'id_token_invalid', 'ID token: unexpected JWT "alg" header parameter')
  })

  it('an HS256 ID token when the integration lists HS256: verified with the client secret', async () => {
    const { result } = await signInAt({
      clientId: hsClient,
      oidc: { signingAlgorithms: ['RS256', 'HS256'] },
    })
    expect(result.ok && result.value.idToken?.aud).toBe(hsClient)
  })

  it('a callback iss changed on the way: issuer_mismatch before any token request', async () => {
    const { result, tokenRequests } = await signInAt({
      tamper: (callback) => callback.searchParams.set('iss', 'https://evil.example'),
    })
    expectFailure(result, 'issuer_mismatch')
    expect(tokenRequests).toBe(0)
  })

  it('a callback iss removed on the way: issuer_missing before any token request', async () => {
    const { result, tokenRequests } = await signInAt({
      tamper: (callback) => callback.searchParams.delete('iss'),
    })
    expectFailure(result, 'issuer_missing')
    expect(tokenRequests).toBe(0)
  })
})
