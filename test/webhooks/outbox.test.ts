/**
 * The outbox: the auth_sessions trigger records an event, with a delivery per enabled and
 * subscribed endpoint, for exactly the statuses core/webhook.ts reports, inside the statement
 * that changes the status, so a change rolled back leaves no event either; and events and
 * deliveries go with their session.
 */
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AUTH_SESSION_STATUSES, type AuthSessionStatus } from '../../src/core/auth-session.ts'
import { eventTypeOf } from '../../src/core/webhook.ts'
import { cancelSession } from '../../src/db/auth-sessions.ts'
import { listEventsOfSession } from '../../src/db/webhooks.ts'
import { seedIntegration, start, type SeededIntegration } from '../helpers/flow.ts'
import { createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'
import { CREATE_ENDPOINT, type CreatedEndpoint } from '../helpers/webhook-receiver.ts'

/** Columns that let a PENDING row take each status under the table's CHECK constraints. */
const COLUMNS_FOR: Record<AuthSessionStatus, string> = {
  PENDING: '',
  OPENED: '',
  AWAITING_CONFIRMATION: `, confirmation_attempts_left = 5, confirmation_code_sealed = 'x'`,
  AUTHENTICATED: ', completed_at = now()',
  FAILED: ', completed_at = now()',
  EXPIRED: ', completed_at = now()',
  CANCELLED: ', completed_at = now()',
}

describe('the webhook outbox', () => {
  let t: TestApp
  let tenant: SeededTenant
  let integration: SeededIntegration
  let conversation = 0

  beforeAll(async () => {
    t = await createTestApp()
    tenant = await t.seedTenant()
    integration = await seedIntegration(t, tenant, {
      clientId: 'outbox',
      clientSecret: 'outbox-secret-0123456789',
      authorizationUrl: 'https://idp.example.com/authorize',
      tokenUrl: 'https://idp.example.com/token',
    })
    const created = await t.gql<CreatedEndpoint>(tenant.adminKey, CREATE_ENDPOINT, {
      input: { url: 'https://hooks.example.com/outbox' },
    })
    expect(created.errors).toBeUndefined()
  })
  afterAll(async () => t?.close())

  async function newSession(): Promise<string> {
    const started = await start(t, tenant.agentKey, {
      integrationId: integration.id,
      conversationId: `outbox-${++conversation}`,
    })
    return started.session.id
  }

  it.each(AUTH_SESSION_STATUSES.filter((s) => s !== 'PENDING'))(
    'records an event for a change to %s exactly when core/webhook.ts reports that status',
    async (status) => {
      const id = await newSession()
      await sql
        .raw(
          `update auth_sessions set status = '${status}'${COLUMNS_FOR[status]} where id = '${id}'`,
        )
        .execute(t.deps.db)
      const events = await listEventsOfSession(t.deps.db, tenant.id, id)
      const type = eventTypeOf(status)
      expect(events.map((e) => e.type)).toEqual(type === null ? [] : [type])
      const deliveries = await t.deps.db
        .selectFrom('webhook_deliveries')
        .select(['status', 'attempts'])
        .where('event_id', 'in', events.length ? events.map((e) => e.id) : [crypto.randomUUID()])
        .execute()
      expect(deliveries).toEqual(type === null ? [] : [{ status: 'PENDING', attempts: 0 }])
    },
  )

  it('records nothing when the transaction that changed the status rolls back', async () => {
    const id = await newSession()
    await expect(
      t.deps.db.transaction().execute(async (trx) => {
        const cancelled = await cancelSession(trx, tenant.id, id, new Date())
        expect(cancelled?.status).toBe('CANCELLED')
        expect(await listEventsOfSession(trx, tenant.id, id)).toHaveLength(1)
        throw new Error('rolled back on purpose')
      }),
    ).rejects.toThrow('rolled back on purpose')
    expect(await listEventsOfSession(t.deps.db, tenant.id, id)).toEqual([])
    const row = await t.deps.db
      .selectFrom('auth_sessions')
      .select('status')
      .where('id', '=', id)
      .executeTakeFirstOrThrow()
    expect(row.status).toBe('PENDING')
  })

  it('records nothing for a tenant whose endpoints are all disabled', async () => {
    const other = await t.seedTenant()
    const otherIntegration = await seedIntegration(t, other, {
      clientId: 'outbox-2',
      clientSecret: 'outbox-secret-0123456789',
      authorizationUrl: 'https://idp.example.com/authorize',
      tokenUrl: 'https://idp.example.com/token',
    })
    const created = await t.gql<CreatedEndpoint>(other.adminKey, CREATE_ENDPOINT, {
      input: { url: 'https://hooks.example.com/off' },
    })
    await t.gql(
      other.adminKey,
      `mutation ($input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $input) { endpoint { id } } }`,
      { input: { id: created.data!.createWebhookEndpoint.endpoint.id, enabled: false } },
    )
    const started = await start(t, other.agentKey, {
      integrationId: otherIntegration.id,
      conversationId: 'outbox-off',
    })
    await cancelSession(t.deps.db, other.id, started.session.id, new Date())
    expect(await listEventsOfSession(t.deps.db, other.id, started.session.id)).toEqual([])
  })

  it('deletes events and deliveries with their session', async () => {
    const id = await newSession()
    await cancelSession(t.deps.db, tenant.id, id, new Date())
    const [event] = await listEventsOfSession(t.deps.db, tenant.id, id)
    expect(event).toBeDefined()
    await t.deps.db.deleteFrom('auth_sessions').where('id', '=', id).execute()
    expect(await listEventsOfSession(t.deps.db, tenant.id, id)).toEqual([])
    const left = await t.deps.db
      .selectFrom('webhook_deliveries')
      .select('id')
      .where('event_id', '=', event!.id)
      .execute()
    expect(left).toEqual([])
  })
})
