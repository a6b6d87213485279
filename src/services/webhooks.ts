/**
 * Webhooks: endpoints (ADMIN), their deliveries, and the delivery of due attempts.
 *
 * - Events are not written here: a trigger on auth_sessions records one (with a delivery per
 *   subscribed, enabled endpoint) in the same statement as every change to a reported status
 *   (migrations/2026_12_02_0014_webhooks.ts), so no writer of sessions can forget it and a crash
 *   cannot lose it.
 * - The secret is shown once (create, rotate) and stored sealed, bound to its row and column.
 *   After a rotation the previous secret signs alongside the new one for ROTATION_OVERLAP_MS.
 * - Every create, change, rotation, deletion and automatic disabling leaves an audit record;
 *   none holds a secret.
 * - Ids of another tenant are NOT_FOUND exactly like unknown ones.
 */
import { randomUUID } from 'node:crypto'
import { BadUserInputError, NotFoundError, type InputFieldProblem } from '../core/errors.ts'
import {
  descriptionProblem,
  DISABLE_AFTER_MS,
  eventsProblem,
  normaliseEvents,
  RETRY_DELAYS_MS,
  retryDelayMs,
  ROTATION_OVERLAP_MS,
  shortError,
  shouldDisable,
  webhookBody,
  webhookUrlProblem,
  type WebhookEventType,
} from '../core/webhook.ts'
import type { SealContext } from '../crypto/sealer.ts'
import { generateWebhookSecret, signWebhook } from '../crypto/webhook-signature.ts'
import { auditChange } from '../db/audit.ts'
import type { Db } from '../db/database.ts'
import * as store from '../db/webhooks.ts'
import type { ClaimedDelivery, WebhookDelivery, WebhookEndpoint } from '../db/webhooks.ts'
import type { Deps } from './deps.ts'
import type { Actor } from './integrations.ts'
import { isUuid } from './sign-in.ts'

export type { WebhookDelivery, WebhookEndpoint } from '../db/webhooks.ts'

const TARGET = 'webhook_endpoint'

export interface CreateWebhookEndpointInput {
  readonly url: string
  readonly events?: readonly WebhookEventType[] | null
  readonly description?: string | null
}

export interface UpdateWebhookEndpointInput {
  readonly id: string
  readonly url?: string | null | undefined
  readonly events?: readonly WebhookEventType[] | null | undefined
  readonly description?: string | null | undefined
  readonly enabled?: boolean | null | undefined
}

export interface EndpointWithSecret {
  readonly endpoint: WebhookEndpoint
  /** `whsec_…`: shown this once. */
  readonly secret: string
}

function secretContext(tenantId: string, id: string, column: string): SealContext {
  return { tenantId, table: 'webhook_endpoints', rowId: id, column }
}

function urlProblem(deps: Deps, url: string): string | null {
  return webhookUrlProblem(url, deps.config.outboundAllowHosts, deps.config.webhookAllowHosts)
}

function fail(problems: InputFieldProblem[]): void {
  if (problems.length > 0) throw BadUserInputError.of(problems)
}

export async function createWebhookEndpoint(
  deps: Deps,
  actor: Actor,
  input: CreateWebhookEndpointInput,
): Promise<EndpointWithSecret> {
  const problems: InputFieldProblem[] = []
  const url = urlProblem(deps, input.url)
  if (url) problems.push({ field: 'input.url', message: url })
  if (input.events) {
    const events = eventsProblem(input.events)
    if (events) problems.push({ field: 'input.events', message: events })
  }
  const description = input.description ?? null
  if (description !== null) {
    const text = descriptionProblem(description)
    if (text) problems.push({ field: 'input.description', message: text })
  }
  fail(problems)
  const id = randomUUID()
  const secret = generateWebhookSecret()
  const now = deps.now()
  const events = normaliseEvents(input.events)
  const endpoint = await deps.db.transaction().execute(async (trx) => {
    const created = await store.insertEndpoint(trx, {
      id,
      tenantId: actor.tenantId,
      url: input.url,
      events,
      description,
      secretSealed: deps.sealer.seal(
        secret,
        secretContext(actor.tenantId, id, store.SECRET_COLUMNS.current),
      ),
      now,
    })
    await audit(trx, actor, 'created', id, now, { url: input.url, events })
    return created
  })
  deps.logger.info({ tenantId: actor.tenantId, webhookEndpointId: id }, 'webhook endpoint created')
  deps.webhookWake.endpointEnabled()
  return { endpoint, secret }
}

