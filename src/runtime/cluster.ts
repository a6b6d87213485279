/**
 * What makes instances on one database one service: every instance tells the others of the
 * sessions it changed (db/notifier.ts) and hears, through its one listening connection
 * (db/listener.ts), what they and the database (changes to rows that caches hold) announce. On
 * the embedded database one process owns the data, so events and invalidations stay in-process.
 */
import { randomUUID } from 'node:crypto'
import type { Db } from '../db/database.ts'
import { startListener, type Listener } from '../db/listener.ts'
import { createNotifier } from '../db/notifier.ts'
import type { Logger } from '../logger.ts'
import {
  CACHE_TOPICS,
  createInvalidation,
  createSessionEvents,
  type CacheTopic,
  type Invalidation,
  type SessionEvents,
} from './events.ts'

export interface Cluster {
  readonly events: SessionEvents
  readonly invalidation: Invalidation
  /** Null on a single process (nothing to listen to); else whether the instance listens now. */
  listening(): boolean | null
  close(): Promise<void>
}

/** One process: the code's own notifications are all there is. */
export function singleProcess(): Cluster {
  return {
    events: createSessionEvents(),
    invalidation: createInvalidation(),
    listening: () => null,
    close: async () => {},
  }
}

/**
 * Listens on `url` (DATABASE_LISTEN_URL, else DATABASE_URL). After the connection was lost and is
 * back, caches are dropped and every open subscription reads its session again, so a change
 * made while this instance could not hear is not missed. Rejects when the first attempt fails.
 */
export async function listenToDatabase(options: {
  /** The pool, for sending notices. */
  readonly db: Db
  /** Where to LISTEN. */
  readonly url: string
  readonly schema?: string
  readonly logger: Logger
  readonly pingIntervalMs?: number
}): Promise<Cluster> {
  const origin = randomUUID()
  let listener: Listener | undefined
  const notifier = createNotifier({
    db: options.db,
    channel: () => listener?.channel ?? '',
    origin,
    logger: options.logger,
  })
  const events = createSessionEvents((id) => notifier.announce(id))
  const invalidation = createInvalidation()
  let everUp = false
  listener = await startListener({
    url: options.url,
    ...(options.schema ? { schema: options.schema } : {}),
    logger: options.logger,
    ...(options.pingIntervalMs ? { pingIntervalMs: options.pingIntervalMs } : {}),
    handlers: {
      onNotice({ topic, ids, origin: from }) {
        if (from === origin) return // this instance's own subscribers were woken already
        if (topic === 'session') for (const id of ids) events.wake(id)
        else if ((CACHE_TOPICS as readonly string[]).includes(topic)) {
          for (const id of ids) invalidation.changed(topic as CacheTopic, id)
        }
      },
      onDown: () => invalidation.suspended(),
      onUp() {
        if (!everUp) {
          everUp = true
          return
        }
        invalidation.resumed()
        events.wakeAll()
      },
    },
  })
  return {
    events,
    invalidation,
    listening: () => listener?.up ?? false,
    async close() {
      await notifier.drain()
      await listener?.close()
      listener = undefined
    },
  }
}
