/**
 * The delivery worker with more than one instance and when things go wrong: two apps on one
 * database deliver each event once; an attempt whose instance stopped answering is made again
 * by another once its claim lapses (and the late outcome is not recorded); an endpoint failing
 * too long is disabled with an audit record; a host that resolves to a private address at
 * connect time is refused.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { listAuditEvents } from '../../src/db/audit.ts'
import type { WebhookTransport } from '../../src/services/webhooks.ts'
import { CANCEL, seedIntegration, start, type SeededIntegration } from '../helpers/flow.ts'
import { createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'
import { createTestDatabase } from '../helpers/test-db.ts'
import {
  CREATE_ENDPOINT,
  DELIVERIES,
  eventually,
  startWebhookReceiver,
  verify,
  type CreatedEndpoint,
  type DeliveryView,
  type WebhookReceiver,
} from '../helpers/webhook-receiver.ts'

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

let conversation = 0

async function setUp(t: TestApp, url: string) {
  const tenant = await t.seedTenant()
  const integration = await seedIntegration(t, tenant, {
    clientId: 'workers',
    clientSecret: 'workers-secret-0123456789',
    authorizationUrl: 'https://idp.example.com/authorize',
    tokenUrl: 'https://idp.example.com/token',
  })
  const created = await t.gql<CreatedEndpoint>(tenant.adminKey, CREATE_ENDPOINT, {
    input: { url },
  })
  expect(created.errors).toBeUndefined()
  return { tenant, integration, ...created.data!.createWebhookEndpoint }
}

/** A session started and cancelled: one AUTH_SESSION_CANCELLED event. */
async function cancelled(t: TestApp, tenant: SeededTenant, integration: SeededIntegration) {
  const started = await start(t, tenant.agentKey, {
    integrationId: integration.id,
    conversationId: `workers-${++conversation}`,
  })
  const answer = await t.gql(tenant.agentKey, CANCEL, { id: started.session.id })
  expect(answer.errors).toBeUndefined()
  return started.session.id
}

async function deliveriesOf(t: TestApp, key: string, endpointId: string) {
  const answer = await t.gql<{ webhookDeliveries: DeliveryView[] }>(key, DELIVERIES, {
    endpointId,
    first: 100,
  })
  expect(answer.errors).toBeUndefined()
  return answer.data!.webhookDeliveries
}

async function receiverFor(): Promise<WebhookReceiver> {
  const receiver = await startWebhookReceiver()
  cleanups.push(() => receiver.close())
  return receiver
}

async function app(options: Parameters<typeof createTestApp>[0]): Promise<TestApp> {
  const t = await createTestApp(options)
  cleanups.push(() => t.close())
  return t
}