export async function updateWebhookEndpoint(
  deps: Deps,
  actor: Actor,
  input: UpdateWebhookEndpointInput,
): Promise<WebhookEndpoint> {
  const problems: InputFieldProblem[] = []
  const changes: { -readonly [K in keyof store.EndpointChanges]: store.EndpointChanges[K] } = {}
  if (input.url === null) problems.push({ field: 'input.url', message: 'must not be null' })
  else if (input.url !== undefined) {
    const url = urlProblem(deps, input.url)
    if (url) problems.push({ field: 'input.url', message: url })
    changes.url = input.url
  }
  if (input.events !== undefined) {
    const events = input.events === null ? null : eventsProblem(input.events)
    if (events) problems.push({ field: 'input.events', message: events })
    changes.events = normaliseEvents(input.events)
  }
  if (input.description !== undefined) {
    const text = input.description === null ? null : descriptionProblem(input.description)
    if (text) problems.push({ field: 'input.description', message: text })
    changes.description = input.description
  }
  if (input.enabled === null) problems.push({ field: 'input.enabled', message: 'must not be null' })
  else if (input.enabled !== undefined) changes.enabled = input.enabled
  fail(problems)
  const now = deps.now()
  const updated = isUuid(input.id)
    ? await deps.db.transaction().execute(async (trx) => {
        const endpoint = await store.updateEndpoint(trx, actor.tenantId, input.id, changes, now)
        if (endpoint) {
          await audit(trx, actor, 'updated', input.id, now, {
            fields: Object.keys(changes),
            ...changes,
          })
        }
        return endpoint
      })
    : undefined
  if (!updated) throw NotFoundError.of('webhook endpoint', input.id)
  if (changes.enabled === true) deps.webhookWake.endpointEnabled()
  return updated
}

export async function deleteWebhookEndpoint(deps: Deps, actor: Actor, id: string): Promise<void> {
  const now = deps.now()
  const deleted =
    isUuid(id) &&
    (await deps.db.transaction().execute(async (trx) => {
      const done = await store.deleteEndpoint(trx, actor.tenantId, id)
      if (done) await audit(trx, actor, 'deleted', id, now, {})
      return done
    }))
  if (!deleted) throw NotFoundError.of('webhook endpoint', id)
}

/** A new secret, shown once; the current one keeps signing alongside for ROTATION_OVERLAP_MS. */
export async function rotateWebhookSecret(
  deps: Deps,
  actor: Actor,
  id: string,
): Promise<EndpointWithSecret> {
  const now = deps.now()
  const secret = generateWebhookSecret()
  const endpoint = isUuid(id)
    ? await deps.db.transaction().execute(async (trx) => {
        const found = await store.findEndpoint(trx, actor.tenantId, id)
        if (!found) return undefined
        const current = deps.sealer.open(
          found.secretSealed,
          secretContext(actor.tenantId, id, store.SECRET_COLUMNS.current),
        )
        const previousUntil = new Date(now.getTime() + ROTATION_OVERLAP_MS)
        const rotated = await store.rotateSecret(trx, actor.tenantId, id, {
          secretSealed: deps.sealer.seal(
            secret,
            secretContext(actor.tenantId, id, store.SECRET_COLUMNS.current),
          ),
          previousSecretSealed: deps.sealer.seal(
            current,
            secretContext(actor.tenantId, id, store.SECRET_COLUMNS.previous),
          ),
          previousUntil,
          now,
        })
        await audit(trx, actor, 'secret_rotated', id, now, {
          previousSecretUntil: previousUntil.toISOString(),
        })
        return rotated
      })
    : undefined
  if (!endpoint) throw NotFoundError.of('webhook endpoint', id)
  return { endpoint, secret }
}

export function listWebhookEndpoints(deps: Deps, tenantId: string): Promise<WebhookEndpoint[]> {
  return store.listEndpoints(deps.db, tenantId)
}

export const DELIVERIES_DEFAULT = 20
export const DELIVERIES_MAX = 100

