/**
 * Rate limits: requests per minute per bucket (an API key, a tenant, a client address, a
 * conversation), in fixed one-minute windows.
 *
 * Counting where the service runs decides how a limit holds across instances:
 * - one instance (the embedded database): counters in memory, exact;
 * - several instances on PostgreSQL: counters in memory that each instance adds to shared
 *   counts in PostgreSQL in one statement about once a second (`addCounts`). Between additions
 *   an instance admits on its own only its share of what is left of a limit
 *   (core/rate-limit.ts `localAllowance`); past that, a request waits for the next addition and
 *   is admitted by the shared sum. So no request on the hot path waits for the database until a
 *   bucket nears its limit, and together the instances overshoot by at most half of it;
 * - `REDIS_URL`: every request is counted in Redis (rate-limiter-flexible), exact.
 */
import { randomUUID } from 'node:crypto'
import type { RateLimitConfig } from '../config.ts'
import {
  admittedOf,
  localAllowance,
  retryAfterSeconds,
  WINDOW_MS,
  windowStart,
  type LimitName,
} from '../core/rate-limit.ts'
import { RateLimitedError } from '../core/errors.ts'
import type { Logger } from '../logger.ts'
import type { Deps } from './deps.ts'

/** Null: admitted. A number: over the limit, whole seconds until it resets. */
export type Verdict = number | null

export interface RateLimiter {
  /** Counts one request of `key` against the limit `name`. */
  take(name: LimitName, key: string): Verdict | Promise<Verdict>
  /** Whether `key` is over `name`'s limit as far as this instance knows, counting nothing. */
  blocked(name: LimitName, key: string): Verdict
  /** Stops background work (the periodic addition); counts not yet added are added first. */
  close(): Promise<void>
}

export function limitOf(config: RateLimitConfig, name: LimitName): number {
  switch (name) {
    case 'key':
      return config.perKey
    case 'tenant':
      return config.perTenant
    case 'address':
      return config.perAddress
    case 'anonymous':
      return config.anonymousPerAddress
    case 'conversation':
      return config.startsPerConversation
    case 'liveMapping':
      return config.liveMappingsPerTenant
  }
}

/** RATE_LIMITS=off. */
export const NO_RATE_LIMITS: RateLimiter = {
  take: () => null,
  blocked: () => null,
  close: async () => {},
}

/** What the limiter needs from a store shared by instances (db/rate-limits.ts over PostgreSQL). */
export interface SharedCounts {
  add(
    instance: string,
    hits: ReadonlyArray<{ bucket: string; windowStart: number; hits: number }>,
  ): Promise<{ sums: ReadonlyMap<string, number>; instances: number }>
  prune(before: number): Promise<void>
}

interface Counter {
  readonly bucket: string
  readonly limit: number
  readonly window: number
  /** The shared sum as last read (every instance's hits, this one's included). */
  known: number
  /** Admitted here and not yet added to the shared count. */
  pending: number
  /** Being added right now. */
  inFlight: number
  /** How many more this instance may admit on its own before the next addition. */
  allowance: number
  /** Requests waiting for the shared sum, in arrival order. */
  waiters: Array<(verdict: Verdict) => void>
}

export interface LocalLimiterOptions {
  readonly config: RateLimitConfig
  readonly now: () => number
  readonly logger: Logger
  /** Absent: this instance is alone (the embedded database), and its counts are exact. */
  readonly shared?: SharedCounts
  /** How often counts are added to the shared ones (default 1 s). */
  readonly syncIntervalMs?: number
}

export interface LocalLimiter extends RateLimiter {
  /** Adds the counts now (tests, and close). */
  sync(): Promise<void>
  /** Instances sharing the limits, as last read. */
  readonly instances: number
}

