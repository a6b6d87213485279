/**
 * Webhook endpoints, the events the auth_sessions trigger records (see
 * migrations/2026_12_02_0014_webhooks.ts) and their deliveries. Every read a tenant can reach
 * takes the tenant id. The worker's statements (claim, outcome) are the only ones that cross
 * tenants, and a delivery's outcome is written only by the holder of its claim.
 */
import { sql } from 'kysely'
import type { AuthSession } from '../core/auth-session.ts'
import type { WebhookDeliveryStatus, WebhookEventType } from '../core/webhook.ts'
import { rowToAuthSession } from './auth-sessions.ts'
import type { Db } from './database.ts'
import type { AuthSessionRow, WebhookDeliveryRow, WebhookEndpointRow } from './schema.ts'

export interface WebhookEndpoint {
  readonly id: string
  readonly tenantId: string
  readonly url: string
  readonly events: readonly WebhookEventType[]
  readonly description: string | null
  readonly enabled: boolean
  readonly createdAt: Date
  readonly updatedAt: Date
}

/** An endpoint with its sealed secrets, for signing and rotation only. */
export interface EndpointSecrets {
  readonly secretSealed: string
  readonly previousSecretSealed: string | null
  readonly previousSecretUntil: Date | null
}

export interface WebhookDelivery {
  readonly id: string
  readonly tenantId: string
  readonly eventId: string
  readonly endpointId: string
  readonly eventType: WebhookEventType
  readonly status: WebhookDeliveryStatus
  readonly attempts: number
  readonly lastStatusCode: number | null
  readonly lastError: string | null
  readonly nextAttemptAt: Date | null
  readonly createdAt: Date
  readonly deliveredAt: Date | null
}

function rowToEndpoint(row: WebhookEndpointRow): WebhookEndpoint {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    url: row.url,
    events: row.events,
    description: row.description,
    enabled: row.enabled,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }
}

export const SECRET_COLUMNS = {
  current: 'secret_sealed',
  previous: 'previous_secret_sealed',
} as const

export async function insertEndpoint(
  db: Db,
  e: {
    id: string
    tenantId: string
    url: string
    events: readonly WebhookEventType[]
    description: string | null
    secretSealed: string
    now: Date
  },
): Promise<WebhookEndpoint> {
  const row = await db
    .insertInto('webhook_endpoints')
    .values({
      id: e.id,
      tenant_id: e.tenantId,
      url: e.url,
      events: JSON.stringify(e.events),
      description: e.description,
      secret_sealed: e.secretSealed,
      created_at: e.now,
      updated_at: e.now,
    })
    .returningAll()
    .executeTakeFirstOrThrow()
  return rowToEndpoint(row)
}

export async function findEndpoint(
  db: Db,
  tenantId: string,
  id: string,
): Promise<(WebhookEndpoint & EndpointSecrets) | undefined> {
  const row = await db
    .selectFrom('webhook_endpoints')
    .selectAll()
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst()
  return row && { ...rowToEndpoint(row), ...secretsOf(row) }
}

function secretsOf(row: WebhookEndpointRow): EndpointSecrets {
  return {
    secretSealed: row.secret_sealed,
    previousSecretSealed: row.previous_secret_sealed,
    previousSecretUntil: row.previous_secret_until,
  }
}

/** Oldest first. */
export async function listEndpoints(db: Db, tenantId: string): Promise<WebhookEndpoint[]> {
  const rows = await db
    .selectFrom('webhook_endpoints')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('created_at')
    .orderBy('id')
    .execute()
  return rows.map(rowToEndpoint)
}

export interface EndpointChanges {
  readonly url?: string
  readonly events?: readonly WebhookEventType[]
  readonly description?: string | null
  readonly enabled?: boolean
}