/** An endpoint's deliveries, newest first. */
export async function listWebhookDeliveries(
  deps: Deps,
  tenantId: string,
  endpointId: string,
  first: number | null | undefined,
): Promise<WebhookDelivery[]> {
  const limit = first ?? DELIVERIES_DEFAULT
  if (!Number.isInteger(limit) || limit < 1 || limit > DELIVERIES_MAX) {
    throw BadUserInputError.of([
      { field: 'first', message: `must be from 1 to ${DELIVERIES_MAX} (got ${limit})` },
    ])
  }
  const endpoint = isUuid(endpointId)
    ? await store.findEndpoint(deps.db, tenantId, endpointId)
    : undefined
  if (!endpoint) throw NotFoundError.of('webhook endpoint', endpointId)
  return store.listDeliveries(deps.db, tenantId, endpointId, limit)
}

/**
 * Sends an event again: a new PENDING delivery of the same event (so the same `webhook-id`) to
 * the same endpoint, due now, with a retry schedule of its own; the old delivery keeps its
 * history. The endpoint must be enabled.
 */
export async function redeliverWebhook(
  deps: Deps,
  actor: Actor,
  deliveryId: string,
): Promise<WebhookDelivery> {
  const delivery = isUuid(deliveryId)
    ? await store.findDelivery(deps.db, actor.tenantId, deliveryId)
    : undefined
  if (!delivery) throw NotFoundError.of('webhook delivery', deliveryId)
  const endpoint = await store.findEndpoint(deps.db, actor.tenantId, delivery.endpointId)
  if (!endpoint) throw NotFoundError.of('webhook delivery', deliveryId)
  if (!endpoint.enabled) {
    throw BadUserInputError.of([
      {
        field: 'deliveryId',
        message: `its endpoint ${endpoint.id} is disabled; enable it with updateWebhookEndpoint first`,
      },
    ])
  }
  return store.insertRedelivery(deps.db, delivery, randomUUID(), deps.now())
}

function audit(
  db: Db,
  actor: Actor,
  verb: 'created' | 'updated' | 'deleted' | 'secret_rotated' | 'disabled',
  id: string,
  at: Date,
  details: Record<string, unknown>,
): Promise<void> {
  return auditChange(db, actor, TARGET, verb, id, at, details)
}

// ---------------------------------------------------------------------------------------------
// Delivery

/** One POST to an endpoint (src/oauth/webhook-transport.ts, over the guarded client). */
export interface WebhookTransport {
  /**
   * Sends once and follows no redirect. Resolves with the status code once the whole answer
   * (size-capped) is read; rejects with an Error whose message names what failed without any
   * resolved address or secret.
   */
  post(
    url: string,
    headers: Readonly<Record<string, string>>,
    body: string,
  ): Promise<{ status: number }>
}

export interface DeliveryOptions {
  /** The waits after each failed attempt; attempts = its length + 1. */
  readonly retryDelaysMs: readonly number[]
  /** How long a claimed attempt is left to its instance before another may make it. */
  readonly leaseMs: number
  /** An endpoint failing this long (no success in between) is disabled. */
  readonly disableAfterMs: number
  /** In [0, 1): the jitter of the retry waits. */
  readonly random: () => number
}

export const DELIVERY_DEFAULTS: DeliveryOptions = {
  retryDelaysMs: RETRY_DELAYS_MS,
  // Longer than one attempt may take (15 s) with room to spare.
  leaseMs: 60_000,
  disableAfterMs: DISABLE_AFTER_MS,
  random: Math.random,
}

/** Claims up to `limit` due deliveries for this instance (see db/webhooks.ts). */
/** Whether any tenant has an enabled endpoint (the worker's cue to look on every session change). */
export function anyEnabledEndpoint(deps: Deps): Promise<boolean> {
  return store.anyEnabledEndpoint(deps.db)
}

export function claimDueDeliveries(
  deps: Deps,
  limit: number,
  options: DeliveryOptions,
): Promise<ClaimedDelivery[]> {
  return store.claimDueDeliveries(deps.db, {
    claimId: randomUUID(),
    now: deps.now(),
    leaseMs: options.leaseMs,
    limit,
  })
}

