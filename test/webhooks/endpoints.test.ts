/**
 * Webhook endpoints over GraphQL: ADMIN only, the URL rules of provider URLs plus
 * WEBHOOK_ALLOW_HOSTS, the secret shown once and stored sealed, rotation, audit records, and
 * another tenant's ids answering NOT_FOUND like unknown ones.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listAuditEvents } from '../../src/db/audit.ts'
import { codes, createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'
import { CREATE_ENDPOINT, DELIVERIES, type CreatedEndpoint } from '../helpers/webhook-receiver.ts'

const UPDATE = `mutation ($input: UpdateWebhookEndpointInput!) {
  updateWebhookEndpoint(input: $input) { endpoint { id url events enabled description } }
}`
const DELETE = `mutation ($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }`
const ROTATE = `mutation ($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { id } } }`
const LIST = `{ webhookEndpoints { id url events enabled description } }`
const REDELIVER = `mutation ($id: ID!) { redeliverWebhook(deliveryId: $id) { id } }`

describe('webhook endpoints', () => {
  let t: TestApp
  let acme: SeededTenant
  let globex: SeededTenant

  beforeAll(async () => {
    t = await createTestApp({ env: { WEBHOOK_ALLOW_HOSTS: 'hooks.internal:8080' } })
    acme = await t.seedTenant()
    globex = await t.seedTenant()
  })
  afterAll(async () => t?.close())

  async function create(key: string, input: Record<string, unknown>) {
    return t.gql<CreatedEndpoint>(key, CREATE_ENDPOINT, { input })
  }

  it('creates an endpoint for every event type by default, with a whsec_ secret shown once and stored sealed', async () => {
    const created = await create(acme.adminKey, {
      url: 'https://hooks.example.com/euo',
      description: 'platform',
    })
    expect(created.errors).toBeUndefined()
    const { secret, endpoint } = created.data!.createWebhookEndpoint
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/)
    expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32)
    expect(endpoint).toMatchObject({
      url: 'https://hooks.example.com/euo',
      enabled: true,
      description: 'platform',
      events: [
        'AUTH_SESSION_AUTHENTICATED',
        'AUTH_SESSION_FAILED',
        'AUTH_SESSION_EXPIRED',
        'AUTH_SESSION_CANCELLED',
        'AUTH_SESSION_AWAITING_CONFIRMATION',
      ],
    })
    const row = await t.deps.db
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('id', '=', endpoint.id)
      .executeTakeFirstOrThrow()
    expect(row.secret_sealed).not.toContain(secret.slice(6, 20))
    expect(JSON.stringify(row)).not.toContain(secret)
    const listed = await t.gql<{ webhookEndpoints: Array<Record<string, unknown>> }>(
      acme.adminKey,
      LIST,
    )
    expect(JSON.stringify(listed.data)).not.toContain('whsec_')
    const audit = await listAuditEvents(t.deps.db, acme.id, { targetId: endpoint.id })
    expect(audit.map((a) => a.action)).toEqual(['webhook_endpoint.created'])
    expect(JSON.stringify(audit)).not.toContain(secret)
  })

  it('refuses AGENT keys on every field (FORBIDDEN), and calls without a key (UNAUTHENTICATED)', async () => {
    const documents: Array<[string, Record<string, unknown>]> = [
      [CREATE_ENDPOINT, { input: { url: 'https://hooks.example.com/a' } }],
      [UPDATE, { input: { id: crypto.randomUUID(), enabled: false } }],
      [DELETE, { id: crypto.randomUUID() }],
      [ROTATE, { id: crypto.randomUUID() }],
      [REDELIVER, { id: crypto.randomUUID() }],
      [LIST, {}],
      [DELIVERIES, { endpointId: crypto.randomUUID() }],
    ]
    for (const [document, variables] of documents) {
      expect(codes(await t.gql(acme.agentKey, document, variables))).toEqual(['FORBIDDEN'])
      expect(codes(await t.gql(null, document, variables))).toEqual(['UNAUTHENTICATED'])
    }
    const count = await t.deps.db
      .selectFrom('webhook_endpoints')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('url', '=', 'https://hooks.example.com/a')
      .executeTakeFirstOrThrow()
    expect(Number(count.n)).toBe(0)
  })

  it('applies the URL rules of provider URLs; WEBHOOK_ALLOW_HOSTS opens hosts for webhooks only', async () => {
    const cases: Array<[string, RegExp]> = [
      ['http://hooks.example.com/x', /input\.url: must be an absolute https URL/],
      ['https://127.0.0.1/x', /input\.url: host 127\.0\.0\.1 is .*WEBHOOK_ALLOW_HOSTS/],
      ['https://10.0.0.8/x', /input\.url: host 10\.0\.0\.8 is .*WEBHOOK_ALLOW_HOSTS/],
      ['https://user:pw@hooks.example.com/x', /input\.url: must not contain credentials/],
      ['https://hooks.example.com/x#frag', /input\.url: must not contain a fragment/],
      ['https://localhost/x', /input\.url: host localhost is/],
      ['not a url', /input\.url: must be an absolute https URL/],
      ['', /input\.url: must not be empty/],
    ]
    for (const [url, message] of cases) {
      const refused = await create(acme.adminKey, { url })
      expect(codes(refused), url).toEqual(['BAD_USER_INPUT'])
      expect(refused.errors![0]!.message).toMatch(message)
    }
    const many = await create(acme.adminKey, {
      url: 'https://10.0.0.8/x',
      events: [],
      description: 'x'.repeat(501),
    })
    expect(many.errors![0]!.message).toMatch(
      /input\.url: .*; input\.events: must name at least one event type.*; input\.description: must be at most 500 characters/,
    )
    // The allow-listed host: private and plain http are fine, for webhooks.
    const allowed = await create(acme.adminKey, { url: 'http://hooks.internal:8080/x' })
    expect(allowed.errors).toBeUndefined()
    // ...and only on its port.
    expect(codes(await create(acme.adminKey, { url: 'http://hooks.internal:9090/x' }))).toEqual([
      'BAD_USER_INPUT',
    ])
    // WEBHOOK_ALLOW_HOSTS does not open token or WhoAmI URLs.
    const integration = await t.gql(
      acme.adminKey,
      `mutation ($input: CreateOAuthIntegrationInput!) { createOAuthIntegration(input: $input) { integration { id } } }`,
      {
        input: {
          name: 'internal',
          clientId: 'c',
          clientSecret: 'secret-0123456789',
          authorizationUrl: 'https://idp.example.com/authorize',
          tokenUrl: 'http://hooks.internal:8080/token',
        },
      },
    )
    expect(integration.errors?.[0]?.message).toMatch(/input\.tokenUrl: .*OUTBOUND_ALLOW_HOSTS/)
  })

  it('updates url, events, description and enabled; validates like create; audits the fields', async () => {
    const { endpoint } = (await create(acme.adminKey, { url: 'https://hooks.example.com/u' })).data!
      .createWebhookEndpoint
    const updated = await t.gql<{ updateWebhookEndpoint: { endpoint: Record<string, unknown> } }>(
      acme.adminKey,
      UPDATE,
      {
        input: {
          id: endpoint.id,
          url: 'https://hooks.example.com/v',
          events: ['AUTH_SESSION_FAILED', 'AUTH_SESSION_AUTHENTICATED', 'AUTH_SESSION_FAILED'],
          description: 'changed',
          enabled: false,
        },
      },
    )
    expect(updated.errors).toBeUndefined()
    expect(updated.data!.updateWebhookEndpoint.endpoint).toEqual({
      id: endpoint.id,
      url: 'https://hooks.example.com/v',
      events: ['AUTH_SESSION_AUTHENTICATED', 'AUTH_SESSION_FAILED'],
      description: 'changed',
      enabled: false,
    })
    const refused = await t.gql(acme.adminKey, UPDATE, {
      input: { id: endpoint.id, url: 'http://hooks.example.com/w', enabled: null },
    })
    expect(refused.errors![0]!.message).toMatch(
      /input\.url: must be an absolute https URL.*; input\.enabled: must not be null/,
    )
    const audit = await listAuditEvents(t.deps.db, acme.id, { targetId: endpoint.id })
    expect(audit.map((a) => a.action)).toEqual([
      'webhook_endpoint.created',
      'webhook_endpoint.updated',
    ])
    expect(audit[1]!.details).toMatchObject({
      fields: ['url', 'events', 'description', 'enabled'],
    })
  })

  it('rotates the secret (a new one shown once, audited) and deletes (audited)', async () => {
    const created = (await create(acme.adminKey, { url: 'https://hooks.example.com/r' })).data!
      .createWebhookEndpoint
    const rotated = await t.gql<{ rotateWebhookSecret: { secret: string } }>(
      acme.adminKey,
      ROTATE,
      { id: created.endpoint.id },
    )
    expect(rotated.errors).toBeUndefined()
    expect(rotated.data!.rotateWebhookSecret.secret).toMatch(/^whsec_/)
    expect(rotated.data!.rotateWebhookSecret.secret).not.toBe(created.secret)
    const deleted = await t.gql(acme.adminKey, DELETE, { id: created.endpoint.id })
    expect(deleted.errors).toBeUndefined()
    expect(codes(await t.gql(acme.adminKey, DELETE, { id: created.endpoint.id }))).toEqual([
      'NOT_FOUND',
    ])
    const audit = await listAuditEvents(t.deps.db, acme.id, { targetId: created.endpoint.id })
    expect(audit.map((a) => a.action)).toEqual([
      'webhook_endpoint.created',
      'webhook_endpoint.secret_rotated',
      'webhook_endpoint.deleted',
    ])
    expect(JSON.stringify(audit)).not.toContain('whsec_')
  })

  it("answers NOT_FOUND for another tenant's endpoint exactly as for an unknown id, and changes nothing", async () => {
    const { endpoint } = (await create(acme.adminKey, { url: 'https://hooks.example.com/t' })).data!
      .createWebhookEndpoint
    const unknown = crypto.randomUUID()
    for (const id of [endpoint.id, unknown, 'not-a-uuid']) {
      const answers = [
        await t.gql(globex.adminKey, UPDATE, { input: { id, enabled: false } }),
        await t.gql(globex.adminKey, DELETE, { id }),
        await t.gql(globex.adminKey, ROTATE, { id }),
        await t.gql(globex.adminKey, DELIVERIES, { endpointId: id }),
      ]
      for (const answer of answers) {
        expect(codes(answer)).toEqual(['NOT_FOUND'])
        expect(answer.errors![0]!.message).toBe(`webhook endpoint "${id}" not found`)
      }
    }
    const list = await t.gql<{ webhookEndpoints: Array<{ id: string }> }>(globex.adminKey, LIST)
    expect(list.data!.webhookEndpoints).toEqual([])
    const mine = await t.gql<{ webhookEndpoints: Array<{ id: string; enabled: boolean }> }>(
      acme.adminKey,
      LIST,
    )
    expect(mine.data!.webhookEndpoints.find((e) => e.id === endpoint.id)?.enabled).toBe(true)
    expect(codes(await t.gql(globex.adminKey, REDELIVER, { id: unknown }))).toEqual(['NOT_FOUND'])
  })

  it('bounds webhookDeliveries.first', async () => {
    const { endpoint } = (await create(acme.adminKey, { url: 'https://hooks.example.com/f' })).data!
      .createWebhookEndpoint
    for (const first of [0, 101, -1]) {
      const answer = await t.gql(acme.adminKey, DELIVERIES, { endpointId: endpoint.id, first })
      expect(codes(answer)).toEqual(['BAD_USER_INPUT'])
      expect(answer.errors![0]!.message).toMatch(/^first: must be from 1 to 100/)
    }
    const empty = await t.gql(acme.adminKey, DELIVERIES, { endpointId: endpoint.id, first: 5 })
    expect(empty.errors).toBeUndefined()
    expect(empty.data).toEqual({ webhookDeliveries: [] })
  })
})
