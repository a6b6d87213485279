import type { DatabaseHandle } from '../db/database.ts'
import { json, type Route } from './routes.ts'

/** `/healthz`: the process is alive. `/readyz`: the database answers (503 while it does not). */
export function healthRoutes(
  database: Pick<DatabaseHandle, 'ping'>,
  isClosing: () => boolean,
): Route[] {
  return [
    { methods: ['GET', 'HEAD'], path: '/healthz', handler: () => json({ status: 'ok' }) },
    {
      methods: ['GET', 'HEAD'],
      path: '/readyz',
      handler: async () => {
        if (isClosing()) return json({ status: 'shutting down' }, 503)
        try {
          await database.ping(2_000)
          return json({ status: 'ready', database: 'ok' })
        } catch {
          return json({ status: 'not ready', database: 'unreachable' }, 503)
        }
      },
    },
  ]
}