export async function updateEndpoint(
  db: Db,
  tenantId: string,
  id: string,
  changes: EndpointChanges,
  now: Date,
): Promise<WebhookEndpoint | undefined> {
  const row = await db
    .updateTable('webhook_endpoints')
    .set({
      ...(changes.url !== undefined ? { url: changes.url } : {}),
      ...(changes.events !== undefined ? { events: JSON.stringify(changes.events) } : {}),
      ...(changes.description !== undefined ? { description: changes.description } : {}),
      ...(changes.enabled !== undefined ? { enabled: changes.enabled } : {}),
      // Turned on again by an admin: its failures so far no longer count towards disabling.
      ...(changes.enabled === true ? { failing_since: null } : {}),
      updated_at: now,
    })
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .returningAll()
    .executeTakeFirst()
  return row && rowToEndpoint(row)
}

/** The new secret, and the current one as the previous until `previousUntil`. */
export async function rotateSecret(
  db: Db,
  tenantId: string,
  id: string,
  s: { secretSealed: string; previousSecretSealed: string; previousUntil: Date; now: Date },
): Promise<WebhookEndpoint | undefined> {
  const row = await db
    .updateTable('webhook_endpoints')
    .set({
      secret_sealed: s.secretSealed,
      previous_secret_sealed: s.previousSecretSealed,
      previous_secret_until: s.previousUntil,
      updated_at: s.now,
    })
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .returningAll()
    .executeTakeFirst()
  return row && rowToEndpoint(row)
}

/** Deletes the endpoint and, by cascade, its deliveries. */
export async function deleteEndpoint(db: Db, tenantId: string, id: string): Promise<boolean> {
  const result = await db
    .deleteFrom('webhook_endpoints')
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst()
  return result.numDeletedRows > 0n
}

function deliveries(db: Db) {
  return db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('webhook_events as ev', 'ev.id', 'd.event_id')
    .selectAll('d')
    .select('ev.type as event_type')
}

function rowToDelivery(row: WebhookDeliveryRow & { event_type: WebhookEventType }) {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    eventId: row.event_id,
    endpointId: row.endpoint_id,
    eventType: row.event_type,
    status: row.status,
    attempts: row.attempts,
    lastStatusCode: row.last_status_code,
    lastError: row.last_error,
    nextAttemptAt: row.next_attempt_at,
    createdAt: row.created_at,
    deliveredAt: row.delivered_at,
  } satisfies WebhookDelivery
}

/** An endpoint's deliveries, newest first (index webhook_deliveries_endpoint_idx). */
export async function listDeliveries(
  db: Db,
  tenantId: string,
  endpointId: string,
  limit: number,
): Promise<WebhookDelivery[]> {
  const rows = await deliveries(db)
    .where('d.tenant_id', '=', tenantId)
    .where('d.endpoint_id', '=', endpointId)
    .orderBy('d.created_at', 'desc')
    .orderBy('d.id', 'desc')
    .limit(limit)
    .execute()
  return rows.map(rowToDelivery)
}

export async function findDelivery(
  db: Db,
  tenantId: string,
  id: string,
): Promise<WebhookDelivery | undefined> {
  const row = await deliveries(db)
    .where('d.id', '=', id)
    .where('d.tenant_id', '=', tenantId)
    .executeTakeFirst()
  return row && rowToDelivery(row)
}

/** A new PENDING delivery of the same event to the same endpoint, due at `now`. */
export async function insertRedelivery(
  db: Db,
  of: WebhookDelivery,
  id: string,
  now: Date,
): Promise<WebhookDelivery> {
  await db
    .insertInto('webhook_deliveries')
    .values({
      id,
      tenant_id: of.tenantId,
      event_id: of.eventId,
      endpoint_id: of.endpointId,
      next_attempt_at: now,
      created_at: now,
    })
    .execute()
  const inserted = await findDelivery(db, of.tenantId, id)
  if (!inserted) throw new Error('inserting a redelivery returned no row')
  return inserted
}

