/**
 * The one connection of an instance that LISTENs for what is announced on the channel
 * `euo:<schema>`: by triggers (migration 0013) and by other instances (notifier.ts). It is a connection of
 * its own, outside the pool, because LISTEN holds a session: a transaction-pooling proxy (PgBouncer)
 * in front of DATABASE_URL would drop it, hence DATABASE_LISTEN_URL.
 *
 * It never gives up: when the connection is lost (the database restarts, the network breaks, a
 * ping goes unanswered) it says so (`onDown`), tries again with growing pauses, and says so again
 * once it listens (`onUp`), so that its owner can make up for what it may have missed.
 */
import { sql } from 'kysely'
import pg from 'pg'
import type { Logger } from '../logger.ts'
import type { Db } from './database.ts'

/** The application_name of listening connections, in pg_stat_activity. */
export const LISTENER_APPLICATION_NAME = 'euo-listener'

/**
 * How many listening connections of instances of this service are open on the database now
 * (pg_stat_activity shows every session's application_name to every role). Several schemas of one
 * database count together, which only ever makes an instance send notices nobody needed.
 */
export async function countListeners(db: Db): Promise<number> {
  const result = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
    where application_name = ${LISTENER_APPLICATION_NAME} and datname = current_database()`.execute(
    db,
  )
  return result.rows[0]?.n ?? 0
}

/**
 * What one notice says: rows of `topic` changed. From a trigger (migration 0013) one id and no
 * origin; from an instance (notifier.ts) a batch of ids and the instance's origin.
 */
export interface Notice {
  readonly topic: string
  readonly ids: readonly string[]
  readonly origin: string | null
}

export interface ListenerHandlers {
  onNotice(notice: Notice): void
  /** Listening (again, after a loss): notices sent meanwhile were missed. */
  onUp(): void
  onDown(): void
}

export interface ListenerOptions {
  readonly url: string
  /** The schema whose channel to listen on; default: the connection's current schema. */
  readonly schema?: string
  readonly logger: Logger
  readonly handlers: ListenerHandlers
  /** How often the connection is checked with a query, and how long that query may take. */
  readonly pingIntervalMs?: number
  readonly retryMinMs?: number
  readonly retryMaxMs?: number
}

export interface Listener {
  /** Whether the connection listens now. */
  readonly up: boolean
  readonly channel: string
  close(): Promise<void>
}

/** Connects and listens; rejects if the first attempt fails (a wrong URL should stop start-up). */
export async function startListener(options: ListenerOptions): Promise<Listener> {
  const { logger, handlers } = options
  const pingIntervalMs = options.pingIntervalMs ?? 5_000
  const retryMinMs = options.retryMinMs ?? 200
  const retryMaxMs = options.retryMaxMs ?? 5_000
  let current: pg.Client | null = null
  let up = false
  let closed = false
  let channel = ''
  let retryMs = retryMinMs
  let retryTimer: NodeJS.Timeout | undefined
  let downSince: number | null = null

  const lose = (client: pg.Client, error: unknown) => {
    if (client !== current) return
    current = null
    const wasUp = up
    up = false
    client.removeAllListeners('notification')
    // Not awaited: on a dead socket the goodbye may never be answered.
    client.end().catch(() => {})
    if (closed) return
    if (wasUp) {
      downSince = Date.now()
      logger.warn({ err: error }, 'the database listening connection was lost; reconnecting')
      handlers.onDown()
    }
    // A failed attempt has scheduled the next one through `lose` already.
    retryTimer = setTimeout(() => attempt().catch(() => {}), retryMs)
    retryMs = Math.min(retryMs * 2, retryMaxMs)
  }

  const attempt = async (): Promise<void> => {
    const client = new pg.Client({
      connectionString: options.url,
      keepAlive: true,
      connectionTimeoutMillis: 5_000,
      // So that operators (and tests) can tell it from the pool's connections.
      application_name: LISTENER_APPLICATION_NAME,
      ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
    })
    current = client
    // Every error of this client is a loss of the connection; none may reach the process.
    client.on('error', (error) => lose(client, error))
    client.on('end', () => lose(client, new Error('the listening connection was closed')))
    client.on('notification', (message) => {
      if (message.channel !== channel || message.payload === undefined) return
      const notice = parseNotice(message.payload)
      if (notice) handlers.onNotice(notice)
      else logger.warn({ payload: message.payload.slice(0, 200) }, 'unreadable database notice')
    })
    try {
      await client.connect()
      const result = await client.query<{ schema: string }>('select current_schema() as schema')
      channel = `euo:${result.rows[0]?.schema ?? 'public'}`
      await client.query(`listen ${client.escapeIdentifier(channel)}`)
    } catch (error) {
      lose(client, error)
      throw error
    }
    if (client !== current) return // lost while it was being set up
    up = true
    retryMs = retryMinMs
    if (downSince !== null) {
      logger.info({ downMs: Date.now() - downSince }, 'the database listening connection is back')
      downSince = null
    }
    handlers.onUp()
  }

  const ping = setInterval(() => {
    const client = current
    if (!client || !up) return
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error('the database did not answer a ping')),
        pingIntervalMs,
      )
    })
    Promise.race([client.query('select 1'), timeout])
      .catch((error: unknown) => lose(client, error))
      .finally(() => clearTimeout(timer))
  }, pingIntervalMs)
  ping.unref()

  try {
    await attempt()
  } catch (error) {
    closed = true
    clearTimeout(retryTimer)
    clearInterval(ping)
    throw error
  }
  // A retry after a failed attempt only ever comes from `lose`, which schedules the next one.
  return {
    get up() {
      return up
    },
    get channel() {
      return channel
    },
    async close() {
      closed = true
      clearTimeout(retryTimer)
      clearInterval(ping)
      const client = current
      current = null
      up = false
      if (client) await client.end().catch(() => {})
    },
  }
}

function parseNotice(payload: string): Notice | null {
  try {
    const value: unknown = JSON.parse(payload)
    if (typeof value !== 'object' || value === null) return null
    const { t, id, ids, o } = value as Record<string, unknown>
    if (typeof t !== 'string') return null
    const origin = typeof o === 'string' ? o : null
    if (typeof id === 'string') return { topic: t, ids: [id], origin }
    if (Array.isArray(ids) && ids.every((i) => typeof i === 'string')) {
      return { topic: t, ids, origin }
    }
    return null
  } catch {
    return null
  }
}
