/**
 * The webhook delivery worker, one per instance: it claims due deliveries (db/webhooks.ts:
 * `FOR UPDATE SKIP LOCKED` and a lease, so instances never make the same attempt together and a
 * dead instance's attempt is made again once its lease lapses) and sends them, several at a time.
 * It looks every `pollMs`, which picks up the events of other instances and the retries that fell
 * due, and, while any endpoint is enabled, also when woken (a session change committed in this
 * process), so a delivery goes out at once. Without endpoints a session change queues nothing, and
 * looking on each one would cost a statement per change for nothing: whether there are any is
 * read again on every poll and on a wake once the last reading is a second old, so the first
 * delivery of an endpoint enabled on another instance waits at most that second (or `pollMs`,
 * when shorter); one enabled on this instance says so at once (`endpointEnabled`).
 */
import type { Logger } from '../logger.ts'
import type { OutboundOptions } from '../oauth/outbound.ts'
import { createWebhookTransport } from '../oauth/webhook-transport.ts'
import type { Deps, WebhookCue } from '../services/deps.ts'
import type { SessionEvents } from './events.ts'
import {
  anyEnabledEndpoint,
  claimDueDeliveries,
  deliverClaimed,
  DELIVERY_DEFAULTS,
  type DeliveryOptions,
  type WebhookTransport,
} from '../services/webhooks.ts'

/** Wakes the worker; created with the deps, so the events they publish can ring it. */
export interface WebhookWake extends WebhookCue {
  listen(listener: (cue: 'ring' | 'endpoint') => void): () => void
}

export function createWebhookWake(): WebhookWake {
  const listeners = new Set<(cue: 'ring' | 'endpoint') => void>()
  const tell = (cue: 'ring' | 'endpoint') => {
    for (const listener of listeners) listener(cue)
  }
  return {
    ring: () => tell('ring'),
    endpointEnabled: () => tell('endpoint'),
    listen(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}

/** `events` that also ring `wake`: every session change is published after its commit. */
export function ringingOnPublish(events: SessionEvents, wake: WebhookWake): SessionEvents {
  return {
    publish(sessionId) {
      events.publish(sessionId)
      wake.ring()
    },
    subscribe: (sessionId) => events.subscribe(sessionId),
    // Wakes come from other instances' notices and timers: the instance that made the change
    // already rang its own worker.
    wake: (sessionId) => events.wake(sessionId),
    wakeAll: () => events.wakeAll(),
    end: () => events.end(),
  }
}

export interface WebhookWorkerOptions extends DeliveryOptions {
  readonly pollMs: number
  /** Attempts in flight at once. */
  readonly concurrency: number
  /** Outbound settings beyond the allow-lists (tests: short timeouts, another resolver). */
  readonly outbound?: Partial<OutboundOptions>
  /** Instead of the guarded HTTP client (tests only). */
  readonly transport?: WebhookTransport
}

/** How old the reading of "no endpoint enabled" may be before a wake reads it again. */
const ENDPOINTS_REREAD_MS = 1_000

export const WORKER_DEFAULTS: WebhookWorkerOptions = {
  ...DELIVERY_DEFAULTS,
  pollMs: 1_000,
  concurrency: 8,
}

export interface WebhookWorker {
  /** Looks for due deliveries now (also what a wake does). */
  poke(): void
  /** Stops claiming and waits for the attempts in flight. */
  stop(): Promise<void>
}

export function startWebhookWorker(
  deps: Deps,
  wake: WebhookWake | null,
  logger: Logger,
  overrides: Partial<WebhookWorkerOptions> = {},
): WebhookWorker {
  const options: WebhookWorkerOptions = { ...WORKER_DEFAULTS, ...overrides }
  const owned = options.transport
    ? null
    : createWebhookTransport({
        allowHosts: [...deps.config.outboundAllowHosts, ...deps.config.webhookAllowHosts],
        ...options.outbound,
      })
  const transport = options.transport ?? owned!
  const inFlight = new Set<Promise<void>>()
  let stopped = false
  let claiming = false
  let again = false
  /** Whether the last look saw an enabled endpoint, and when that was (see the header). */
  let endpoints = true
  let endpointsReadAt = 0

  async function fill(): Promise<void> {
    if (stopped) return
    if (claiming) {
      again = true
      return
    }
    claiming = true
    try {
      do {
        again = false
        const room = options.concurrency - inFlight.size
        if (room <= 0) break
        const claimed = await claimDueDeliveries(deps, room, options)
        for (const delivery of claimed) {
          const attempt = deliverClaimed(deps, transport, delivery, options)
            .catch((error: unknown) =>
              logger.error(
                { err: error, webhookDeliveryId: delivery.deliveryId },
                'webhook attempt crashed',
              ),
            )
            .finally(() => {
              inFlight.delete(attempt)
              void fill()
            })
          inFlight.add(attempt)
        }
        // A full batch: there may be more due.
        if (claimed.length === room) again = true
      } while (again && !stopped)
    } catch (error) {
      logger.error({ err: error }, 'claiming webhook deliveries failed')
    } finally {
      claiming = false
    }
  }

  async function poll(): Promise<void> {
    endpointsReadAt = Date.now()
    try {
      endpoints = await anyEnabledEndpoint(deps)
    } catch (error) {
      endpoints = true // unknown: look on every change rather than miss one
      logger.warn({ err: error }, 'could not tell whether any webhook endpoint is enabled')
    }
    await fill()
  }

  const unlisten = wake?.listen((cue) => {
    if (cue === 'endpoint') endpoints = true
    if (endpoints) void fill()
    else if (Date.now() - endpointsReadAt >= ENDPOINTS_REREAD_MS) void poll()
  })
  const timer = setInterval(() => void poll(), options.pollMs)
  timer.unref()
  void poll()

  return {
    poke: () => void fill(),
    async stop() {
      stopped = true
      clearInterval(timer)
      unlisten?.()
      while (claiming || inFlight.size > 0) {
        await Promise.allSettled([...inFlight])
        if (claiming) await new Promise((resolve) => setTimeout(resolve, 10))
      }
      await owned?.close()
    },
  }
}
