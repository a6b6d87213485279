/**
 * How much an identity proves, through whole sign-ins: OpenID Connect against oidc-provider (its
 * endpoints and keys found by discovery), and against a hostile provider that hands out crafted
 * ID tokens. Each failing case asserts the failure code, that the contact a bot relies on is
 * exactly as it was, and that the access token was never used (no WhoAmI request) after a failed
 * check. The contact rules (verified email, no silent merge, expiry) are followed through the
 * API as a bot reads them.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ScriptedBrowser } from '../helpers/browser.ts'
import {
  startFakeProvider,
  type FakeProvider,
  type ProviderHandler,
} from '../helpers/fake-provider.ts'
import {
  arriveAtCallback,
  createFlowApp,
  poll,
  postLink,
  seedIntegration,
  signIn,
  start,
  type SessionView,
  type StartInput,
} from '../helpers/flow.ts'
import { generateSigningKey, signJwt, type Signer, type SigningKey } from '../helpers/jwt.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import type { SeededTenant, TestApp } from '../helpers/test-app.ts'

const CONTACT = `query ($contactId: String!) {
  contact(contactId: $contactId) {
    contactId email userName fullName firstName lastName
    verified verifiedAt verifiedUntil verifiedBySessionId verifiedIntegrationId verifiedSubject verifiedIssuer
  }
}`

interface ContactView {
  readonly contactId: string
  readonly email: string | null
  readonly userName: string | null
  readonly fullName: string | null
  readonly verified: boolean
  readonly verifiedAt: string | null
  readonly verifiedUntil: string | null
  readonly verifiedBySessionId: string | null
  readonly verifiedIntegrationId: string | null
  readonly verifiedSubject: string | null
  readonly verifiedIssuer: string | null
}

const ASSURANCE = `query ($id: ID!) {
  authSession(id: $id) {
    status contactUpdate failure { code message }
    identity { subject issuer email emailVerified userName fullName authTime acr amr }
  }
}`

interface AssuranceView {
  readonly status: string
  readonly contactUpdate: string | null
  readonly failure: { readonly code: string; readonly message: string } | null
  readonly identity: {
    readonly subject: string | null
    readonly issuer: string | null
    readonly email: string | null
    readonly emailVerified: boolean | null
    readonly userName: string | null
    readonly fullName: string | null
    readonly authTime: string | null
    readonly acr: string | null
    readonly amr: readonly string[] | null
  } | null
}

const INTEGRATION = `query ($id: ID!) {
  oauthIntegration(id: $id) { authorizationUrl tokenUrl whoAmIUrl issuer discoveredAt }
}`

let conversations = 0
const conversation = () => `conv-${++conversations}`

async function readContact(
  t: TestApp,
  key: string,
  contactId: string,
): Promise<ContactView | null> {
  const found = await t.gql<{ contact: ContactView | null }>(key, CONTACT, { contactId })
  expect(found.errors).toBeUndefined()
  return found.data!.contact
}

async function readSession(t: TestApp, key: string, id: string): Promise<AssuranceView> {
  const found = await t.gql<{ authSession: AssuranceView }>(key, ASSURANCE, { id })
  expect(found.errors).toBeUndefined()
  return found.data!.authSession
}

async function auditActions(t: TestApp, tenantId: string, action: string) {
  return t.deps.db
    .selectFrom('audit_events')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('action', '=', action)
    .execute()
}

describe('identity assurance against oidc-provider (discovery, ID token, contact rules)', () => {
  let t: TestApp
  let provider: TestProvider
  let tenant: SeededTenant
  /** Added to the service's clock (the tests of verification expiry move it). */
  let clockOffsetMs = 0
  let discovered: string
  let trusting: string
  let expiring: string

  beforeAll(async () => {
    t = await createFlowApp({ now: () => new Date(Date.now() + clockOffsetMs) })
    provider = await startTestProvider({
      accounts: {
        alice: { email: 'alice@example.com', email_verified: true, name: 'Alice Liddell' },
        mallory: { email: 'mallory@example.com', email_verified: true, name: 'Mallory Mole' },
        bob: { email: 'bob@example.com', email_verified: false, name: 'Bob Unverified' },
        carol: { email: 'carol@example.com', name: 'Carol Silent' },
      },
    })
    tenant = await t.seedTenant('assurance')
    const client = { clientId: 'assurance-client', clientSecret: 'assurance-secret-0123456789' }
    const create = async (input: Record<string, unknown>) => {
      // Only the issuer: the endpoints, the keys and the userinfo URL come from its metadata.
      const integration = await seedIntegration(t, tenant, {
        clientId: client.clientId,
        clientSecret: client.clientSecret,
        scope: 'openid email profile',
        issuer: provider.issuer,
        ...input,
      })
      await provider.registerClient({
        client_id: client.clientId,
        client_secret: client.clientSecret,
        token_endpoint_auth_method: 'client_secret_post',
        redirect_uris: [...integration.redirectUrls],
      })
      return integration.id
    }
    discovered = await create({})
    trusting = await create({ trustUnverifiedEmail: true })
    expiring = await create({ verificationTtlSeconds: 3600 })
  })
  afterAll(async () => {
    await t?.close()
    await provider?.close()
  })
  beforeEach(() => {
    clockOffsetMs = 0
  })

  async function signInAs(account: string, input: Omit<StartInput, 'conversationId'>) {
    const signedIn = await signIn(
      t,
      tenant.agentKey,
      { conversationId: conversation(), ...input },
      account,
    )
    const session = await readSession(t, tenant.agentKey, signedIn.started.session.id)
    return { ...signedIn, session, contactId: signedIn.started.session.contactId }
  }

  it('fills the endpoints from the issuer’s metadata and signs in with a validated ID token', async () => {
    const read = await t.gql<{ oauthIntegration: Record<string, string | null> }>(
      tenant.adminKey,
      INTEGRATION,
      { id: discovered },
    )
    expect(read.data?.oauthIntegration).toMatchObject({
      authorizationUrl: provider.authorizationUrl,
      tokenUrl: provider.tokenUrl,
      whoAmIUrl: provider.userinfoUrl,
      issuer: provider.issuer,
    })
    expect(read.data?.oauthIntegration.discoveredAt).not.toBeNull()

    const { session, authorizationUrl, contactId, started } = await signInAs('alice', {
      integrationId: discovered,
    })
    // A nonce is sent, derived from nothing the browser sees in the link.
    const nonce = authorizationUrl.searchParams.get('nonce')
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(authorizationUrl.searchParams.get('state')).not.toBe(nonce)
    expect(session).toMatchObject({
      status: 'AUTHENTICATED',
      contactUpdate: 'FILLED',
      identity: {
        subject: 'alice',
        issuer: provider.issuer,
        email: 'alice@example.com',
        emailVerified: true,
        fullName: 'Alice Liddell',
      },
    })
    // oidc-provider states auth_time only when asked (max_age, below).
    expect(session.identity!.authTime).toBeNull()
    expect(await readContact(t, tenant.agentKey, contactId)).toMatchObject({
      email: 'alice@example.com',
      fullName: 'Alice Liddell',
      verified: true,
      verifiedUntil: null,
      verifiedBySessionId: started.session.id,
      verifiedIntegrationId: discovered,
      verifiedSubject: 'alice',
      verifiedIssuer: provider.issuer,
    })
  })

  it('an email the provider marks unverified is in the identity but never fills the contact', async () => {
    const { session, contactId } = await signInAs('bob', { integrationId: discovered })
    expect(session).toMatchObject({
      status: 'AUTHENTICATED',
      contactUpdate: 'FILLED',
      identity: { subject: 'bob', email: 'bob@example.com', emailVerified: false },
    })
    expect(await readContact(t, tenant.agentKey, contactId)).toMatchObject({
      email: null,
      fullName: 'Bob Unverified',
      verified: true,
      verifiedSubject: 'bob',
    })
  })

  it('an unverified email fills the contact when the integration trusts unverified emails', async () => {
    const { session, contactId } = await signInAs('bob', { integrationId: trusting })
    expect(session.identity).toMatchObject({ email: 'bob@example.com', emailVerified: false })
    expect(await readContact(t, tenant.agentKey, contactId)).toMatchObject({
      email: 'bob@example.com',
    })
  })

  it('an email the provider says nothing about fills the contact, emailVerified null', async () => {
    const { session, contactId } = await signInAs('carol', { integrationId: discovered })
    expect(session.identity).toMatchObject({ email: 'carol@example.com', emailVerified: null })
    expect(await readContact(t, tenant.agentKey, contactId)).toMatchObject({
      email: 'carol@example.com',
    })
  })

  it('alice, then mallory into the same contact: mallory is AUTHENTICATED, the contact stays alice’s (CONFLICT, audited)', async () => {
    const contactId = 'shared-contact'
    const first = await signInAs('alice', { integrationId: discovered, contactId })
    expect(first.session.contactUpdate).toBe('FILLED')
    const alices = await readContact(t, tenant.agentKey, contactId)
    expect(alices).toMatchObject({ email: 'alice@example.com', verifiedSubject: 'alice' })
    const auditedBefore = (await auditActions(t, tenant.id, 'contact.conflict')).length

    const second = await signInAs('mallory', { integrationId: discovered, contactId })
    expect(second.session).toMatchObject({
      status: 'AUTHENTICATED',
      contactUpdate: 'CONFLICT',
      identity: { subject: 'mallory', email: 'mallory@example.com' },
    })
    // Not one field of the contact moved, not even its verification time.
    expect(await readContact(t, tenant.agentKey, contactId)).toEqual(alices)
    const audited = await auditActions(t, tenant.id, 'contact.conflict')
    expect(audited).toHaveLength(auditedBefore + 1)
    expect(audited.at(-1)).toMatchObject({ target_type: 'contact', target_id: contactId })
    expect(JSON.stringify(audited.at(-1)!.details)).toContain(second.started.session.id)
    expect(JSON.stringify(audited.at(-1)!.details)).not.toContain('mallory@example.com')

    // Alice again: the same person, nothing new to write, the verification refreshed.
    const third = await signInAs('alice', { integrationId: discovered, contactId })
    expect(third.session.contactUpdate).toBe('UNCHANGED')
    expect(await readContact(t, tenant.agentKey, contactId)).toMatchObject({
      email: 'alice@example.com',
      verifiedBySessionId: third.started.session.id,
    })
  })

  it('a verification expires verificationTtlSeconds after the sign-in (clock moved), and a new sign-in renews it', async () => {
    const contactId = 'expiring-contact'
    const signedAt = Date.now()
    await signInAs('alice', { integrationId: expiring, contactId })
    const fresh = await readContact(t, tenant.agentKey, contactId)
    expect(fresh?.verified).toBe(true)
    const until = Date.parse(fresh!.verifiedUntil!)
    expect(until - signedAt).toBeGreaterThanOrEqual(3600_000 - 2000)
    expect(until - Date.now()).toBeLessThanOrEqual(3600_000)

    clockOffsetMs = until - Date.now() - 1000
    expect((await readContact(t, tenant.agentKey, contactId))?.verified).toBe(true)
    clockOffsetMs = until - Date.now() + 1000
    const stale = await readContact(t, tenant.agentKey, contactId)
    expect(stale).toMatchObject({ verified: false, verifiedUntil: fresh!.verifiedUntil })

    clockOffsetMs = 0
    await signInAs('alice', { integrationId: expiring, contactId })
    const renewed = await readContact(t, tenant.agentKey, contactId)
    expect(renewed?.verified).toBe(true)
    expect(Date.parse(renewed!.verifiedUntil!)).toBeGreaterThan(until)
  })

  it('max_age the provider honours: AUTHENTICATED with a recent auth_time', async () => {
    const { session, authorizationUrl } = await signInAs('carol', {
      integrationId: discovered,
      maxAgeSeconds: 300,
    })
    expect(authorizationUrl.searchParams.get('max_age')).toBe('300')
    expect(session.status).toBe('AUTHENTICATED')
    expect(Date.now() - Date.parse(session.identity!.authTime!)).toBeLessThan(300_000)
  })

  it('acr_values the provider does not honour: FAILED insufficient_authentication, contact unchanged, no userinfo call', async () => {
    const contactId = 'acr-contact'
    await signInAs('alice', { integrationId: discovered, contactId })
    const before = await readContact(t, tenant.agentKey, contactId)
    const userinfoBefore = provider.userinfoRequests()

    const { session, authorizationUrl, result } = await signInAs('alice', {
      integrationId: discovered,
      contactId,
      acrValues: ['urn:example:loa:3'],
    })
    expect(authorizationUrl.searchParams.get('acr_values')).toBe('urn:example:loa:3')
    expect(session).toMatchObject({
      status: 'FAILED',
      identity: null,
      contactUpdate: null,
      failure: { code: 'insufficient_authentication' },
    })
    expect(session.failure!.message).toContain('acr')
    expect(await result.text()).toContain('Sign-in did not work')
    expect(provider.userinfoRequests()).toBe(userinfoBefore)
    expect(await readContact(t, tenant.agentKey, contactId)).toEqual(before)
  })
})

