/**
 * Webhooks end to end: real sign-ins at oidc-provider produce each event type, a receiver on
 * 127.0.0.1 (allow-listed through WEBHOOK_ALLOW_HOSTS only) verifies every delivery with the
 * `standardwebhooks` package, and the retries, timeouts, redirects, rotation, redelivery and
 * tenant isolation are read back over GraphQL. Retry waits are injected (tens of milliseconds).
 */
import { sql } from 'kysely'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listAttempts, listEventsOfSession } from '../../src/db/webhooks.ts'
import { sweepExpiredSessions } from '../../src/services/maintenance.ts'
import { ScriptedBrowser } from '../helpers/browser.ts'
import {
  CANCEL,
  complete,
  postLink,
  seedProviderIntegration,
  signIn,
  start,
  type SeededIntegration,
} from '../helpers/flow.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import { codes, createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'
import {
  CREATE_ENDPOINT,
  DELIVERIES,
  eventually,
  startWebhookReceiver,
  verify,
  type CreatedEndpoint,
  type DeliveryView,
  type ReceivedWebhook,
  type WebhookReceiver,
} from '../helpers/webhook-receiver.ts'

const SESSION_FIELDS = `id status conversationId contactId redirectRoute integration { id }
  createdAt expiresAt openedAt completedAt confirmationAttemptsLeft contactUpdate callbackIssuer
  failure { code message }
  identity { subject issuer emailVerified authTime acr amr email userName fullName firstName lastName attributes }`

