/**
 * Issuers' signing keys (JWK Sets, RFC 7517 §5), fetched through the guarded outbound client and
 * kept in process memory, one entry per `jwks_uri`. oauth4webapi selects the key and verifies
 * the signature; this module only decides when a set is fetched:
 *
 * - A set is used for `maxAgeMs` (5 min) after it arrived, then fetched again at its next use.
 * - One fetch per URI at a time: concurrent sign-ins wait for the fetch in flight (each within its
 *   own budget) instead of starting their own.
 * - A token that names a key the set lacks (`kid` unknown: the issuer rotated its keys) fetches
 *   the set again once. Such refetches are limited to one per URI per `refetchCooldownMs` (60 s):
 *   tokens with made-up key ids cannot make us fetch once per sign-in.
 * - A failed fetch is not cached: the next sign-in tries again (its own failure, once).
 * - Bounded: at most `maxEntries` URIs and `maxBytes` of key sets together; the least recently
 *   used go first.
 * - A set must be a JSON object with a `keys` array of objects (RFC 7517 §5), at most 256 KiB,
 *   within the caller's deadline; anything else is a provider failure, never an empty set.
 */
import { observeProviderCall } from '../observability/metrics.ts'
import type * as oauth from 'oauth4webapi'
import { authFailure, type AuthFailureReport } from '../core/auth-failure.ts'
import { isJsonObject } from '../core/json-limits.ts'
import { err, ok, type Result } from '../core/result.ts'
import type { OutboundClient, OutboundResponse } from './outbound.ts'
import { bodySnippet, parseBody, transportFailure } from './provider-answers.ts'

export interface KeySet {
  readonly uri: string
  readonly jwks: oauth.JWKS
  /** `Date.now()` when it arrived. */
  readonly fetchedAt: number
  readonly bytes: number
}

export interface JwksCacheOptions {
  readonly outbound: OutboundClient
  /** Default 5 minutes. */
  readonly maxAgeMs?: number
  /** Least time between two refetches of one URI for unknown keys. Default 60 s. */
  readonly refetchCooldownMs?: number
  /** Default 1,000 URIs. */
  readonly maxEntries?: number
  /** Default 8 MiB of key sets in all. */
  readonly maxBytes?: number
  /** Cap on one answer. Default 256 KiB. */
  readonly maxResponseBytes?: number
  readonly now?: () => number
}

export const JWKS_DEFAULTS = {
  maxAgeMs: 5 * 60_000,
  refetchCooldownMs: 60_000,
  maxEntries: 1_000,
  maxBytes: 8 * 1024 * 1024,
  maxResponseBytes: 256 * 1024,
} as const

export interface JwksCache {
  /** The set for `uri`: the cached one while fresh, else fetched (or the fetch in flight). */
  get(uri: string, deadlineMs: number): Promise<Result<KeySet, AuthFailureReport>>
  /**
   * After a token named a key that `seen` lacks: a newer set when there is one (fetched by
   * another sign-in since, or now), null when the URI was refetched for an unknown key less than
   * the cooldown ago (the token is then refused with the keys we have).
   */
  refetch(
    uri: string,
    seen: KeySet,
    deadlineMs: number,
  ): Promise<Result<KeySet | null, AuthFailureReport>>
  /** How many URIs and bytes are held (for tests and metrics). */
  size(): { readonly entries: number; readonly bytes: number }
}

interface Slot {
  set: KeySet | null
  pending: Promise<Result<KeySet, AuthFailureReport>> | null
  lastRefetchAt: number
}

