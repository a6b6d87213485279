/**
 * The arithmetic of the rate limits (services/rate-limits.ts holds the counters): fixed windows
 * of one minute, and how much of a limit one instance may hand out before it must add its count
 * to the one all instances share.
 */

export const WINDOW_MS = 60_000

/** What a limit counts, each with its own variable (config.ts RateLimitConfig). */
export type LimitName = 'key' | 'tenant' | 'address' | 'anonymous' | 'conversation' | 'liveMapping'

/** The start of the window `nowMs` falls in. */
export function windowStart(nowMs: number): number {
  return Math.floor(nowMs / WINDOW_MS) * WINDOW_MS
}

/** Whole seconds until the window of `nowMs` ends, at least 1 (what Retry-After says). */
export function retryAfterSeconds(nowMs: number): number {
  return Math.max(1, Math.ceil((windowStart(nowMs) + WINDOW_MS - nowMs) / 1000))
}

/**
 * How many requests an instance may admit on its own, without asking the shared count, until it
 * next adds its count to it: a share of what is left, `(limit - known) / (2 × instances)`. Each
 * instance can overshoot only with requests admitted that way since its last addition, so all
 * instances together overshoot by at most half of the limit; near the limit the share is 0 and
 * every request waits for the shared count, which makes it exact there.
 */
export function localAllowance(limit: number, known: number, instances: number): number {
  return Math.max(0, Math.floor((limit - known) / (2 * Math.max(1, instances))))
}

/**
 * Of `waiting` requests added to a shared count that then read `total`, how many fall within
 * `limit` (the first ones, in arrival order).
 */
export function admittedOf(limit: number, total: number, waiting: number): number {
  return Math.min(waiting, Math.max(0, limit - (total - waiting)))
}

/**
 * The bucket of a client address: IPv6 clients by their /64 (one subscriber's share, which they
 * can fill with as many addresses as they like), IPv4 clients by their address.
 */
export function addressBucket(address: string | null): string {
  if (address === null) return 'unknown'
  if (!address.includes(':')) return address
  const groups = expandIPv6(address)
  return groups === null ? address : `${groups.slice(0, 4).join(':')}::/64`
}

function expandIPv6(address: string): string[] | null {
  const [head = '', tail] = address.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  if (tail === undefined && left.length !== 8) return null
  const missing = 8 - left.length - right.length
  if (missing < 0) return null
  return [...left, ...new Array<string>(missing).fill('0'), ...right].map((g) =>
    g.toLowerCase().replace(/^0+(?=.)/, ''),
  )
}
