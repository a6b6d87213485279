/**
 * Session notices only while another instance listens: an instance alone on its database sends
 * none (nobody would hear them), and a second instance's hello makes it send them at once, so the
 * second one's subscribers hear of changes from then on.
 */
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDatabase, type DatabaseHandle } from '../../src/db/database.ts'
import {
  CATCH_UP_MS,
  listenToDatabase,
  PEERS_CHECK_MS,
  type Cluster,
} from '../../src/runtime/cluster.ts'
import { createPgDatabase } from '../helpers/spawn.ts'
import { TEST_DATABASE_URL } from '../helpers/test-db.ts'

const logger = pino({ level: 'silent' })
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.skipIf(!TEST_DATABASE_URL)(
  'session notices with one instance and then two (PostgreSQL only)',
  () => {
    let database: { url: string; drop(): Promise<void> }
    let handle: DatabaseHandle
    let spy: pg.Client
    const sessionNotices: string[] = []
    let hellos = 0
    const clusters: Cluster[] = []

    beforeAll(async () => {
      // A database of its own: listeners are counted per database.
      database = await createPgDatabase(TEST_DATABASE_URL!)
      handle = openDatabase({ kind: 'postgres', url: database.url })
      // Hears the channel without being counted as an instance (another application_name).
      spy = new pg.Client({ connectionString: database.url, application_name: 'notice-spy' })
      await spy.connect()
      await spy.query('listen "euo:public"')
      spy.on('notification', (message) => {
        const notice = JSON.parse(message.payload ?? '{}') as { t?: string; ids?: string[] }
        if (notice.t === 'session') sessionNotices.push(...(notice.ids ?? []))
        if (notice.t === 'hello') hellos += 1
      })
    })
    afterAll(async () => {
      for (const cluster of clusters) await cluster.close()
      await spy?.end()
      await handle?.close()
      await database?.drop()
    })

    const instance = async () => {
      const cluster = await listenToDatabase({ db: handle.db, url: database.url, logger })
      clusters.push(cluster)
      return cluster
    }

    it('sends none while alone, and sends them once a second instance says hello', async () => {
      const alone = await instance()
      // Once it has counted the listeners: itself only.
      await sleep(PEERS_CHECK_MS + 300)
      const unheard = randomUUID()
      alone.events.publish(unheard)
      await sleep(300)
      expect(sessionNotices).not.toContain(unheard)

      const before = hellos
      const second = await instance()
      const id = randomUUID()
      const updates = second.events.subscribe(id)
      const woken = updates.next()
      // Once the hello is out (the first instance hears it when the spy does), and well before the
      // first instance counts again: the hello alone must have changed its mind.
      while (hellos === before) await sleep(5)
      await sleep(50)
      const published = Date.now()
      alone.events.publish(id)
      expect(await woken).toEqual({ done: false, value: id })
      // Woken by the notice, not by the second instance's catch-up read.
      expect(Date.now() - published).toBeLessThan(CATCH_UP_MS - 100)
      // The spy's connection hears the same notice, in its own time.
      for (let i = 0; i < 40 && !sessionNotices.includes(id); i += 1) await sleep(10)
      expect(sessionNotices).toContain(id)
      await updates.return?.()
    })
  },
)