/** The events recorded for a session, oldest first (tests and support). */
export async function listEventsOfSession(
  db: Db,
  tenantId: string,
  sessionId: string,
): Promise<Array<{ id: string; type: WebhookEventType; createdAt: Date }>> {
  const rows = await db
    .selectFrom('webhook_events')
    .select(['id', 'type', 'created_at'])
    .where('tenant_id', '=', tenantId)
    .where('session_id', '=', sessionId)
    .orderBy('created_at')
    .orderBy('id')
    .execute()
  return rows.map((r) => ({ id: r.id, type: r.type, createdAt: r.created_at }))
}

/** An attempt to make: the delivery, its event and its endpoint's URL and secrets. */
export interface ClaimedDelivery {
  readonly deliveryId: string
  readonly claimId: string
  readonly attempts: number
  readonly tenantId: string
  readonly endpointId: string
  readonly url: string
  readonly secrets: EndpointSecrets
  readonly event: {
    readonly id: string
    readonly type: WebhookEventType
    readonly createdAt: Date
    readonly session: AuthSession
  }
}

const DATE_COLUMNS = [
  'created_at',
  'updated_at',
  'expires_at',
  'opened_at',
  'exchange_claimed_at',
  'completed_at',
  'confirmation_shown_at',
] as const

/** The session the trigger recorded (to_jsonb of the row, so its times are ISO strings). */
function snapshotToSession(snapshot: Record<string, unknown>): AuthSession {
  const row: Record<string, unknown> = { ...snapshot }
  for (const column of DATE_COLUMNS) {
    const value = row[column]
    row[column] = typeof value === 'string' ? new Date(value) : null
  }
  return rowToAuthSession(row as unknown as AuthSessionRow)
}

/** Whether any endpoint in this schema is enabled: without one, no session change can queue a delivery. */
export async function anyEnabledEndpoint(db: Db): Promise<boolean> {
  const row = await db
    .selectFrom('webhook_endpoints')
    .select('id')
    .where('enabled', '=', true)
    .limit(1)
    .executeTakeFirst()
  return row !== undefined
}

/**
 * Claims up to `limit` due deliveries of enabled endpoints for one attempt each. A claimed
 * delivery's next attempt moves to the end of the claim, so another instance takes it only once
 * the claim has lapsed (its holder died mid-attempt). `FOR UPDATE SKIP LOCKED`: instances
 * claiming at the same moment take different rows instead of waiting for each other.
 */
export async function claimDueDeliveries(
  db: Db,
  c: { claimId: string; now: Date; leaseMs: number; limit: number },
): Promise<ClaimedDelivery[]> {
  const until = new Date(c.now.getTime() + c.leaseMs)
  const claimed = await db
    .updateTable('webhook_deliveries')
    .set({ next_attempt_at: until, claim_id: c.claimId })
    .where('id', 'in', (eb) =>
      eb
        .selectFrom('webhook_deliveries as due')
        .innerJoin('webhook_endpoints as e', 'e.id', 'due.endpoint_id')
        .select('due.id')
        .where('due.status', '=', 'PENDING')
        .where('due.next_attempt_at', '<=', c.now)
        .where('e.enabled', '=', true)
        .orderBy('due.next_attempt_at')
        .limit(c.limit)
        .forUpdate('due')
        .skipLocked(),
    )
    .where('status', '=', 'PENDING')
    .returning('id')
    .execute()
  if (claimed.length === 0) return []
  const rows = await db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('webhook_events as ev', 'ev.id', 'd.event_id')
    .innerJoin('webhook_endpoints as e', 'e.id', 'd.endpoint_id')
    .select([
      'd.id as delivery_id',
      'd.attempts',
      'd.tenant_id',
      'd.endpoint_id',
      'e.url',
      'e.secret_sealed',
      'e.previous_secret_sealed',
      'e.previous_secret_until',
      'ev.id as event_id',
      'ev.type as event_type',
      'ev.created_at as event_created_at',
      'ev.session',
    ])
    .where('d.claim_id', '=', c.claimId)
    .where(
      'd.id',
      'in',
      claimed.map((r) => r.id),
    )
    .execute()
  return rows.map((row) => ({
    deliveryId: row.delivery_id,
    claimId: c.claimId,
    attempts: row.attempts,
    tenantId: row.tenant_id,
    endpointId: row.endpoint_id,
    url: row.url,
    secrets: {
      secretSealed: row.secret_sealed,
      previousSecretSealed: row.previous_secret_sealed,
      previousSecretUntil: row.previous_secret_until,
    },
    event: {
      id: row.event_id,
      type: row.event_type,
      createdAt: row.event_created_at,
      session: snapshotToSession(row.session),
    },
  }))
}

