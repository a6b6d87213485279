/**
 * Change notifications: session changes for the `authSessionUpdated` subscription, and
 * invalidations for caches. Only ids travel (subscribers read the session again, tenant-scoped;
 * caches drop entries), so the same messages can come from this process's own code or from
 * another instance through the database (cluster.ts).
 */
import { createPubSub } from 'graphql-yoga'

export interface SessionEvents {
  /**
   * A session changed (call after the commit): wakes this instance's subscribers of it (they
   * read the session again) and tells the other instances.
   */
  publish(sessionId: string): void
  /** Wakes this instance's subscribers of `sessionId` only (timers, notices from elsewhere). */
  wake(sessionId: string): void
  subscribe(sessionId: string): AsyncIterable<string> & AsyncIterator<string>
  /** Wakes every open subscription: after a gap in what other instances told us. */
  wakeAll(): void
  /**
   * Ends every open subscription and any made later (shutdown): their streams complete cleanly
   * instead of being cut when the server closes its connections.
   */
  end(): void
}

/** `announce`: how other instances are told of a change (nothing: this process is all there is). */
export function createSessionEvents(announce?: (sessionId: string) => void): SessionEvents {
  const pubsub = createPubSub<{ 'auth-session': [sessionId: string, payload: string] }>()
  // Subscriptions per session id, so wakeAll knows whom to wake.
  const watched = new Map<string, number>()
  const wake = (sessionId: string) => pubsub.publish('auth-session', sessionId, sessionId)
  const finished: IteratorResult<string> = { done: true, value: undefined }
  let endAll!: () => void
  const ended = new Promise<IteratorResult<string>>((resolve) => {
    endAll = () => resolve(finished)
  })
  let ending = false
  return {
    publish(sessionId) {
      wake(sessionId)
      announce?.(sessionId)
    },
    wake,
    subscribe(sessionId) {
      const inner = pubsub.subscribe('auth-session', sessionId)[Symbol.asyncIterator]()
      watched.set(sessionId, (watched.get(sessionId) ?? 0) + 1)
      let done = false
      const release = () => {
        if (done) return
        done = true
        const left = (watched.get(sessionId) ?? 1) - 1
        if (left > 0) watched.set(sessionId, left)
        else watched.delete(sessionId)
      }
      const iterator: AsyncIterable<string> & AsyncIterator<string> = {
        [Symbol.asyncIterator]: () => iterator,
        next: () => (ending ? Promise.resolve(finished) : Promise.race([inner.next(), ended])),
        async return() {
          release()
          return (await inner.return?.()) ?? { done: true, value: undefined }
        },
        async throw(error: unknown) {
          release()
          if (inner.throw) return inner.throw(error)
          throw error
        },
      }
      return iterator
    },
    wakeAll() {
      for (const sessionId of [...watched.keys()]) wake(sessionId)
    },
    end() {
      ending = true
      endAll()
    },
  }
}

/** What caches hold rows of; the database announces changes to each (migration 0013). */
export const CACHE_TOPICS = ['api_key', 'tenant', 'integration'] as const
export type CacheTopic = (typeof CACHE_TOPICS)[number]

/**
 * How caches stay true on every instance: each registers the topics it holds rows of and is told
 * of every change to them, here or (through the database) on any instance. While this instance
 * cannot hear other instances (its listening connection is down), nothing cached may be trusted,
 * and once it hears them again everything cached is dropped: changes made meanwhile were missed.
 */
export interface Invalidation {
  /** `drop(id)` on a change to that row of `topic`; `drop(null)`: forget everything. */
  register(topics: readonly CacheTopic[], drop: (id: string | null) => void): void
  /** Whether cached values may be used now. */
  trusted(): boolean
  /** A row changed (here, or on another instance as the database says). */
  changed(topic: CacheTopic, id: string): void
  /** The listening connection went away: stop trusting caches until `resumed`. */
  suspended(): void
  /** Listening again: drop everything cached, then trust caches again. */
  resumed(): void
}

export function createInvalidation(): Invalidation {
  const caches: Array<{ topics: readonly CacheTopic[]; drop: (id: string | null) => void }> = []
  let trusted = true
  const dropAll = () => {
    for (const cache of caches) cache.drop(null)
  }
  return {
    register(topics, drop) {
      caches.push({ topics, drop })
    },
    trusted: () => trusted,
    changed(topic, id) {
      for (const cache of caches) if (cache.topics.includes(topic)) cache.drop(id)
    },
    suspended() {
      trusted = false
      dropAll()
    },
    resumed() {
      dropAll()
      trusted = true
    },
  }
}