export function createJwksCache(options: JwksCacheOptions): JwksCache {
  const maxAgeMs = options.maxAgeMs ?? JWKS_DEFAULTS.maxAgeMs
  const cooldownMs = options.refetchCooldownMs ?? JWKS_DEFAULTS.refetchCooldownMs
  const maxEntries = options.maxEntries ?? JWKS_DEFAULTS.maxEntries
  const maxBytes = options.maxBytes ?? JWKS_DEFAULTS.maxBytes
  const maxResponseBytes = options.maxResponseBytes ?? JWKS_DEFAULTS.maxResponseBytes
  const now = options.now ?? Date.now
  const slots = new Map<string, Slot>()
  let bytes = 0

  /** The URI's slot, now the most recently used (a Map keeps insertion order). */
  function touch(uri: string): Slot {
    const slot = slots.get(uri) ?? { set: null, pending: null, lastRefetchAt: -Infinity }
    slots.delete(uri)
    slots.set(uri, slot)
    return slot
  }

  function store(slot: Slot, set: KeySet): void {
    bytes += set.bytes - (slot.set?.bytes ?? 0)
    slot.set = set
    for (const [uri, oldest] of slots) {
      if (slots.size <= maxEntries && bytes <= maxBytes) break
      if (oldest === slot) continue
      bytes -= oldest.set?.bytes ?? 0
      slots.delete(uri)
    }
  }

  function load(uri: string, slot: Slot, deadlineMs: number) {
    if (slot.pending === null) {
      const pending = fetchKeySet(options.outbound, uri, maxResponseBytes, deadlineMs, now)
      slot.pending = pending
      void pending.then((result) => {
        slot.pending = null
        // A slot evicted meanwhile is not brought back.
        if (result.ok && slots.get(uri) === slot) store(slot, result.value)
      })
    }
    return withinDeadline(slot.pending, deadlineMs)
  }

  return {
    async get(uri, deadlineMs) {
      const slot = touch(uri)
      if (slot.set !== null && now() - slot.set.fetchedAt < maxAgeMs) return ok(slot.set)
      return load(uri, slot, deadlineMs)
    },
    async refetch(uri, seen, deadlineMs) {
      const slot = touch(uri)
      if (slot.set !== null && slot.set !== seen) return ok(slot.set)
      if (slot.pending === null) {
        if (now() - slot.lastRefetchAt < cooldownMs) return ok(null)
        slot.lastRefetchAt = now()
      }
      return load(uri, slot, deadlineMs)
    },
    size: () => ({ entries: slots.size, bytes }),
  }
}

/** A shared fetch awaited within one caller's budget: the caller gives up, the fetch goes on. */
function withinDeadline<T>(
  promise: Promise<Result<T, AuthFailureReport>>,
  ms: number,
): Promise<Result<T, AuthFailureReport>> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<Result<T, AuthFailureReport>>((resolve) => {
    timer = setTimeout(
      () =>
        resolve(
          err(authFailure('provider_timeout', 'jwks request: the provider did not answer in time')),
        ),
      Math.max(ms, 0),
    )
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

async function fetchKeySet(
  outbound: OutboundClient,
  uri: string,
  maxResponseBytes: number,
  deadlineMs: number,
  now: () => number,
): Promise<Result<KeySet, AuthFailureReport>> {
  let res: OutboundResponse
  try {
    res = await observeProviderCall('jwks', uri, () =>
      outbound.request(uri, {
        method: 'GET',
        headers: {
          accept: 'application/jwk-set+json, application/json',
          'user-agent': 'end-user-oauth',
        },
        maxResponseBytes,
        deadlineMs,
      }),
    )
  } catch (e) {
    return err(transportFailure('jwks request', e))
  }
  const jwks = readKeySet(res)
  if (!jwks.ok) return jwks
  return ok({ uri, jwks: jwks.value, fetchedAt: now(), bytes: res.body.length })
}

/** RFC 7517 §5: a JSON object whose `keys` is an array of JWK objects. */
function readKeySet(res: OutboundResponse): Result<oauth.JWKS, AuthFailureReport> {
  const step = 'jwks request'
  if (res.status !== 200) {
    const what =
      res.status >= 300 && res.status < 400
        ? `a redirect (HTTP ${res.status}), which is not followed`
        : `HTTP ${res.status}`
    return err(
      authFailure(
        'provider_error',
        `${step}: the issuer's key set answered ${what}`,
        bodySnippet(res),
      ),
    )
  }
  const parsed = parseBody(res, 8, false)
  if (parsed.kind === 'unreadable') {
    return err(
      authFailure('invalid_provider_response', `${step}: ${parsed.problem}`, bodySnippet(res)),
    )
  }
  const keys = parsed.value.keys
  if (!Array.isArray(keys) || !keys.every(isJsonObject)) {
    return err(
      authFailure(
        'invalid_provider_response',
        `${step}: the answer is not a key set (a JSON object with a "keys" array of objects)`,
        bodySnippet(res),
      ),
    )
  }
  // The parsed objects have null prototypes; oauth4webapi reads them as they are.
  return ok(parsed.value as unknown as oauth.JWKS)
}