describe('webhook delivery', () => {
  let t: TestApp
  let provider: TestProvider
  let receiver: WebhookReceiver
  let acme: SeededTenant
  let globex: SeededTenant
  let integration: SeededIntegration
  let confirming: SeededIntegration
  let endpointId: string
  let secret: string
  /** Added to the app's clock (the provider and the receiver keep real time). */
  let clockOffset = 0
  let conversation = 0

  beforeAll(async () => {
    provider = await startTestProvider({
      accounts: { ada: { email: 'ada@example.com', name: 'Ada Lovelace' } },
    })
    receiver = await startWebhookReceiver()
    t = await createTestApp({
      serve: true,
      now: () => new Date(Date.now() + clockOffset),
      // The provider's host:port only: the receiver's 127.0.0.1 port is open to webhooks alone.
      env: { OUTBOUND_ALLOW_HOSTS: provider.host, WEBHOOK_ALLOW_HOSTS: receiver.host },
      webhooks: {
        pollMs: 50,
        retryDelaysMs: [100, 100, 100],
        outbound: { headersTimeoutMs: 400, deadlineMs: 600 },
      },
    })
    acme = await t.seedTenant()
    globex = await t.seedTenant()
    const client = { clientId: `wh-${acme.slug}`, clientSecret: 'webhook-secret-0123456789' }
    const input = { whoAmIMapping: '{userName: sub, fullName: name, email: email}' }
    integration = await seedProviderIntegration(t, acme, provider, client, {
      ...input,
      issuer: provider.issuer,
    })
    confirming = await seedProviderIntegration(t, acme, provider, client, {
      ...input,
      issuer: provider.issuer,
      requireConfirmationCode: true,
    })
    const created = await t.gql<CreatedEndpoint>(acme.adminKey, CREATE_ENDPOINT, {
      input: { url: receiver.url },
    })
    expect(created.errors).toBeUndefined()
    endpointId = created.data!.createWebhookEndpoint.endpoint.id
    secret = created.data!.createWebhookEndpoint.secret
  })
  afterAll(async () => {
    await t?.close()
    await receiver?.close()
    await provider?.close()
  })

  const conversationId = () => `wh-conv-${++conversation}`

  async function deliveries(key = acme.adminKey, id = endpointId): Promise<DeliveryView[]> {
    const answer = await t.gql<{ webhookDeliveries: DeliveryView[] }>(key, DELIVERIES, {
      endpointId: id,
      first: 100,
    })
    expect(answer.errors).toBeUndefined()
    return answer.data!.webhookDeliveries
  }

  /** The requests for one session's events, in arrival order. */
  function receivedFor(sessionId: string, from: ReceivedWebhook[] = receiver.received) {
    return from.filter((r) => r.body.includes(`"id":"${sessionId}"`))
  }

  async function waitForSession(sessionId: string, count: number, timeoutMs = 10_000) {
    return eventually(
      async () => {
        const got = receivedFor(sessionId)
        return got.length >= count ? got : undefined
      },
      timeoutMs,
      `${count} webhook requests for session ${sessionId}`,
    )
  }

  async function graphqlSession(id: string) {
    const answer = await t.gql<{ authSession: Record<string, unknown> }>(
      acme.agentKey,
      `query ($id: ID!) { authSession(id: $id) { ${SESSION_FIELDS} } }`,
      { id },
    )
    expect(answer.errors).toBeUndefined()
    const { integration: of, ...rest } = answer.data!.authSession as {
      integration: { id: string }
    } & Record<string, unknown>
    return { ...rest, integrationId: of.id }
  }

  it('sends auth_session.authenticated, signed, with the GraphQL view of the session; one attempt, DELIVERED', async () => {
    const signedIn = await signIn(
      t,
      acme.agentKey,
      { integrationId: integration.id, conversationId: conversationId() },
      'ada',
    )
    const id = signedIn.started.session.id
    const [request] = await waitForSession(id, 1)
    const payload = verify(secret, request!)
    expect(request!.headers['content-type']).toBe('application/json')
    expect(Object.keys(payload).sort()).toEqual(['data', 'timestamp', 'type'])
    expect(payload.type).toBe('auth_session.authenticated')
    expect(new Date(payload.timestamp).toISOString()).toBe(payload.timestamp)
    expect(payload.data.session).toEqual(await graphqlSession(id))
    expect(payload.data.session).toMatchObject({
      status: 'AUTHENTICATED',
      identity: { email: 'ada@example.com', userName: 'ada', fullName: 'Ada Lovelace' },
    })
    // Nothing secret rides along.
    expect(request!.body).not.toMatch(/hash|sealed|verifier|token|whsec_/i)
    const [event] = await listEventsOfSession(t.deps.db, acme.id, id)
    expect(request!.headers['webhook-id']).toBe(event!.id)
    const delivery = await eventually(async () =>
      (await deliveries()).find((d) => d.eventId === event!.id && d.status === 'DELIVERED'),
    )
    expect(delivery).toMatchObject({
      eventType: 'AUTH_SESSION_AUTHENTICATED',
      attempts: 1,
      lastStatusCode: 200,
      lastError: null,
      nextAttemptAt: null,
    })
    expect(delivery.deliveredAt).not.toBeNull()
  })

  it('retries after a 500 with the same webhook-id, each attempt signed afresh, and records each attempt', async () => {
    receiver.script(500)
    const started = await start(t, acme.agentKey, {
      integrationId: integration.id,
      conversationId: conversationId(),
    })
    await t.gql(acme.agentKey, CANCEL, { id: started.session.id })
    const [first, second] = await waitForSession(started.session.id, 2)
    expect(first!.headers['webhook-id']).toBe(second!.headers['webhook-id'])
    expect(verify(secret, first!).type).toBe('auth_session.cancelled')
    expect(verify(secret, second!).type).toBe('auth_session.cancelled')
    expect(second!.body).toBe(first!.body)
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(90)
    const delivery = await eventually(async () =>
      (await deliveries()).find(
        (d) => d.eventId === first!.headers['webhook-id'] && d.status === 'DELIVERED',
      ),
    )
    expect(delivery).toMatchObject({ attempts: 2, lastStatusCode: 200, lastError: null })
    const attempts = await listAttempts(t.deps.db, delivery.id)
    expect(attempts.map((a) => [a.attempt, a.status_code, a.error])).toEqual([
      [1, 500, 'answered HTTP 500'],
      [2, 200, null],
    ])
    for (const a of attempts) expect(a.duration_ms).toBeGreaterThanOrEqual(0)
  })

  it('gives up on an answer that does not come in time and tries again', async () => {
    receiver.script('hang')
    const started = await start(t, acme.agentKey, {
      integrationId: integration.id,
      conversationId: conversationId(),
    })
    await t.gql(acme.agentKey, CANCEL, { id: started.session.id })
    const [first, second] = await waitForSession(started.session.id, 2)
    expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id'])
    const delivery = await eventually(async () =>
      (await deliveries()).find(
        (d) => d.eventId === first!.headers['webhook-id'] && d.status === 'DELIVERED',
      ),
    )
    const attempts = await listAttempts(t.deps.db, delivery.id)
    expect(attempts[0]).toMatchObject({ status_code: null })
    expect(attempts[0]!.error).toMatch(/^timeout: /)
    expect(attempts[0]!.duration_ms).toBeLessThan(2_000)
  })

  it('does not follow a redirect: a 3xx is a failed attempt, retried at the same URL', async () => {
    const elsewhere = await startWebhookReceiver()
    try {
      receiver.script({ redirect: elsewhere.url })
      const started = await start(t, acme.agentKey, {
        integrationId: integration.id,
        conversationId: conversationId(),
      })
      await t.gql(acme.agentKey, CANCEL, { id: started.session.id })
      const [first] = await waitForSession(started.session.id, 2)
      const delivery = await eventually(async () =>
        (await deliveries()).find(
          (d) => d.eventId === first!.headers['webhook-id'] && d.status === 'DELIVERED',
        ),
      )
      const attempts = await listAttempts(t.deps.db, delivery.id)
      expect(attempts[0]).toMatchObject({
        status_code: 302,
        error: 'answered HTTP 302; redirects are not followed',
      })
      expect(elsewhere.received).toEqual([])
    } finally {
      await elsewhere.close()
    }
  })

  it('ends FAILED after the last attempt; redeliverWebhook sends the event again with the same webhook-id', async () => {
    receiver.script(500, 503, 500, 500)
    const started = await start(t, acme.agentKey, {
      integrationId: integration.id,
      conversationId: conversationId(),
    })
    await t.gql(acme.agentKey, CANCEL, { id: started.session.id })
    const failedRequests = await waitForSession(started.session.id, 4)
    const eventId = failedRequests[0]!.headers['webhook-id']!
    const failed = await eventually(async () =>
      (await deliveries()).find((d) => d.eventId === eventId && d.status === 'FAILED'),
    )
    expect(failed).toMatchObject({ attempts: 4, lastStatusCode: 500, nextAttemptAt: null })
    const redelivered = await t.gql<{ redeliverWebhook: DeliveryView }>(
      acme.adminKey,
      `mutation ($id: ID!) { redeliverWebhook(deliveryId: $id) { id eventId status attempts } }`,
      { id: failed.id },
    )
    expect(redelivered.errors).toBeUndefined()
    expect(redelivered.data!.redeliverWebhook).toMatchObject({
      eventId,
      status: 'PENDING',
      attempts: 0,
    })
    const again = (await waitForSession(started.session.id, 5))[4]!
    expect(again.headers['webhook-id']).toBe(eventId)
    expect(verify(secret, again).data.session.status).toBe('CANCELLED')
    // The receiver saw the request before the outcome was committed: wait for it.
    const ofEvent = await eventually(async () => {
      const listed = (await deliveries()).filter((d) => d.eventId === eventId)
      return listed[0]?.status === 'DELIVERED' ? listed : undefined
    })
    // Newest first: the redelivery, then the failed one, which keeps its history.
    expect(ofEvent.map((d) => [d.id, d.status, d.attempts])).toEqual([
      [redelivered.data!.redeliverWebhook.id, 'DELIVERED', 1],
      [failed.id, 'FAILED', 4],
    ])
  })

  it('reports FAILED, AWAITING_CONFIRMATION then AUTHENTICATED, CANCELLED (cancel, a newer link, deleting the integration) and EXPIRED', async () => {
    // FAILED: the person refuses at the provider.
    const refused = await start(t, acme.agentKey, {
      integrationId: integration.id,
      conversationId: conversationId(),
    })
    const browser = new ScriptedBrowser()
    await complete(browser, await postLink(browser, refused.authorizationLink), 'ada', {
      abort: true,
    })
    const [failed] = await waitForSession(refused.session.id, 1)
    const failedPayload = verify(secret, failed!)
    expect(failedPayload.type).toBe('auth_session.failed')
    expect(failedPayload.data.session).toEqual(await graphqlSession(refused.session.id))
    expect(failedPayload.data.session).toMatchObject({
      status: 'FAILED',
      identity: null,
      failure: { code: 'access_denied' },
    })

    // AWAITING_CONFIRMATION (no identity yet), then AUTHENTICATED with the code.
    const confirm = await signIn(
      t,
      acme.agentKey,
      { integrationId: confirming.id, conversationId: conversationId() },
      'ada',
    )
    const code = /id="code"[^>]*>([^<]+)</
      .exec(await confirm.result.text())?.[1]
      ?.replace(/\s/g, '')
    const [waiting] = await waitForSession(confirm.started.session.id, 1)
    const waitingPayload = verify(secret, waiting!)
    expect(waitingPayload.type).toBe('auth_session.awaiting_confirmation')
    expect(waitingPayload.data.session).toMatchObject({
      status: 'AWAITING_CONFIRMATION',
      identity: null,
      confirmationAttemptsLeft: 5,
    })
    const confirmed = await t.gql(
      acme.agentKey,
      `mutation ($input: ConfirmEndUserAuthInput!) { confirmEndUserAuth(input: $input) { session { status } } }`,
      { input: { id: confirm.started.session.id, code } },
    )
    expect(confirmed.errors).toBeUndefined()
    const [, done] = await waitForSession(confirm.started.session.id, 2)
    expect(verify(secret, done!).type).toBe('auth_session.authenticated')
    expect(verify(secret, done!).data.session).toMatchObject({
      identity: { email: 'ada@example.com' },
    })

    // CANCELLED by a newer link for the same conversation.
    const conv = conversationId()
    const older = await start(t, acme.agentKey, {
      integrationId: integration.id,
      conversationId: conv,
    })
    await start(t, acme.agentKey, { integrationId: integration.id, conversationId: conv })
    const [superseded] = await waitForSession(older.session.id, 1)
    expect(verify(secret, superseded!).data.session).toMatchObject({ status: 'CANCELLED' })

    // CANCELLED by deleting the integration: its open session ends.
    const doomed = await seedProviderIntegration(t, acme, provider, {
      clientId: `wh-doomed-${acme.slug}`,
      clientSecret: 'webhook-secret-0123456789',
    })
    const open = await start(t, acme.agentKey, {
      integrationId: doomed.id,
      conversationId: conversationId(),
    })
    const deleted = await t.gql(
      acme.adminKey,
      `mutation ($id: ID!) { deleteOAuthIntegration(id: $id) { id } }`,
      {
        id: doomed.id,
      },
    )
    expect(deleted.errors).toBeUndefined()
    const [byDeletion] = await waitForSession(open.session.id, 1)
    expect(verify(secret, byDeletion!).type).toBe('auth_session.cancelled')

    // EXPIRED: read-time expiry sends nothing; the sweeper's write does.
    const late = await start(t, acme.agentKey, {
      integrationId: integration.id,
      conversationId: conversationId(),
    })
    clockOffset = 11 * 60_000
    try {
      const read = await t.gql<{ authSession: { status: string } }>(
        acme.agentKey,
        `query ($id: ID!) { authSession(id: $id) { status } }`,
        { id: late.session.id },
      )
      expect(read.data!.authSession.status).toBe('EXPIRED')
      expect(await listEventsOfSession(t.deps.db, acme.id, late.session.id)).toEqual([])
      await sweepExpiredSessions(t.deps)
      const [expired] = await waitForSession(late.session.id, 1)
      // Signed at the app's (moved) time, which a receiver's tolerance would refuse: check the
      // signature itself with the package's own signing at that timestamp.
      const timestamp = Number(expired!.headers['webhook-timestamp'])
      expect(timestamp * 1000 - Date.now()).toBeGreaterThan(10 * 60_000)
      expect(expired!.headers['webhook-signature']).toBe(
        new Webhook(secret).sign(
          expired!.headers['webhook-id']!,
          new Date(timestamp * 1000),
          expired!.body,
        ),
      )
    } finally {
      clockOffset = 0
    }
    const [expired] = receivedFor(late.session.id)
    expect(JSON.parse(expired!.body)).toMatchObject({
      type: 'auth_session.expired',
      data: { session: { status: 'EXPIRED', completedAt: late.session.expiresAt } },
    })
  })

  it('records no event for a change that did not happen, nor for statuses no one asked for', async () => {
    const started = await start(t, acme.agentKey, {
      integrationId: integration.id,
      conversationId: conversationId(),
    })
    await t.gql(acme.agentKey, CANCEL, { id: started.session.id })
    // A second cancel changes nothing (the compare-and-set matches no row): no second event.
    const again = await t.gql<{ cancelEndUserAuth: { session: { status: string } } }>(
      acme.agentKey,
      CANCEL,
      { id: started.session.id },
    )
    expect(again.data?.cancelEndUserAuth.session.status).toBe('CANCELLED')
    const events = await listEventsOfSession(t.deps.db, acme.id, started.session.id)
    expect(events.map((e) => e.type)).toEqual(['AUTH_SESSION_CANCELLED'])
    // An endpoint that only wants FAILED gets no CANCELLED; globex gets nothing of acme's.
    const failedOnly = await t.gql<CreatedEndpoint>(acme.adminKey, CREATE_ENDPOINT, {
      input: { url: `${receiver.url}/failed-only`, events: ['AUTH_SESSION_FAILED'] },
    })
    const globexEndpoint = await t.gql<CreatedEndpoint>(globex.adminKey, CREATE_ENDPOINT, {
      input: { url: `${receiver.url}/globex` },
    })
    expect(failedOnly.errors).toBeUndefined()
    expect(globexEndpoint.errors).toBeUndefined()
    const failedOnlyId = failedOnly.data!.createWebhookEndpoint.endpoint.id
    const globexId = globexEndpoint.data!.createWebhookEndpoint.endpoint.id
    const next = await start(t, acme.agentKey, {
      integrationId: integration.id,
      conversationId: conversationId(),
    })
    await t.gql(acme.agentKey, CANCEL, { id: next.session.id })
    await waitForSession(next.session.id, 1)
    await new Promise((resolve) => setTimeout(resolve, 300))
    const got = receivedFor(next.session.id)
    expect(got.map((r) => r.headers['webhook-id'])).toHaveLength(1)
    expect(await deliveries(globex.adminKey, globexId)).toEqual([])
    expect(await deliveries(acme.adminKey, failedOnlyId)).toEqual([])
    // Nor may globex read or trigger acme's deliveries.
    const acmeDelivery = (await deliveries())[0]!
    expect(codes(await t.gql(globex.adminKey, DELIVERIES, { endpointId }))).toEqual(['NOT_FOUND'])
    const redeliver = await t.gql(
      globex.adminKey,
      `mutation ($id: ID!) { redeliverWebhook(deliveryId: $id) { id } }`,
      { id: acmeDelivery.id },
    )
    expect(codes(redeliver)).toEqual(['NOT_FOUND'])
    expect(redeliver.errors![0]!.message).toBe(`webhook delivery "${acmeDelivery.id}" not found`)
    const remove = `mutation ($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }`
    expect((await t.gql(acme.adminKey, remove, { id: failedOnlyId })).errors).toBeUndefined()
    expect((await t.gql(globex.adminKey, remove, { id: globexId })).errors).toBeUndefined()
  })

  it('signs with the previous secret too for the overlap after a rotation, then with the new one only', async () => {
    const rotated = await t.gql<{ rotateWebhookSecret: { secret: string } }>(
      acme.adminKey,
      `mutation ($id: ID!) { rotateWebhookSecret(id: $id) { secret } }`,
      { id: endpointId },
    )
    const newSecret = rotated.data!.rotateWebhookSecret.secret
    const during = await start(t, acme.agentKey, {
      integrationId: integration.id,
      conversationId: conversationId(),
    })
    await t.gql(acme.agentKey, CANCEL, { id: during.session.id })
    const [overlap] = await waitForSession(during.session.id, 1)
    expect(overlap!.headers['webhook-signature']!.split(' ')).toHaveLength(2)
    expect(verify(secret, overlap!).type).toBe('auth_session.cancelled')
    expect(verify(newSecret, overlap!).type).toBe('auth_session.cancelled')
    const row = await t.deps.db
      .selectFrom('webhook_endpoints')
      .select('previous_secret_until')
      .where('id', '=', endpointId)
      .executeTakeFirstOrThrow()
    const hours = (row.previous_secret_until!.getTime() - Date.now()) / 3_600_000
    expect(hours).toBeGreaterThan(23.9)
    expect(hours).toBeLessThanOrEqual(24)

    // The overlap over (its end moved into the past): the old secret no longer verifies.
    await sql`update webhook_endpoints set previous_secret_until = now() - interval '1 second'
      where id = ${endpointId}`.execute(t.deps.db)
    const after = await start(t, acme.agentKey, {
      integrationId: integration.id,
      conversationId: conversationId(),
    })
    await t.gql(acme.agentKey, CANCEL, { id: after.session.id })
    const [later] = await waitForSession(after.session.id, 1)
    expect(later!.headers['webhook-signature']!.split(' ')).toHaveLength(1)
    expect(verify(newSecret, later!).type).toBe('auth_session.cancelled')
    expect(() => verify(secret, later!)).toThrow(/No matching signature found/)
    secret = newSecret
  })
})
