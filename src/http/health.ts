import type { DatabaseHandle } from '../db/database.ts'
import { json, type Route } from './routes.ts'

/** What readiness depends on: the database, and on PostgreSQL the listening connection. */
export type Readiness = Pick<DatabaseHandle, 'ping'> & {
  /** Null: nothing to listen to (embedded database, tests); false: reconnecting. */
  readonly listening?: () => boolean | null
}

/**
 * `/healthz`: the process is alive. `/readyz`: the database answers and, with several instances,
 * this one hears the others (503 while either is not so).
 */
export function healthRoutes(database: Readiness, isClosing: () => boolean): Route[] {
  return [
    { methods: ['GET', 'HEAD'], path: '/healthz', handler: () => json({ status: 'ok' }) },
    {
      methods: ['GET', 'HEAD'],
      path: '/readyz',
      handler: async () => {
        if (isClosing()) return json({ status: 'shutting down' }, 503)
        try {
          await database.ping(2_000)
        } catch {
          return json({ status: 'not ready', database: 'unreachable' }, 503)
        }
        if (database.listening?.() === false) {
          return json({ status: 'not ready', database: 'ok', listener: 'reconnecting' }, 503)
        }
        return json({ status: 'ready', database: 'ok' })
      },
    },
  ]
}