describe('webhook workers', () => {
  it('delivers each event once with two instances on one database', async () => {
    const receiver = await receiverFor()
    const database = await createTestDatabase()
    cleanups.push(() => database.close())
    const env = { WEBHOOK_ALLOW_HOSTS: receiver.host }
    const webhooks = { pollMs: 10, concurrency: 4 }
    const a = await app({ database, env, webhooks })
    const b = await app({ database, env, webhooks })
    const { tenant, integration, endpoint, secret } = await setUp(a, receiver.url)
    const ids: string[] = []
    // Half the sessions change on each instance: each wakes its own worker, both poll.
    for (let i = 0; i < 30; i++) ids.push(await cancelled(i % 2 ? a : b, tenant, integration))
    await receiver.waitFor(30)
    // Time for a duplicate to show up, were there one.
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(receiver.received).toHaveLength(30)
    const webhookIds = receiver.received.map((r) => r.headers['webhook-id'])
    expect(new Set(webhookIds).size).toBe(30)
    const sessions = receiver.received.map((r) => verify(secret, r).data.session.id)
    expect(sessions.sort()).toEqual([...ids].sort())
    // Each outcome is committed just after its receiver answered.
    const deliveries = await eventually(async () => {
      const listed = await deliveriesOf(a, tenant.adminKey, endpoint.id)
      return listed.every((d) => d.status === 'DELIVERED') ? listed : undefined
    })
    expect(deliveries).toHaveLength(30)
    for (const d of deliveries) expect([d.status, d.attempts]).toEqual(['DELIVERED', 1])
  })

  it("makes an attempt again once the claim of an instance that stopped answering lapses, and drops that instance's late outcome", async () => {
    const receiver = await receiverFor()
    const database = await createTestDatabase()
    cleanups.push(() => database.close())
    const env = { WEBHOOK_ALLOW_HOSTS: receiver.host }
    const waiting: Array<() => void> = []
    const release = () => waiting.splice(0).forEach((resolve) => resolve())
    const stuck: WebhookTransport = {
      post: () => new Promise((resolve) => waiting.push(() => resolve({ status: 200 }))),
    }
    // The first instance claims when woken by the cancel, then polls too rarely to claim again
    // during the test: the retry must come from the second.
    const a = await app({
      database,
      env,
      webhooks: { transport: stuck, pollMs: 600_000, leaseMs: 400 },
    })
    const { tenant, integration, endpoint, secret } = await setUp(a, receiver.url)
    const session = await cancelled(a, tenant, integration)
    await eventually(
      async () => (waiting.length === 1 ? true : undefined),
      5_000,
      'the stuck attempt',
    )
    const claimedAt = Date.now()
    const b = await app({ database, env, webhooks: { pollMs: 20, leaseMs: 400 } })
    const [request] = await receiver.waitFor(1)
    expect(Date.now() - claimedAt).toBeGreaterThanOrEqual(300)
    expect(verify(secret, request!).data.session.id).toBe(session)
    const delivered = await eventually(async () => {
      const [d] = await deliveriesOf(b, tenant.adminKey, endpoint.id)
      return d?.status === 'DELIVERED' ? d : undefined
    })
    expect(delivered.attempts).toBe(1)
    // The first instance comes back: its outcome no longer holds the claim and is not recorded.
    expect(waiting).toHaveLength(1)
    release()
    await eventually(async () =>
      a.logs.some((l) => l.includes('outlived its claim')) ? true : undefined,
    )
    const [after] = await deliveriesOf(a, tenant.adminKey, endpoint.id)
    expect(after).toMatchObject({ status: 'DELIVERED', attempts: 1 })
    expect(receiver.received).toHaveLength(1)
  })

  it('disables an endpoint that failed for too long, with an audit record; deliveries wait until it is enabled again', async () => {
    const receiver = await receiverFor()
    receiver.fallback = 500
    const t = await app({
      env: { WEBHOOK_ALLOW_HOSTS: receiver.host },
      webhooks: { pollMs: 20, retryDelaysMs: Array(20).fill(60), disableAfterMs: 300 },
    })
    const { tenant, integration, endpoint } = await setUp(t, receiver.url)
    await cancelled(t, tenant, integration)
    const audit = await eventually(async () => {
      const events = await listAuditEvents(t.deps.db, tenant.id, { targetId: endpoint.id })
      return events.find((e) => e.action === 'webhook_endpoint.disabled')
    })
    expect(audit.actorKeyId).toBeNull()
    expect(audit.details).toMatchObject({ lastError: 'answered HTTP 500' })
    const listed = await t.gql<{ webhookEndpoints: Array<{ id: string; enabled: boolean }> }>(
      tenant.adminKey,
      `{ webhookEndpoints { id enabled } }`,
    )
    expect(listed.data!.webhookEndpoints).toEqual([{ id: endpoint.id, enabled: false }])
    const count = receiver.received.length
    expect(count).toBeGreaterThanOrEqual(2)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(receiver.received).toHaveLength(count)
    const [waiting] = await deliveriesOf(t, tenant.adminKey, endpoint.id)
    expect(waiting!.status).toBe('PENDING')

    receiver.fallback = 200
    const enabled = await t.gql(
      tenant.adminKey,
      `mutation ($input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $input) { endpoint { enabled } } }`,
      { input: { id: endpoint.id, enabled: true } },
    )
    expect(enabled.errors).toBeUndefined()
    const delivered = await eventually(async () => {
      const [d] = await deliveriesOf(t, tenant.adminKey, endpoint.id)
      return d?.status === 'DELIVERED' ? d : undefined
    })
    expect(delivered.attempts).toBe(count + 1)
  })

  it('refuses at connect time a public name that resolves to a private address', async () => {
    let lookups = 0
    const t = await app({
      webhooks: {
        pollMs: 20,
        retryDelaysMs: [60],
        outbound: {
          resolver: async () => {
            lookups += 1
            return ['127.0.0.1']
          },
        },
      },
    })
    // A public name passes the rules at save time; DNS changes afterwards.
    const { tenant, integration, endpoint } = await setUp(t, 'https://hooks.example.com/x')
    await cancelled(t, tenant, integration)
    const failed = await eventually(async () => {
      const [d] = await deliveriesOf(t, tenant.adminKey, endpoint.id)
      return d?.status === 'FAILED' ? d : undefined
    })
    expect(failed.attempts).toBe(2)
    expect(failed.lastStatusCode).toBeNull()
    expect(failed.lastError).toMatch(/^blocked_address: /)
    expect(failed.lastError).not.toContain('127.0.0.1')
    expect(lookups).toBe(2)
  })
})
