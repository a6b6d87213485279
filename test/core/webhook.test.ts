/**
 * The webhook rules without I/O: the retry schedule's promises, the event names, the secret and
 * the signature format (checked with the `standardwebhooks` package, not with our own code).
 */
import { Webhook } from 'standardwebhooks'
import { describe, expect, it } from 'vitest'
import { AUTH_SESSION_STATUSES } from '../../src/core/auth-session.ts'
import {
  eventTypeOf,
  payloadTypeOf,
  RETRY_DELAYS_MS,
  RETRY_JITTER,
  retryDelayMs,
  shortError,
  shouldDisable,
  WEBHOOK_EVENT_TYPES,
} from '../../src/core/webhook.ts'
import { generateWebhookSecret, signWebhook } from '../../src/crypto/webhook-signature.ts'

describe('the retry schedule', () => {
  it('makes at least 8 attempts over at least 24 hours, the first retry within 30 s, with any jitter', () => {
    for (const random of [0, 0.5, 0.999999]) {
      const waits: number[] = []
      for (let made = 1; ; made++) {
        const wait = retryDelayMs(made, RETRY_DELAYS_MS, random)
        if (wait === null) break
        waits.push(wait)
      }
      expect(waits.length + 1).toBeGreaterThanOrEqual(8)
      expect(waits[0]).toBeLessThanOrEqual(30_000)
      expect(waits.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(24 * 3_600_000)
      for (let i = 1; i < waits.length; i++) {
        expect(waits[i]).toBeGreaterThanOrEqual(waits[i - 1]! * (random === 0 ? 1 : 0.9))
      }
    }
  })

  it('lengthens each wait by up to the jitter, never shortens it', () => {
    expect(retryDelayMs(1, [1000], 0)).toBe(1000)
    expect(retryDelayMs(1, [1000], 0.5)).toBe(1000 * (1 + RETRY_JITTER / 2))
    expect(retryDelayMs(2, [1000], 0.5)).toBeNull()
  })

  it('disables after the failing streak reaches its length, not before, and never without one', () => {
    const since = new Date('2026-12-01T00:00:00Z')
    expect(shouldDisable(since, new Date('2026-12-01T00:00:59Z'), 60_000)).toBe(false)
    expect(shouldDisable(since, new Date('2026-12-01T00:01:00Z'), 60_000)).toBe(true)
    expect(shouldDisable(null, new Date('2030-01-01T00:00:00Z'), 60_000)).toBe(false)
  })
})

describe('event names', () => {
  it('reports the five statuses of the contract under their payload types', () => {
    const reported = AUTH_SESSION_STATUSES.map((s) => [s, eventTypeOf(s)])
    expect(reported).toEqual([
      ['PENDING', null],
      ['OPENED', null],
      ['AWAITING_CONFIRMATION', 'AUTH_SESSION_AWAITING_CONFIRMATION'],
      ['AUTHENTICATED', 'AUTH_SESSION_AUTHENTICATED'],
      ['FAILED', 'AUTH_SESSION_FAILED'],
      ['EXPIRED', 'AUTH_SESSION_EXPIRED'],
      ['CANCELLED', 'AUTH_SESSION_CANCELLED'],
    ])
    expect(WEBHOOK_EVENT_TYPES.map(payloadTypeOf)).toEqual([
      'auth_session.authenticated',
      'auth_session.failed',
      'auth_session.expired',
      'auth_session.cancelled',
      'auth_session.awaiting_confirmation',
    ])
  })

  it('keeps an error to one short line', () => {
    expect(shortError('a\n  b\tc')).toBe('a b c')
    expect(shortError('x'.repeat(500))).toHaveLength(200)
  })
})

describe('secrets and signatures', () => {
  it('signs as standardwebhooks verifies, one signature per secret', () => {
    const [a, b] = [generateWebhookSecret(), generateWebhookSecret()]
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/)
    expect(a).not.toBe(b)
    const timestamp = Math.floor(Date.now() / 1000)
    const body = '{"type":"auth_session.failed"}'
    const headers = (signature: string) => ({
      'webhook-id': 'evt_1',
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signature,
    })
    expect(signWebhook([a], 'evt_1', timestamp, body)).toBe(
      new Webhook(a).sign('evt_1', new Date(timestamp * 1000), body),
    )
    const both = signWebhook([a, b], 'evt_1', timestamp, body)
    expect(new Webhook(a).verify(body, headers(both))).toEqual({ type: 'auth_session.failed' })
    expect(new Webhook(b).verify(body, headers(both))).toEqual({ type: 'auth_session.failed' })
    expect(() => new Webhook(generateWebhookSecret()).verify(body, headers(both))).toThrow(
      /No matching signature/,
    )
    expect(() => new Webhook(a).verify(`${body} `, headers(both))).toThrow(/No matching signature/)
  })
})