/**
 * A provider that signs whatever ID token a case asks for: discovery, keys, authorization (a
 * redirect straight back with `iss`), token and userinfo, on a fake server whose requests are
 * counted. One integration, found by discovery; each case scripts one sign-in.
 */
describe('crafted ID tokens through a whole sign-in', () => {
  const CLIENT_ID = 'crafted-client'
  const ACCOUNT = {
    sub: 'alice-1',
    email: 'alice@example.com',
    email_verified: true,
    name: 'Alice',
  }
  let t: TestApp
  let idp: FakeProvider
  let tenant: SeededTenant
  let integrationId: string
  let key: SigningKey
  let n = 0

  const issuer = () => idp.origin
  const metadata = () => ({
    issuer: issuer(),
    authorization_endpoint: idp.url('/authorize'),
    token_endpoint: idp.url('/token'),
    userinfo_endpoint: idp.url('/userinfo'),
    jwks_uri: idp.url('/jwks'),
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    authorization_response_iss_parameter_supported: true,
  })
  const json =
    (body: unknown): ProviderHandler =>
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }

  beforeAll(async () => {
    t = await createFlowApp()
    idp = await startFakeProvider()
    key = generateSigningKey('key-1')
    tenant = await t.seedTenant('crafted')
    idp.on('GET', '/.well-known/openid-configuration', json(metadata()))
    const integration = await seedIntegration(t, tenant, {
      clientId: CLIENT_ID,
      clientSecret: 'crafted-secret-0123456789',
      scope: 'openid email profile',
      issuer: issuer(),
    })
    integrationId = integration.id
  })
  afterAll(async () => {
    await t?.close()
    await idp?.close()
  })

  interface Crafted {
    /** Claims over a valid set (iss, aud, sub, iat, exp, nonce, auth_time); undefined drops one. */
    readonly claims?: Record<string, unknown>
    readonly signer?: Signer
    readonly header?: Record<string, unknown>
    /** The userinfo answer, when the case expects the sign-in to get that far. */
    readonly userinfo?: Record<string, unknown>
    /** Keys the JWKS endpoint serves (default the current key), and how often it is asked. */
    readonly jwks?: { readonly keys: readonly SigningKey[]; readonly times: number }
  }

  interface CraftedOutcome {
    readonly session: SessionView
    readonly contactId: string
    readonly userinfoRequests: number
    readonly tokenRequests: number
    /** The authorization request's parameters, as the provider received them. */
    readonly authorizeQuery: URLSearchParams
  }

  async function signInWith(
    crafted: Crafted,
    contactId: string,
    stepUp: Pick<StartInput, 'maxAgeSeconds' | 'acrValues'> = {},
  ): Promise<CraftedOutcome> {
    n += 1
    const code = `crafted-code-${n}-0123456789`
    let nonce: string | null = null
    let authorizeQuery = new URLSearchParams()
    idp.on('GET', '/authorize', (req, res) => {
      authorizeQuery = req.query
      nonce = req.query.get('nonce')
      const back = new URL(req.query.get('redirect_uri')!)
      back.searchParams.set('code', code)
      back.searchParams.set('state', req.query.get('state')!)
      back.searchParams.set('iss', issuer())
      res.writeHead(302, { location: back.href, connection: 'close' })
      res.end()
    })
    idp.on('POST', '/token', (_req, res) => {
      const now = Math.floor(Date.now() / 1000)
      const claims: Record<string, unknown> = {
        iss: issuer(),
        aud: CLIENT_ID,
        sub: ACCOUNT.sub,
        iat: now,
        exp: now + 300,
        auth_time: now - 5,
        nonce,
        ...crafted.claims,
      }
      for (const [name, value] of Object.entries(claims)) {
        if (value === undefined) delete claims[name]
      }
      const idToken = signJwt(claims, crafted.signer ?? { key }, crafted.header)
      json({ access_token: `at-${n}`, token_type: 'Bearer', expires_in: 60, id_token: idToken })(
        _req,
        res,
      )
    })
    if (crafted.jwks) {
      idp.on('GET', '/jwks', json({ keys: crafted.jwks.keys.map((k) => k.publicJwk) }), {
        times: crafted.jwks.times,
      })
    }
    if (crafted.userinfo) idp.on('GET', '/userinfo', json(crafted.userinfo))

    const userinfoBefore = idp.requestsTo('/userinfo').length
    const tokenBefore = idp.requestsTo('/token').length
    const { authorizationLink, session } = await start(t, tenant.agentKey, {
      integrationId,
      conversationId: conversation(),
      contactId,
      ...stepUp,
    })
    const browser = new ScriptedBrowser()
    const authorizeUrl = await postLink(browser, authorizationLink)
    expect(authorizeUrl.href.startsWith(idp.url('/authorize?'))).toBe(true)
    const back = await browser.request(authorizeUrl.href)
    expect(back.status).toBe(302)
    await arriveAtCallback(browser, back.headers.get('location')!)
    idp.assertAllCalled()
    return {
      session: (await poll(t, tenant.agentKey, session.id))!,
      contactId,
      userinfoRequests: idp.requestsTo('/userinfo').length - userinfoBefore,
      tokenRequests: idp.requestsTo('/token').length - tokenBefore,
      authorizeQuery,
    }
  }

  /** A contact verified by a good sign-in of the account; returns it as the bot reads it. */
  async function verifiedContact(contactId: string): Promise<ContactView> {
    const first = await signInWith(
      {
        userinfo: ACCOUNT,
        ...(n === 0 ? { jwks: { keys: [key], times: 1 } } : {}),
      },
      contactId,
    )
    expect(first.session.status).toBe('AUTHENTICATED')
    const contact = await readContact(t, tenant.agentKey, contactId)
    expect(contact).toMatchObject({ email: ACCOUNT.email, verifiedSubject: ACCOUNT.sub })
    return contact!
  }

  const now = () => Math.floor(Date.now() / 1000)
  const otherKey = generateSigningKey('key-1')
  const cases: ReadonlyArray<readonly [string, Crafted, string]> = [
    [
      'a signature by another key under the same kid',
      { signer: { key: otherKey } },
      'id_token_signature_invalid',
    ],
    ['another issuer', { claims: { iss: 'https://evil.example' } }, 'id_token_issuer_mismatch'],
    ['another audience', { claims: { aud: 'someone-else' } }, 'id_token_audience_mismatch'],
    ['an expired token', { claims: { iat: now() - 3600, exp: now() - 1800 } }, 'id_token_expired'],
    ['no nonce', { claims: { nonce: undefined } }, 'nonce_mismatch'],
    ['another nonce', { claims: { nonce: 'not-the-one-we-sent' } }, 'nonce_mismatch'],
    ['alg none', { signer: { none: true } }, 'id_token_invalid'],
    [
      'an HS256 token keyed with the client secret',
      { signer: { hmacSecret: 'crafted-secret-0123456789' } },
      'id_token_invalid',
    ],
  ]

  for (const [name, crafted, code] of cases) {
    it(`${name}: FAILED ${code}, the contact unchanged, the access token never used`, async () => {
      const contactId = `crafted-${code}-${n}`
      const before = await verifiedContact(contactId)
      const outcome = await signInWith(crafted, contactId)
      expect(outcome.session).toMatchObject({
        status: 'FAILED',
        identity: null,
        contactUpdate: null,
        failure: { code },
      })
      expect(outcome.tokenRequests).toBe(1)
      expect(outcome.userinfoRequests).toBe(0)
      expect(await readContact(t, tenant.agentKey, contactId)).toEqual(before)
    })
  }

  it('a WhoAmI sub other than the ID token’s: FAILED subject_mismatch, the contact unchanged', async () => {
    const contactId = 'crafted-sub-mismatch'
    const before = await verifiedContact(contactId)
    const outcome = await signInWith({ userinfo: { ...ACCOUNT, sub: 'mallory-2' } }, contactId)
    expect(outcome.session).toMatchObject({
      status: 'FAILED',
      identity: null,
      failure: { code: 'subject_mismatch' },
    })
    expect(outcome.userinfoRequests).toBe(1)
    expect(await readContact(t, tenant.agentKey, contactId)).toEqual(before)
  })

  it('an auth_time older than max_age (the provider ignored it): FAILED insufficient_authentication', async () => {
    const contactId = 'crafted-max-age'
    const before = await verifiedContact(contactId)
    const outcome = await signInWith({ claims: { auth_time: now() - 3600 } }, contactId, {
      maxAgeSeconds: 600,
    })
    expect(outcome.authorizeQuery.get('max_age')).toBe('600')
    expect(outcome.session).toMatchObject({
      status: 'FAILED',
      identity: null,
      failure: { code: 'insufficient_authentication' },
    })
    expect(outcome.userinfoRequests).toBe(0)
    expect(await readContact(t, tenant.agentKey, contactId)).toEqual(before)
  })

  it('a key rotated at the provider: its key set fetched again once, not on every sign-in', async () => {
    await verifiedContact('crafted-rotation-warm')
    const jwksBefore = idp.requestsTo('/jwks').length
    key = generateSigningKey('key-2')
    // The new kid is unknown to the cache: exactly one refetch, then the sign-in succeeds.
    const rotated = await signInWith(
      { userinfo: ACCOUNT, jwks: { keys: [key], times: 1 } },
      'crafted-rotation',
    )
    expect(rotated.session.status).toBe('AUTHENTICATED')
    expect(idp.requestsTo('/jwks').length).toBe(jwksBefore + 1)
    const again = await signInWith({ userinfo: ACCOUNT }, 'crafted-rotation-2')
    expect(again.session.status).toBe('AUTHENTICATED')
    expect(idp.requestsTo('/jwks').length).toBe(jwksBefore + 1)
  })

  it('userinfo’s unverified email counts when the ID token has none: it does not fill the contact', async () => {
    const contactId = 'crafted-userinfo-unverified'
    const outcome = await signInWith(
      {
        claims: { email: undefined, email_verified: undefined },
        userinfo: { sub: ACCOUNT.sub, email: 'unverified@example.com', email_verified: false },
      },
      contactId,
    )
    expect(outcome.session).toMatchObject({
      status: 'AUTHENTICATED',
      identity: { email: 'unverified@example.com', emailVerified: false },
    })
    expect((await readContact(t, tenant.agentKey, contactId))?.email).toBeNull()
  })
})

