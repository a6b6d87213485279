/**
 * Webhook secrets and signatures as the Standard Webhooks specification defines them, so its
 * `standardwebhooks` libraries verify what we send: a secret is `whsec_` + base64 of random
 * bytes, and the signature of one attempt is `v1,` + base64 HMAC-SHA256, keyed with those bytes,
 * of `<webhook-id>.<webhook-timestamp>.<body>`. Several secrets (during a rotation) give several
 * signatures, separated by spaces; a receiver accepts the message when any of them matches.
 */
import { createHmac, randomBytes } from 'node:crypto'
import { WEBHOOK_SECRET_BYTES, WEBHOOK_SECRET_PREFIX } from '../core/webhook.ts'

export function generateWebhookSecret(): string {
  return WEBHOOK_SECRET_PREFIX + randomBytes(WEBHOOK_SECRET_BYTES).toString('base64')
}

function keyOf(secret: string): Buffer {
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) {
    throw new Error(`a webhook secret starts with ${WEBHOOK_SECRET_PREFIX}`)
  }
  return Buffer.from(secret.slice(WEBHOOK_SECRET_PREFIX.length), 'base64')
}

/** The `webhook-signature` header of one attempt: one `v1,` signature per secret. */
export function signWebhook(
  secrets: readonly string[],
  messageId: string,
  timestampSeconds: number,
  body: string,
): string {
  const signed = `${messageId}.${timestampSeconds}.${body}`
  return secrets
    .map((secret) => `v1,${createHmac('sha256', keyOf(secret)).update(signed).digest('base64')}`)
    .join(' ')
}
