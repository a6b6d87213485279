/**
 * Wiring shared by `npm start`, `npm run migrate` and the CLI: open the database (taking the
 * embedded database's owner lock), migrate, build the sealer and the deps.
 */
import { existsSync } from 'node:fs'
import path from 'node:path'
import type { Config } from '../config.ts'
import { createSealer, loadOrCreateDevKey, type Sealer } from '../crypto/sealer.ts'
import { migrateToLatest, openDatabase, type DatabaseHandle, type Db } from '../db/database.ts'
import { makeDataDirPrivate } from './data-dir.ts'
import { acquireOwnerLock, type OwnerInfo, type OwnerLock } from './owner-lock.ts'
import { listenToDatabase, singleProcess, type Cluster } from './cluster.ts'
import { createWebhookWake, ringingOnPublish, type WebhookWake } from './webhook-worker.ts'
import type { Logger } from '../logger.ts'
import { createProviderGateway } from '../oauth/gateway.ts'
import type { OutboundOptions } from '../oauth/outbound.ts'
import type { Deps, ProviderGateway } from '../services/deps.ts'
import { addCounts, pruneCounts } from '../db/rate-limits.ts'
import {
  createLocalLimiter,
  createRedisLimiter,
  NO_RATE_LIMITS,
  type RateLimiter,
  type Verdict,
} from '../services/rate-limits.ts'
import type { LimitName } from '../core/rate-limit.ts'
import { recordRateLimited } from '../observability/metrics.ts'
import { createIntegrationCache } from '../services/integrations.ts'
import { createApiKeyCache, createTenantCache } from '../services/tenants.ts'

export function sealerFor(config: Config, logger: Logger): Sealer {
  if (config.encryptionKey) return createSealer(config.encryptionKey, config.previousEncryptionKeys)
  const { key, created } = loadOrCreateDevKey(config.dataDir)
  logger.warn(
    { file: `${config.dataDir}/encryption.key`, created },
    'ENCRYPTION_KEY is not set: using a development key kept in DATA_DIR (required in production)',
  )
  return createSealer(key, config.previousEncryptionKeys)
}

/** What a caller other than `openRuntime` may choose (the test app pins the clock, for one). */
export interface DepsOptions {
  readonly now?: () => Date
  /** Outbound client settings beyond OUTBOUND_ALLOW_HOSTS (short deadlines, another resolver). */
  readonly outbound?: Partial<OutboundOptions>
  /** The database `db` is (default: the configured one): PostgreSQL shares rate limit counts. */
  readonly databaseKind?: 'postgres' | 'pglite'
  /** Where events and invalidations come from; default: this process only. */
  readonly cluster?: Cluster
}

/** Deps whose provider gateway holds connections: its owner closes it, and the rate limits. */
export interface OwnedDeps extends Deps {
  readonly provider: ProviderGateway & { close(): Promise<void> }
  /** Rung after every published session change: the webhook worker then looks at once. */
  readonly webhookWake: WebhookWake
}

/** An instance is counted among those sharing the limits while it added counts this recently. */
const INSTANCE_LIVE_MS = 5_000

/**
 * RATE_LIMITS=off: none. REDIS_URL: counted in Redis. PostgreSQL: in memory, added to shared
 * counts in the database every second. The embedded database (one instance): in memory.
 */
export function rateLimiterFor(
  config: Config,
  db: Db,
  databaseKind: 'postgres' | 'pglite',
  logger: Logger,
  now: () => Date,
): RateLimiter {
  if (!config.rateLimits.enabled) return NO_RATE_LIMITS
  return countingRefusals(chosenLimiter(config, db, databaseKind, logger, now))
}

/** The `scope` label of euo_rate_limited_total for each limit. */
const SCOPE: Readonly<Record<LimitName, string>> = {
  key: 'api_key',
  tenant: 'tenant',
  address: 'address',
  anonymous: 'anonymous',
  conversation: 'conversation',
  liveMapping: 'live_mapping',
}

/** `limiter`, counting every refusal in the metrics (synchronous answers stay synchronous). */
function countingRefusals(limiter: RateLimiter): RateLimiter {
  const seen = (name: LimitName, verdict: Verdict): Verdict => {
    if (verdict !== null) recordRateLimited(SCOPE[name])
    return verdict
  }
  return {
    take(name, key) {
      const verdict = limiter.take(name, key)
      return verdict instanceof Promise ? verdict.then((v) => seen(name, v)) : seen(name, verdict)
    },
    blocked: (name, key) => limiter.blocked(name, key),
    close: () => limiter.close(),
  }
}