describe('an integration without openid', () => {
  it('works as plain OAuth: no nonce sent, an ID token in the answer ignored, the identity from WhoAmI', async () => {
    const t = await createFlowApp()
    const idp = await startFakeProvider()
    try {
      const tenant = await t.seedTenant('plain-oauth')
      const { id: integrationId } = await seedIntegration(t, tenant, {
        clientId: 'plain-client',
        clientSecret: 'plain-secret-0123456789',
        scope: 'email profile',
        authorizationUrl: idp.url('/authorize'),
        tokenUrl: idp.url('/token'),
        whoAmIUrl: idp.url('/whoami'),
        whoAmIMapping: '{subject: id, email: mail, fullName: name}',
      })
      let authorizeQuery = new URLSearchParams()
      idp.on('GET', '/authorize', (req, res) => {
        authorizeQuery = req.query
        const back = new URL(req.query.get('redirect_uri')!)
        back.searchParams.set('code', 'plain-code-0123456789')
        back.searchParams.set('state', req.query.get('state')!)
        res.writeHead(302, { location: back.href, connection: 'close' })
        res.end()
      })
      idp.on('POST', '/token', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        // Not a JWT at all: a plain OAuth sign-in never looks at it.
        res.end(JSON.stringify({ access_token: 'at-plain', token_type: 'Bearer', id_token: 'x.y' }))
      })
      idp.on('GET', '/whoami', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ id: 42, mail: 'ada@example.com', name: 'Ada Lovelace' }))
      })
      const { authorizationLink, session } = await start(t, tenant.agentKey, {
        integrationId,
        conversationId: conversation(),
      })
      const browser = new ScriptedBrowser()
      const back = await browser.request((await postLink(browser, authorizationLink)).href)
      await arriveAtCallback(browser, back.headers.get('location')!)
      idp.assertAllCalled()
      expect(authorizeQuery.has('nonce')).toBe(false)
      expect(authorizeQuery.get('scope')).toBe('email profile')
      const read = await readSession(t, tenant.agentKey, session.id)
      expect(read).toMatchObject({
        status: 'AUTHENTICATED',
        contactUpdate: 'FILLED',
        identity: {
          subject: '42',
          issuer: null,
          email: 'ada@example.com',
          emailVerified: null,
          authTime: null,
          acr: null,
          amr: null,
        },
      })
      expect(await readContact(t, tenant.agentKey, session.contactId)).toMatchObject({
        email: 'ada@example.com',
        verifiedSubject: '42',
        verifiedIssuer: null,
        verifiedIntegrationId: integrationId,
      })
    } finally {
      await t.close()
      await idp.close()
    }
  })
})

