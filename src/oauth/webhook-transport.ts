/**
 * The webhook transport: POSTs over a guarded outbound client of its own, whose allow-list is
 * OUTBOUND_ALLOW_HOSTS plus WEBHOOK_ALLOW_HOSTS (so a platform's private receivers never become
 * reachable for token or WhoAmI URLs). Every address is checked again at connect time, no
 * redirect is followed, 15 s for the connection, for the headers and for the whole call, and the
 * answer is read up to a small cap and dropped: nothing a receiver says is stored.
 */
import type { WebhookTransport } from '../services/webhooks.ts'
import { createOutboundClient, OutboundError, type OutboundOptions } from './outbound.ts'

export const WEBHOOK_OUTBOUND_DEFAULTS = {
  connectTimeoutMs: 15_000,
  headersTimeoutMs: 15_000,
  deadlineMs: 15_000,
  maxResponseBytes: 64 * 1024,
} as const

export function createWebhookTransport(
  options: { allowHosts: readonly string[] } & Partial<OutboundOptions>,
): WebhookTransport & { close(): Promise<void> } {
  const client = createOutboundClient({ ...WEBHOOK_OUTBOUND_DEFAULTS, ...options })
  const maxResponseBytes = options.maxResponseBytes ?? WEBHOOK_OUTBOUND_DEFAULTS.maxResponseBytes
  return {
    async post(url, headers, body) {
      try {
        const answer = await client.request(url, {
          method: 'POST',
          headers,
          body,
          maxResponseBytes,
        })
        return { status: answer.status }
      } catch (error) {
        if (error instanceof OutboundError) {
          throw new Error(`${error.kind}: ${error.message}`, { cause: error })
        }
        throw error
      }
    },
    close: () => client.close(),
  }
}
