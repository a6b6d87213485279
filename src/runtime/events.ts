/**
 * Session change notifications for the `authSessionUpdated` subscription. Only the session id
 * travels (subscribers read the session again, tenant-scoped), so a cross-instance transport,
 * e.g. PostgreSQL LISTEN/NOTIFY as the pubsub's event target, can carry it unchanged.
 */
import { createPubSub } from 'graphql-yoga'

export interface SessionEvents {
  publish(sessionId: string): void
  subscribe(sessionId: string): AsyncIterable<string> & AsyncIterator<string>
}

export function createSessionEvents(): SessionEvents {
  const pubsub = createPubSub<{ 'auth-session': [sessionId: string, payload: string] }>()
  return {
    publish: (sessionId) => pubsub.publish('auth-session', sessionId, sessionId),
    subscribe: (sessionId) =>
      pubsub.subscribe('auth-session', sessionId) as AsyncIterable<string> & AsyncIterator<string>,
  }
}