/** The secrets that sign now: the current one, and the previous during its overlap. */
function signingSecrets(deps: Deps, claimed: ClaimedDelivery, now: Date): string[] {
  const { secrets, tenantId, endpointId } = claimed
  const current = deps.sealer.open(
    secrets.secretSealed,
    secretContext(tenantId, endpointId, store.SECRET_COLUMNS.current),
  )
  if (
    secrets.previousSecretSealed === null ||
    secrets.previousSecretUntil === null ||
    secrets.previousSecretUntil <= now
  ) {
    return [current]
  }
  const previous = deps.sealer.open(
    secrets.previousSecretSealed,
    secretContext(tenantId, endpointId, store.SECRET_COLUMNS.previous),
  )
  return [current, previous]
}

/**
 * Makes one claimed attempt: signs it afresh (its own `webhook-timestamp`), POSTs it, and
 * records the outcome: DELIVERED on a 2xx; otherwise the next attempt after the schedule's
 * wait, or FAILED after the last. An endpoint failing for `disableAfterMs` is disabled, with an
 * audit record.
 */
export async function deliverClaimed(
  deps: Deps,
  transport: WebhookTransport,
  claimed: ClaimedDelivery,
  options: DeliveryOptions,
): Promise<void> {
  const startedAt = deps.now()
  const started = performance.now()
  let statusCode: number | null = null
  let error: string | null = null
  try {
    const body = webhookBody(claimed.event)
    const timestamp = Math.floor(startedAt.getTime() / 1000)
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'end-user-oauth-webhooks',
      'webhook-id': claimed.event.id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signWebhook(
        signingSecrets(deps, claimed, startedAt),
        claimed.event.id,
        timestamp,
        body,
      ),
    }
    const answer = await transport.post(claimed.url, headers, body)
    statusCode = answer.status
    if (answer.status < 200 || answer.status > 299) {
      error =
        answer.status >= 300 && answer.status < 400
          ? `answered HTTP ${answer.status}; redirects are not followed`
          : `answered HTTP ${answer.status}`
    }
  } catch (caught) {
    error = shortError(caught instanceof Error ? caught.message : String(caught))
  }
  const durationMs = Math.round(performance.now() - started)
  const now = deps.now()
  const attemptsMade = claimed.attempts + 1
  const delay =
    error === null ? null : retryDelayMs(attemptsMade, options.retryDelaysMs, options.random())
  const status = error === null ? 'DELIVERED' : delay === null ? 'FAILED' : 'PENDING'
  const log = {
    tenantId: claimed.tenantId,
    webhookEndpointId: claimed.endpointId,
    webhookDeliveryId: claimed.deliveryId,
    eventId: claimed.event.id,
    attempt: attemptsMade,
    statusCode,
    durationMs,
  }
  // The attempt, the endpoint's failing streak and a disabling commit together: once the
  // endpoint is off, no further attempt of this delivery can be claimed.
  const outcome = await deps.db.transaction().execute(async (trx) => {
    const recorded = await store.recordAttempt(trx, claimed, {
      startedAt,
      durationMs,
      statusCode,
      error,
      status,
      nextAttemptAt: delay === null ? null : new Date(now.getTime() + delay),
      now,
    })
    if (!recorded) return 'outlived' as const
    if (error === null) {
      await store.markEndpointHealthy(trx, claimed.endpointId)
      return 'delivered' as const
    }
    const failing = await store.markEndpointFailing(trx, claimed.endpointId, now)
    if (!failing?.enabled || !shouldDisable(failing.failingSince, now, options.disableAfterMs)) {
      return 'failed' as const
    }
    if (!(await store.disableEndpoint(trx, claimed.endpointId, now))) return 'failed' as const
    await audit(
      trx,
      { tenantId: claimed.tenantId, apiKeyId: null },
      'disabled',
      claimed.endpointId,
      now,
      {
        reason: 'every attempt failed for too long',
        failingSince: failing.failingSince.toISOString(),
        lastError: error,
      },
    )
    return 'disabled' as const
  })
  if (outcome === 'outlived') {
    deps.logger.warn(log, 'webhook attempt outlived its claim; another instance took it over')
  } else if (outcome === 'delivered') {
    deps.logger.info(log, 'webhook delivered')
  } else {
    deps.logger.warn({ ...log, error, status }, 'webhook attempt failed')
    if (outcome === 'disabled') deps.logger.warn(log, 'webhook endpoint disabled: failing too long')
  }
}