export function createLocalLimiter(options: LocalLimiterOptions): LocalLimiter {
  const { config, now, logger, shared } = options
  const interval = options.syncIntervalMs ?? 1000
  const instance = randomUUID()
  const counters = new Map<string, Counter>()
  const dirty = new Set<Counter>()
  let instances = 1
  let running: Promise<void> | null = null
  let again = false
  let lastPrune = 0
  let closed = false

  const counterOf = (name: LimitName, key: string, at: number): Counter => {
    const bucket = `${name}:${key}`
    const window = windowStart(at)
    let counter = counters.get(bucket)
    if (counter === undefined || counter.window !== window) {
      const limit = limitOf(config, name)
      counter = {
        bucket,
        limit,
        window,
        known: 0,
        pending: 0,
        inFlight: 0,
        allowance: shared ? localAllowance(limit, 0, instances) : Infinity,
        waiters: [],
      }
      counters.set(bucket, counter)
    }
    return counter
  }

  const take = (name: LimitName, key: string): Verdict | Promise<Verdict> => {
    const at = now()
    const counter = counterOf(name, key, at)
    const used = counter.known + counter.pending + counter.inFlight + counter.waiters.length
    if (used >= counter.limit) return retryAfterSeconds(at)
    if (counter.allowance > 0) {
      counter.allowance--
      counter.pending++
      if (shared) dirty.add(counter)
      return null
    }
    // Near the limit: only the shared sum can tell.
    return new Promise<Verdict>((resolve) => {
      counter.waiters.push(resolve)
      dirty.add(counter)
      void sync()
    })
  }

  const blocked = (name: LimitName, key: string): Verdict => {
    const at = now()
    const counter = counters.get(`${name}:${key}`)
    if (counter === undefined || counter.window !== windowStart(at)) return null
    const used = counter.known + counter.pending + counter.inFlight + counter.waiters.length
    return used >= counter.limit ? retryAfterSeconds(at) : null
  }

  const addOnce = async (): Promise<void> => {
    if (!shared) return
    const batch = [...dirty]
    dirty.clear()
    const sent = batch.map((counter) => {
      const waiters = counter.waiters
      counter.waiters = []
      const hits = counter.pending + waiters.length
      counter.inFlight += hits
      counter.pending = 0
      return { counter, waiters, hits }
    })
    try {
      const result = await shared.add(
        instance,
        sent.map(({ counter, hits }) => ({
          bucket: counter.bucket,
          windowStart: counter.window,
          hits,
        })),
      )
      instances = result.instances
      for (const { counter, waiters, hits } of sent) {
        counter.inFlight -= hits
        const total = result.sums.get(`${counter.bucket} ${counter.window}`) ?? counter.known
        counter.known = Math.max(counter.known, total)
        // The next share: what is left beyond the sum and what is on its way into it (other
        // additions in flight, requests waiting), less what this instance admitted on its own
        // while this addition ran (not in the sum either), so it never holds two shares at once.
        const share = localAllowance(
          counter.limit,
          counter.known + counter.inFlight + counter.waiters.length,
          instances,
        )
        counter.allowance = Math.max(0, share - counter.pending)
        const admitted = admittedOf(counter.limit, total, waiters.length)
        const retry = retryAfterSeconds(now())
        waiters.forEach((resolve, i) => resolve(i < admitted ? null : retry))
      }
    } catch (error) {
      // The database is unreachable: admit (every request would fail on it anyway), and add
      // the counts at the next try.
      logger.error({ err: error }, 'rate limit counts could not be added to the shared ones')
      for (const { counter, waiters, hits } of sent) {
        counter.inFlight -= hits
        counter.pending += hits
        dirty.add(counter)
        for (const resolve of waiters) resolve(null)
      }
    }
    const at = now()
    if (at - lastPrune >= WINDOW_MS) {
      lastPrune = at
      const current = windowStart(at)
      for (const [bucket, counter] of counters) {
        if (counter.window < current && counter.pending === 0 && counter.inFlight === 0) {
          counters.delete(bucket)
        }
      }
      await shared
        .prune(current - WINDOW_MS)
        .catch((error: unknown) => logger.warn({ err: error }, 'old rate limit counts stay'))
    }
  }

  /** One addition at a time; a request for another while one runs makes one more after it. */
  const sync = (): Promise<void> => {
    if (running) {
      again = true
      return running
    }
    running = (async () => {
      do {
        again = false
        await addOnce()
      } while (again)
    })().finally(() => {
      running = null
    })
    return running
  }

  // Memory alone: past windows are dropped once a minute.
  const timer = setInterval(
    () => {
      if (closed) return
      if (shared) {
        void sync()
        return
      }
      const current = windowStart(now())
      for (const [bucket, counter] of counters) {
        if (counter.window < current) counters.delete(bucket)
      }
    },
    shared ? interval : WINDOW_MS,
  )
  timer.unref()

  return {
    take,
    blocked,
    sync,
    get instances() {
      return instances
    },
    async close() {
      closed = true
      clearInterval(timer)
      if (shared && dirty.size > 0) await sync()
    },
  }
}

/** Counts in Redis, every request (exact across instances): rate-limiter-flexible. */
export async function createRedisLimiter(options: {
  readonly config: RateLimitConfig
  readonly url: string
  readonly logger: Logger
}): Promise<RateLimiter> {
  const [{ Redis }, { RateLimiterRedis, RateLimiterRes }] = await Promise.all([
    import('ioredis'),
    import('rate-limiter-flexible'),
  ])
  const client = new Redis(options.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
  client.on('error', (error: unknown) => options.logger.warn({ err: error }, 'redis'))
  const limiters = new Map<LimitName, InstanceType<typeof RateLimiterRedis>>()
  // Buckets refused lately, until when: what `blocked` can tell without asking Redis.
  const refused = new Map<string, number>()
  const limiterOf = (name: LimitName) => {
    let limiter = limiters.get(name)
    if (!limiter) {
      limiter = new RateLimiterRedis({
        storeClient: client,
        keyPrefix: `euo:rl:${name}`,
        points: limitOf(options.config, name),
        duration: WINDOW_MS / 1000,
      })
      limiters.set(name, limiter)
    }
    return limiter
  }
  return {
    async take(name, key) {
      try {
        await limiterOf(name).consume(key)
        return null
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) {
          if (refused.size > 10_000) refused.clear()
          refused.set(`${name}:${key}`, Date.now() + rejection.msBeforeNext)
          return Math.max(1, Math.ceil(rejection.msBeforeNext / 1000))
        }
        // Redis is unreachable: admit, as with PostgreSQL.
        options.logger.error({ err: rejection }, 'rate limit could not be counted in Redis')
        return null
      }
    },
    blocked(name, key) {
      const until = refused.get(`${name}:${key}`)
      if (until === undefined) return null
      const left = until - Date.now()
      if (left <= 0) {
        refused.delete(`${name}:${key}`)
        return null
      }
      return Math.max(1, Math.ceil(left / 1000))
    },
    async close() {
      await client.quit().catch(() => client.disconnect())
    },
  }
}

/**
 * Counts one use of what `name` limits for `key`, or throws RATE_LIMITED (HTTP 429 with
 * Retry-After); `what` says what is limited, e.g. "sign-ins started for this conversation".
 */
export async function enforceLimit(
  deps: Deps,
  name: LimitName,
  key: string,
  what: string,
): Promise<void> {
  const wait = await deps.rateLimits.take(name, key)
  if (wait === null) return
  const limit = limitOf(deps.config.rateLimits, name)
  throw new RateLimitedError(
    `Rate limit of ${limit} ${what} a minute exceeded; retry in ${wait} s`,
    wait,
  )
}