/** What one attempt came to. */
export interface AttemptOutcome {
  readonly startedAt: Date
  readonly durationMs: number
  readonly statusCode: number | null
  readonly error: string | null
  /** DELIVERED, FAILED (the last attempt failed), or PENDING with the next attempt's time. */
  readonly status: WebhookDeliveryStatus
  readonly nextAttemptAt: Date | null
  readonly now: Date
}

/**
 * Records an attempt and the delivery's new state, if `claimId` still holds the claim (a claim
 * that lapsed and was taken over records nothing: the new holder's attempt counts). Returns
 * whether it was recorded.
 */
export async function recordAttempt(
  db: Db,
  claim: { deliveryId: string; claimId: string },
  outcome: AttemptOutcome,
): Promise<boolean> {
  const row = await db
    .updateTable('webhook_deliveries')
    .set({
      status: outcome.status,
      attempts: sql<number>`attempts + 1`,
      next_attempt_at: outcome.nextAttemptAt,
      claim_id: null,
      last_status_code: outcome.statusCode,
      last_error: outcome.error,
      last_attempt_at: outcome.startedAt,
      ...(outcome.status === 'DELIVERED' ? { delivered_at: outcome.now } : {}),
    })
    .where('id', '=', claim.deliveryId)
    .where('claim_id', '=', claim.claimId)
    .returning('attempts')
    .executeTakeFirst()
  if (!row) return false
  await db
    .insertInto('webhook_attempts')
    .values({
      delivery_id: claim.deliveryId,
      attempt: row.attempts,
      started_at: outcome.startedAt,
      duration_ms: outcome.durationMs,
      status_code: outcome.statusCode,
      error: outcome.error,
    })
    .execute()
  return true
}

/** A success clears the endpoint's failing streak. */
export async function markEndpointHealthy(db: Db, endpointId: string): Promise<void> {
  await db
    .updateTable('webhook_endpoints')
    .set({ failing_since: null })
    .where('id', '=', endpointId)
    .where('failing_since', 'is not', null)
    .execute()
}

/**
 * A failure starts the endpoint's failing streak if none runs; returns when the streak began
 * and whether the endpoint is still enabled.
 */
export async function markEndpointFailing(
  db: Db,
  endpointId: string,
  now: Date,
): Promise<{ failingSince: Date; enabled: boolean } | undefined> {
  const row = await db
    .updateTable('webhook_endpoints')
    .set({ failing_since: sql<Date>`coalesce(failing_since, ${now})` })
    .where('id', '=', endpointId)
    .returning(['failing_since', 'enabled'])
    .executeTakeFirst()
  return row?.failing_since ? { failingSince: row.failing_since, enabled: row.enabled } : undefined
}

/** Turns a failing endpoint off; false when it was off already (another instance did it). */
export async function disableEndpoint(db: Db, endpointId: string, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('webhook_endpoints')
    .set({ enabled: false, updated_at: now })
    .where('id', '=', endpointId)
    .where('enabled', '=', true)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

/** The attempts of a delivery, in order (tests and support). */
export async function listAttempts(db: Db, deliveryId: string) {
  return db
    .selectFrom('webhook_attempts')
    .select(['attempt', 'started_at', 'duration_ms', 'status_code', 'error'])
    .where('delivery_id', '=', deliveryId)
    .orderBy('attempt')
    .execute()
}
