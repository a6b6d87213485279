/**
 * Wiring shared by `npm start`, `npm run migrate` and the CLI: open the database (taking the
 * embedded database's owner lock), migrate, build the sealer and the deps.
 */
import type { Config } from '../config.ts'
import { createSealer, loadOrCreateDevKey, type Sealer } from '../crypto/sealer.ts'
import { migrateToLatest, openDatabase, type DatabaseHandle, type Db } from '../db/database.ts'
import { makeDataDirPrivate } from './data-dir.ts'
import { acquireOwnerLock, type OwnerInfo, type OwnerLock } from './owner-lock.ts'
import { createSessionEvents } from './events.ts'
import { createWebhookWake, ringingOnPublish, type WebhookWake } from './webhook-worker.ts'
import type { Logger } from '../logger.ts'
import { createProviderGateway } from '../oauth/gateway.ts'
import type { OutboundOptions } from '../oauth/outbound.ts'
import type { Deps, ProviderGateway } from '../services/deps.ts'

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
}

/** Deps whose provider gateway holds connections: its owner closes it. */
export interface OwnedDeps extends Deps {
  readonly provider: ProviderGateway & { close(): Promise<void> }
  /** Rung after every published session change: the webhook worker then looks at once. */
  readonly webhookWake: WebhookWake
}

/** The use cases' deps over an open, migrated database: one assembly for the service and tests. */
export function createDeps(
  config: Config,
  db: Db,
  logger: Logger,
  options: DepsOptions = {},
): OwnedDeps {
  const sealer = sealerFor(config, logger)
  const webhookWake = createWebhookWake()
  return {
    db,
    config,
    sealer,
    logger,
    now: options.now ?? (() => new Date()),
    events: ringingOnPublish(createSessionEvents(), webhookWake),
    webhookWake,
    provider: createProviderGateway({ allowHosts: config.outboundAllowHosts, ...options.outbound }),
  }
}

export interface Runtime {
  readonly database: DatabaseHandle
  readonly deps: OwnedDeps
  readonly lock: OwnerLock | null
  close(): Promise<void>
}

/**
 * Opens and migrates the database. For the embedded database this takes DATA_DIR's owner lock
 * first; when another live process owns it, returns that owner instead of opening anything.
 */
export async function openRuntime(
  config: Config,
  logger: Logger,
): Promise<Runtime | { owner: OwnerInfo }> {
  let lock: OwnerLock | null = null
  if (config.database.kind === 'pglite') {
    makeDataDirPrivate(config.dataDir)
    const taken = acquireOwnerLock(config.dataDir)
    if ('owner' in taken) return { owner: taken.owner }
    lock = taken.lock
  }
  try {
    const database = openDatabase(config.database)
    try {
      await migrateToLatest(database.db)
    } catch (error) {
      await database.close()
      throw error
    }
    const deps = createDeps(config, database.db, logger)
    return {
      database,
      deps,
      lock,
      async close() {
        await deps.provider.close()
        await database.close()
        lock?.release()
      },
    }
  } catch (error) {
    lock?.release()
    throw error
  }
}
