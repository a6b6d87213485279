/**
 * The mix-up attack with code injection (RFC 9700 §4.4), as a review reproduced it when all
 * integrations shared the three callback URLs, run end to end against a real authorization
 * server (oidc-provider, the honest one, PKCE required) and a hostile one of the test's own:
 *
 * 1. The attacker opens a sign-in at acme's honest integration in the attacker's own conversation
 *    and keeps its authorization request (state and PKCE challenge are the attacker's).
 * 2. The victim opens a link of an integration that points at the attacker's server (another
 *    tenant's, or another integration of acme itself, malicious or compromised).
 * 3. The hostile server forwards the victim to acme's honest provider with acme's client_id,
 *    acme's redirect_uri, the victim's own state and the attacker's code_challenge.
 * 4. The victim signs in at the honest provider, which sends a code for acme's client back to
 *    acme's callback URL, with the victim's state.
 * 5. Before: the service found the victim's session by its state and posted the code (and the
 *    victim session's verifier) to the hostile token endpoint; the attacker then redeemed the code
 *    through his own acme session, whose verifier matches the challenge he chose, and acme's bot
 *    read AUTHENTICATED with the victim's identity in the attacker's conversation.
 *
 * Now the callback arrives on acme's integration's URL while its state belongs to a session
 * started for the hostile integration's URL: refused before any token request. The hostile token
 * endpoint receives nothing, so the attacker has no code to inject. Each case asserts what the
 * hostile server received and what the attacker's conversation shows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ScriptedBrowser, loginAtTestProvider } from '../helpers/browser.ts'
import { startFakeProvider, type FakeProvider } from '../helpers/fake-provider.ts'
import {
  arriveAtCallback,
  createFlowApp,
  poll,
  postLink,
  redirectUrl,
  seedIntegration,
  seedProviderIntegration,
  start,
  type SeededIntegration,
} from '../helpers/flow.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import type { SeededTenant, TestApp } from '../helpers/test-app.ts'

const ACME_CLIENT = { clientId: 'acme-client', clientSecret: 'acme-secret-0123456789' }

describe('the mix-up attack through a hostile provider', () => {
  let t: TestApp
  let honest: TestProvider
  let hostile: FakeProvider
  let acme: SeededTenant
  let globex: SeededTenant
  let acmeHonest: SeededIntegration
  /** What the hostile server's authorize endpoint forwards the victim with. */
  let forward: { codeChallenge: string } | null = null

  beforeAll(async () => {
    t = await createFlowApp()
    honest = await startTestProvider({
      accounts: { victim: { email: 'victim@example.com', name: 'Vic Tim' } },
    })
    hostile = await startFakeProvider()
    acme = await t.seedTenant('acme-mixup')
    globex = await t.seedTenant('globex-mixup')
    acmeHonest = await seedProviderIntegration(t, acme, honest, ACME_CLIENT, {
      // No issuer, so plain OAuth (openid only so that the provider's userinfo answers): the
      // defence must not depend on the provider naming itself in `iss` or on ID tokens.
      scope: 'openid email profile',
      whoAmIMapping: '{userName: sub, email: email}',
    })
    // The hostile server sends every browser on to acme's honest provider as acme's client,
    // to acme's callback URL, keeping the victim's state and putting in the attacker's challenge.
    hostile.on(
      'GET',
      '/start',
      (req, res) => {
        const next = new URL(honest.authorizationUrl)
        next.searchParams.set('response_type', 'code')
        next.searchParams.set('client_id', ACME_CLIENT.clientId)
        next.searchParams.set('redirect_uri', redirectUrl(acmeHonest, 'IDP'))
        next.searchParams.set('scope', 'openid email profile')
        next.searchParams.set('state', req.query.get('state')!)
        next.searchParams.set('code_challenge', forward!.codeChallenge)
        next.searchParams.set('code_challenge_method', 'S256')
        res.writeHead(302, { location: next.href, connection: 'close' })
        res.end()
      },
      { times: 10 },
    )
  })
  afterAll(async () => {
    await t?.close()
    await honest?.close()
    await hostile?.close()
  })

  /** An integration whose provider is the attacker's server, saved with the given admin key. */
  function hostileIntegration(owner: SeededTenant): Promise<SeededIntegration> {
    return seedIntegration(t, owner, {
      clientId: 'attacker-client',
      clientSecret: 'attacker-secret-0123456789',
      scope: 'email profile',
      authorizationUrl: hostile.url('/start'),
      tokenUrl: hostile.url('/token'),
    })
  }

  async function attack(owner: SeededTenant): Promise<void> {
    const malicious = await hostileIntegration(owner)
    const tokensBefore = hostile.requestsTo('/token').length

    // 1. The attacker's own sign-in at acme's honest integration, in the attacker's conversation.
    const attackerBrowser = new ScriptedBrowser()
    const attackerStart = await start(t, acme.agentKey, {
      integrationId: acmeHonest.id,
      conversationId: `attacker-conversation-${owner.slug}`,
    })
    const attackerAuthorize = await postLink(attackerBrowser, attackerStart.authorizationLink)
    forward = { codeChallenge: attackerAuthorize.searchParams.get('code_challenge')! }

    // 2. The victim opens a link of the hostile integration.
    const victimBrowser = new ScriptedBrowser()
    const victimStart = await start(t, owner.agentKey, {
      integrationId: malicious.id,
      conversationId: `victim-lure-${owner.slug}`,
    })
    const toHostile = await postLink(victimBrowser, victimStart.authorizationLink)
    expect(toHostile.origin).toBe(hostile.origin)

    // 3. + 4. Forwarded to the honest provider, the victim signs in; the code comes back to
    // acme's callback URL with the victim session's state.
    const forwarded = await victimBrowser.request(toHostile.href)
    expect(forwarded.status).toBe(302)
    const callback = await loginAtTestProvider(
      victimBrowser,
      forwarded.headers.get('location')!,
      'victim',
    )
    const callbackUrl = new URL(callback)
    expect(callbackUrl.origin + callbackUrl.pathname).toBe(redirectUrl(acmeHonest, 'IDP'))
    expect(callbackUrl.searchParams.get('state')).toBe(toHostile.searchParams.get('state'))
    const victimCode = callbackUrl.searchParams.get('code')!
    const honestTokens = honest.tokenRequests()
    const { result } = await arriveAtCallback(victimBrowser, callback)
    const honestTokensAfterVictim = honest.tokenRequests()

    // 5. Whatever the hostile token endpoint received, the attacker now tries to redeem through
    // his own session (his browser, his cookie, his state; PKCE passes, he chose the challenge).
    const received = hostile.requestsTo('/token').slice(tokensBefore)
    const stolen = received.map((r) => r.form.get('code')).find((c) => c != null)
    if (stolen) {
      const injected = new URL(redirectUrl(acmeHonest, 'IDP'))
      injected.searchParams.set('code', stolen)
      injected.searchParams.set('state', attackerAuthorize.searchParams.get('state')!)
      await arriveAtCallback(attackerBrowser, injected.href)
    }

    // The attacker's conversation holds no identity (before: AUTHENTICATED as the victim).
    const attackerSession = await poll(t, acme.agentKey, attackerStart.session.id)
    expect(attackerSession).toMatchObject({ status: 'OPENED', identity: null })
    // The hostile token endpoint received nothing: no code, no verifier, no secret.
    expect(received).toEqual([])
    for (const request of hostile.requests) {
      expect(request.body).not.toContain(victimCode)
      expect(request.query.toString()).not.toContain(victimCode)
    }
    // The victim's callback was refused at once, before any token request: another
    // integration's callback URL than the one its session was started with.
    expect(result.status).toBe(400)
    expect(honestTokensAfterVictim).toBe(honestTokens)
    const lure = await poll(t, owner.agentKey, victimStart.session.id)
    expect(lure).toMatchObject({ status: 'OPENED', identity: null })
    // The refusal is in the audit trail of the lure's tenant, with the reason.
    const audit = await t.deps.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'auth_session.callback_refused')
      .where('target_id', '=', victimStart.session.id)
      .execute()
    expect(audit).toHaveLength(1)
    expect(audit[0]!.details).toMatchObject({ reason: 'wrong_route' })
  }

  it('fails across tenants on a shared host: the victim’s code never reaches the hostile token endpoint', async () => {
    await attack(globex)
  })

  it('fails inside one tenant, with a malicious or compromised second integration', async () => {
    await attack(acme)
  })
})
