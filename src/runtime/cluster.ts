/**
 * What makes instances on one database one service: every instance hears, through its one
 * listening connection (db/listener.ts), what the database announces about sessions and about
 * rows that caches hold, wherever the change was made. On the embedded database one process owns
 * the data, so the same events and invalidations stay in-process.
 */
import { startListener, type Listener } from '../db/listener.ts'
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
  readonly url: string
  readonly schema?: string
  readonly logger: Logger
  readonly pingIntervalMs?: number
}): Promise<Cluster> {
  const events = createSessionEvents()
  const invalidation = createInvalidation()
  let listener: Listener | undefined
  let everUp = false
  listener = await startListener({
    url: options.url,
    ...(options.schema ? { schema: options.schema } : {}),
    logger: options.logger,
    ...(options.pingIntervalMs ? { pingIntervalMs: options.pingIntervalMs } : {}),
    handlers: {
      onNotice({ topic, id }) {
        if (topic === 'session') events.publish(id)
        else if ((CACHE_TOPICS as readonly string[]).includes(topic)) {
          invalidation.changed(topic as CacheTopic, id)
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
      await listener?.close()
      listener = undefined
    },
  }
}