describe('step-up on an integration that cannot check an ID token', () => {
  let t: TestApp
  let tenant: SeededTenant
  let plain: string
  let openidWithoutIssuer: string

  beforeAll(async () => {
    t = await createFlowApp()
    tenant = await t.seedTenant('plain')
    const urls = {
      clientSecret: 'plain-secret-0123456789',
      authorizationUrl: 'https://idp.example.com/authorize',
      tokenUrl: 'https://idp.example.com/token',
    }
    plain = (await seedIntegration(t, tenant, { clientId: 'plain', scope: 'email', ...urls })).id
    openidWithoutIssuer = (
      await seedIntegration(t, tenant, { clientId: 'no-issuer', scope: 'openid email', ...urls })
    ).id
  })
  afterAll(async () => {
    await t?.close()
  })

  for (const [field, value] of [
    ['maxAgeSeconds', 60],
    ['acrValues', ['urn:example:loa:2']],
  ] as const) {
    for (const which of ['plain OAuth', 'openid without an issuer'] as const) {
      it(`${field} on ${which}: BAD_USER_INPUT naming it, no session written`, async () => {
        const conversationId = conversation()
        const started = await t.gql(tenant.agentKey, START_DOCUMENT, {
          input: {
            integrationId: which === 'plain OAuth' ? plain : openidWithoutIssuer,
            conversationId,
            [field]: value,
          },
        })
        expect(started.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT')
        expect(started.errors?.[0]?.message).toContain(field)
        expect(started.errors?.[0]?.message).toContain('OpenID Connect')
        const rows = await t.deps.db
          .selectFrom('auth_sessions')
          .select('id')
          .where('conversation_id', '=', conversationId)
          .execute()
        expect(rows).toEqual([])
      })
    }
  }

  it('prompt and loginHint are passed to a plain OAuth provider', async () => {
    const { authorizationLink } = await start(t, tenant.agentKey, {
      integrationId: plain,
      conversationId: conversation(),
      prompt: 'login',
      loginHint: 'ada@example.com',
    })
    const url = await postLink(new ScriptedBrowser(), authorizationLink)
    expect(url.searchParams.get('prompt')).toBe('login')
    expect(url.searchParams.get('login_hint')).toBe('ada@example.com')
    expect(url.searchParams.has('nonce')).toBe(false)
  })
})

describe('discovery that names another issuer', () => {
  let t: TestApp
  let idp: FakeProvider
  let tenant: SeededTenant

  beforeAll(async () => {
    t = await createFlowApp()
    idp = await startFakeProvider()
    tenant = await t.seedTenant('mismatch')
  })
  afterAll(async () => {
    await t?.close()
    await idp?.close()
  })

  it('is refused on issuer, naming both issuers, and nothing is saved', async () => {
    idp.on('GET', '/.well-known/openid-configuration', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({
          issuer: 'https://accounts.attacker.example',
          authorization_endpoint: idp.url('/authorize'),
          token_endpoint: idp.url('/token'),
          jwks_uri: idp.url('/jwks'),
          response_types_supported: ['code'],
        }),
      )
    })
    const created = await t.gql(tenant.adminKey, CREATE_DOCUMENT, {
      input: {
        name: 'mismatched issuer',
        clientId: 'c',
        clientSecret: 'mismatch-secret-0123456789',
        scope: 'openid email',
        issuer: idp.origin,
      },
    })
    idp.assertAllCalled()
    const error = created.errors?.[0]
    expect(error?.extensions?.code).toBe('BAD_USER_INPUT')
    const fields = (error?.extensions as { fields?: Array<{ field: string }> } | undefined)?.fields
    expect(fields?.map((f) => f.field)).toEqual(['input.issuer'])
    expect(error?.message).toContain('https://accounts.attacker.example')
    expect(error?.message).toContain(idp.origin)
    const listed = await t.gql<{ oauthIntegrations: unknown[] }>(
      tenant.adminKey,
      '{ oauthIntegrations { id } }',
    )
    expect(listed.data?.oauthIntegrations).toEqual([])
  })
})

const START_DOCUMENT = `mutation ($input: StartEndUserAuthInput!) {
  startEndUserAuth(input: $input) { session { id } }
}`

const CREATE_DOCUMENT = `mutation ($input: CreateOAuthIntegrationInput!) {
  createOAuthIntegration(input: $input) { integration { id } }
}`
