/**
 * What makes instances on one database one service: every instance tells the others of the
 * sessions it changed (db/notifier.ts) and hears, through its one listening connection
 * (db/listener.ts), what they and the database (changes to rows that caches hold) announce. On
 * the embedded database one process owns the data, so events and invalidations stay in-process.
 *
 * Session notices cost every instance a statement and the database its notification queue, and
 * with one instance nobody hears them: each instance counts the listening connections once a
 * second (PEERS_CHECK_MS) and sends notices only while another one is open. An instance that
 * starts listening (or listens again after losing its connection) says so on the channel
 * ('hello'), and whoever hears it sends notices from then on; what they changed before they
 * heard it, the new listener reads by reading its subscribed sessions again CATCH_UP_MS later.
 */
import { randomUUID } from 'node:crypto'
import type { Db } from '../db/database.ts'
import { countListeners, startListener, type Listener } from '../db/listener.ts'
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

/** How often an instance counts the listening connections of the others (see the header). */
export const PEERS_CHECK_MS = 1_000
/** Long enough for every other instance to have heard a hello and sent what it changed since. */
export const CATCH_UP_MS = 500

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
  let othersListening = true
  // Bumped by every hello: a count that was under way when one came is out of date.
  let hellos = 0
  const countPeers = async () => {
    const before = hellos
    try {
      const open = await countListeners(options.db)
      if (hellos !== before) return
      // Only where this instance sees its own listening connection can it trust the count.
      othersListening = listener?.up === true && open >= 1 ? open > 1 : true
    } catch {
      othersListening = true
    }
  }
  const peers = setInterval(() => void countPeers(), PEERS_CHECK_MS)
  peers.unref()
  const notifier = createNotifier({
    db: options.db,
    channel: () => listener?.channel ?? '',
    origin,
    logger: options.logger,
    othersListening: () => othersListening,
  })
  const catchUps = new Set<NodeJS.Timeout>()
  /** Reads subscribed sessions again once other instances have surely counted this one. */
  const catchUpLater = () => {
    const timer = setTimeout(() => {
      catchUps.delete(timer)
      events.wakeAll()
    }, CATCH_UP_MS)
    timer.unref()
    catchUps.add(timer)
  }
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
        if (topic === 'hello') {
          hellos += 1
          othersListening = true
        } else if (topic === 'session') for (const id of ids) events.wake(id)
        else if ((CACHE_TOPICS as readonly string[]).includes(topic)) {
          for (const id of ids) invalidation.changed(topic as CacheTopic, id)
        }
      },
      onDown: () => invalidation.suspended(),
      onUp() {
        // The first time, from inside startListener: `listener` (and so the channel) is not set
        // yet, and the hello goes out right after it is.
        if (listener) void notifier.hello().then(catchUpLater)
        void countPeers()
        if (!everUp) {
          everUp = true
          return
        }
        invalidation.resumed()
        events.wakeAll()
      },
    },
  })
  if (listener.up) void notifier.hello().then(catchUpLater)
  return {
    events,
    invalidation,
    listening: () => listener?.up ?? false,
    async close() {
      clearInterval(peers)
      for (const timer of catchUps) clearTimeout(timer)
      await notifier.drain()
      await listener?.close()
      listener = undefined
    },
  }
}
