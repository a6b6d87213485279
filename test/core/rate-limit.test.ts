import { describe, expect, it } from 'vitest'
import {
  addressBucket,
  admittedOf,
  localAllowance,
  retryAfterSeconds,
  windowStart,
} from '../../src/core/rate-limit.ts'
import type { RateLimitConfig } from '../../src/config.ts'
import { createLogger } from '../../src/logger.ts'
import { createLocalLimiter, type SharedCounts } from '../../src/services/rate-limits.ts'

describe('the arithmetic', () => {
  it('windows of a minute and the seconds left in one', () => {
    expect(windowStart(125_000)).toBe(120_000)
    expect(retryAfterSeconds(120_000)).toBe(60)
    expect(retryAfterSeconds(179_999)).toBe(1)
    expect(retryAfterSeconds(150_500)).toBe(30)
  })

  it("an instance's share of what is left, and who of the waiting gets in", () => {
    expect(localAllowance(100, 0, 1)).toBe(50)
    expect(localAllowance(100, 0, 4)).toBe(12)
    expect(localAllowance(100, 90, 2)).toBe(2)
    expect(localAllowance(100, 97, 2)).toBe(0)
    expect(localAllowance(100, 120, 2)).toBe(0)
    expect(admittedOf(10, 12, 5)).toBe(3)
    expect(admittedOf(10, 9, 5)).toBe(5)
    expect(admittedOf(10, 20, 5)).toBe(0)
  })

  it('buckets IPv6 clients by /64', () => {
    expect(addressBucket('203.0.113.5')).toBe('203.0.113.5')
    expect(addressBucket('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64')
    expect(addressBucket('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64')
    expect(addressBucket('::1')).toBe('0:0:0:0::/64')
    expect(addressBucket(null)).toBe('unknown')
  })
})

const CONFIG: RateLimitConfig = {
  enabled: true,
  perKey: 100,
  perTenant: 100,
  perAddress: 100,
  anonymousPerAddress: 100,
  startsPerConversation: 100,
  liveMappingsPerTenant: 100,
}

/** A shared store in memory, like the PostgreSQL one: sums per bucket and window. */
function sharedStore(): SharedCounts & { sums: Map<string, number> } {
  const sums = new Map<string, number>()
  const seen = new Set<string>()
  return {
    sums,
    async add(instance, hits) {
      seen.add(instance)
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 3))
      const result = new Map<string, number>()
      for (const hit of hits) {
        const id = `${hit.bucket} ${hit.windowStart}`
        const total = (sums.get(id) ?? 0) + hit.hits
        sums.set(id, total)
        result.set(id, total)
      }
      return { sums: result, instances: seen.size }
    },
    async prune() {},
  }
}

describe('instances sharing a limit', () => {
  const logger = createLogger({ level: 'silent' })

  it('admit at most half again as much as the limit, and at least the limit', async () => {
    for (const count of [1, 2, 4, 8]) {
      const shared = sharedStore()
      const now = () => 1_000
      const instances = Array.from({ length: count }, () =>
        createLocalLimiter({ config: CONFIG, now, logger, shared, syncIntervalMs: 60_000 }),
      )
      // Every instance has added its counts twice, so each knows how many share the limit (an
      // instance that starts believes itself alone until its next addition, within a second).
      for (const limiter of [...instances, ...instances]) await limiter.sync()
      for (const limiter of instances) expect(limiter.instances).toBe(count)
      let admitted = 0
      const pending: Promise<unknown>[] = []
      for (let i = 0; i < 1000; i++) {
        const limiter = instances[Math.floor(Math.random() * count)]!
        pending.push(
          Promise.resolve(limiter.take('key', 'k')).then((verdict) => {
            if (verdict === null) admitted++
          }),
        )
        // Additions happen now and then, at random, as the timers would.
        if (Math.random() < 0.05) void instances[Math.floor(Math.random() * count)]!.sync()
      }
      await Promise.all(pending)
      for (const limiter of instances) await limiter.close()
      expect(admitted, `${count} instances`).toBeGreaterThanOrEqual(100)
      expect(admitted, `${count} instances`).toBeLessThanOrEqual(150)
    }
  })

  it('one instance alone in memory is exact', async () => {
    const limiter = createLocalLimiter({ config: CONFIG, now: () => 1_000, logger })
    const verdicts = Array.from({ length: 150 }, () => limiter.take('key', 'k'))
    expect(verdicts.filter((v) => v === null)).toHaveLength(100)
    expect(verdicts.slice(100).every((v) => v === 59)).toBe(true)
    expect(limiter.take('key', 'another')).toBeNull()
    await limiter.close()
  })
})
