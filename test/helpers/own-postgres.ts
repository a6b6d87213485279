/**
 * A PostgreSQL server of a test's own, to stop and start at will: initdb into a temporary
 * folder, its own port on 127.0.0.1, its socket in that folder. The shared server the other tests
 * use is never touched. initdb and postgres refuse to run as root, so as root (CI) they run as
 * the `postgres` user, who then owns the folder.
 */
import { execFile, execFileSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { freePort } from './spawn.ts'

const run = promisify(execFile)

/** The newest installed PostgreSQL's bin folder with initdb and pg_ctl, or null. */
export function postgresBin(): string | null {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return null
  const versions = readdirSync(root).sort((x, y) => Number(y) - Number(x))
  for (const version of versions) {
    const bin = path.join(root, version, 'bin')
    if (existsSync(path.join(bin, 'initdb')) && existsSync(path.join(bin, 'pg_ctl'))) return bin
  }
  return null
}

/** Why the tests that need their own server cannot run here, or null when they can. */
export function ownPostgresUnavailable(): string | null {
  if (!postgresBin())
    return 'no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql'
  if (process.getuid?.() === 0) {
    try {
      execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' })
    } catch {
      return 'running as root without a postgres user to run initdb as'
    }
  }
  return null
}

export interface OwnPostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  readonly url: string
  stop(): Promise<void>
  start(): Promise<void>
  /** Stops the server (if it runs) and removes its folder. */
  destroy(): Promise<void>
}

/** `settings`: extra server settings (`name=value`), e.g. shared_preload_libraries. */
export async function startOwnPostgres(settings: readonly string[] = []): Promise<OwnPostgres> {
  const bin = postgresBin()
  if (!bin) throw new Error('no PostgreSQL server binaries')
  const asRoot = process.getuid?.() === 0
  const dir = mkdtempSync(path.join(os.tmpdir(), 'euo-pg-'))
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
    chownSync(dir, uid, gid)
  }
  const data = path.join(dir, 'data')
  const port = await freePort()
  const pg = (tool: string, args: string[]) =>
    asRoot
      ? run('runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args])
      : run(path.join(bin, tool), args)
  await pg('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync'])
  const options = [
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
    ...settings.map((setting) => `-c ${setting}`),
  ].join(' ')
  const start = async () => {
    await pg('pg_ctl', ['-D', data, '-l', path.join(dir, 'log'), '-o', options, '-w', 'start'])
  }
  const stop = async () => {
    await pg('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop'])
  }
  await start()
  let running = true
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      await stop()
      running = false
    },
    async start() {
      await start()
      running = true
    },
    async destroy() {
      if (running) await stop().catch(() => {})
      running = false
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