function chosenLimiter(
  config: Config,
  db: Db,
  databaseKind: 'postgres' | 'pglite',
  logger: Logger,
  now: () => Date,
): RateLimiter {
  if (config.redisUrl !== null) {
    const redis = createRedisLimiter({ config: config.rateLimits, url: config.redisUrl, logger })
    let ready: RateLimiter | null = null
    void redis.then((limiter) => (ready = limiter))
    return {
      take: async (name, key) => (await redis).take(name, key),
      blocked: (name, key) => ready?.blocked(name, key) ?? null,
      close: async () => (await redis).close(),
    }
  }
  return createLocalLimiter({
    config: config.rateLimits,
    now: () => now().getTime(),
    logger,
    ...(databaseKind === 'postgres'
      ? {
          shared: {
            add: (instance, hits) => addCounts(db, instance, hits, INSTANCE_LIVE_MS),
            prune: (before) => pruneCounts(db, before),
          },
        }
      : {}),
  })
}

/** The use cases' deps over an open, migrated database: one assembly for the service and tests. */
export function createDeps(
  config: Config,
  db: Db,
  logger: Logger,
  options: DepsOptions = {},
): OwnedDeps {
  const sealer = sealerFor(config, logger)
  const now = options.now ?? (() => new Date())
  const kind = options.databaseKind ?? config.database.kind
  const rateLimits = rateLimiterFor(config, db, kind, logger, now)
  const { events, invalidation } = options.cluster ?? singleProcess()
  const webhookWake = createWebhookWake()
  return {
    db,
    config,
    sealer,
    logger,
    now,
    events: ringingOnPublish(events, webhookWake),
    invalidation,
    caches: {
      apiKeys: createApiKeyCache(invalidation),
      tenants: createTenantCache(invalidation),
      integrations: createIntegrationCache(invalidation),
    },
    webhookWake,
    provider: createProviderGateway({ allowHosts: config.outboundAllowHosts, ...options.outbound }),
    rateLimits,
  }
}

export interface Runtime {
  readonly database: DatabaseHandle
  readonly deps: OwnedDeps
  readonly lock: OwnerLock | null
  readonly cluster: Cluster
  close(): Promise<void>
}

/**
 * Opens and migrates the database. For the embedded database this takes DATA_DIR's owner lock
 * first; when another live process owns it, returns that owner instead of opening anything.
 * `listen` (the service): on PostgreSQL, hear what other instances change (cluster.ts).
 */
export async function openRuntime(
  config: Config,
  logger: Logger,
  options: { readonly listen?: boolean } = {},
): Promise<Runtime | { owner: OwnerInfo }> {
  let lock: OwnerLock | null = null
  if (config.database.kind === 'pglite') {
    makeDataDirPrivate(config.dataDir)
    const taken = acquireOwnerLock(config.dataDir)
    if ('owner' in taken) return { owner: taken.owner }
    lock = taken.lock
  }
  try {
    // A first start spends seconds creating the embedded database: say so instead of going quiet.
    const creating =
      config.database.kind === 'pglite' &&
      !existsSync(path.join(config.database.dataDir, 'PG_VERSION'))
    if (creating) {
      logger.info(
        { dataDir: config.dataDir },
        'creating the embedded database (first start only; takes a few seconds)',
      )
    }
    const database = openDatabase(config.database)
    try {
      await migrateToLatest(database.db)
      if (creating) logger.info('embedded database created')
    } catch (error) {
      await database.close()
      throw error
    }
    let cluster: Cluster = singleProcess()
    if (options.listen && config.database.kind === 'postgres') {
      const { url, listenUrl } = config.database
      try {
        cluster = await listenToDatabase({ db: database.db, url: listenUrl, logger })
      } catch (error) {
        await database.close()
        const variable = listenUrl === url ? 'DATABASE_URL' : 'DATABASE_LISTEN_URL'
        const reason = error instanceof Error ? error.message : String(error)
        throw new Error(`could not LISTEN through ${variable}: ${reason}`, { cause: error })
      }
    }
    const deps = createDeps(config, database.db, logger, {
      cluster,
      databaseKind: database.kind,
    })
    return {
      database,
      deps,
      lock,
      cluster,
      async close() {
        await deps.rateLimits.close()
        await deps.provider.close()
        await cluster.close()
        await database.close()
        lock?.release()
      },
    }
  } catch (error) {
    lock?.release()
    throw error
  }
}
