/**
 * `npm start` as operators run it: a real process on a temporary DATA_DIR (embedded PGlite) or a
 * fresh PostgreSQL database, health routes, restarts that keep the data, graceful SIGTERM, the
 * single-owner rule of DATA_DIR, and readiness while the database is unreachable.
 */
import { existsSync, readFileSync } from 'node:fs'
import { spawn } from 'node:child_process'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../src/runtime/app.ts'
import { readOwner } from '../src/runtime/owner-lock.ts'
import { createTestApp, type TestApp } from './helpers/test-app.ts'
import {
  BUILD_ARGS,
  childEnv,
  cli,
  createPgDatabase,
  ROOT,
  run,
  SERVICE_ARGS,
  graphql,
  killLeftovers,
  startExpectingFailure,
  startServiceProcess,
  tempDataDir,
  type ServiceProcess,
  type TempDir,
} from './helpers/spawn.ts'
import { TEST_DATABASE_URL } from './helpers/test-db.ts'

const VIEWER = '{ viewer { role tenant { slug } } }'

afterAll(killLeftovers)

async function expectHealthy(service: ServiceProcess): Promise<void> {
  const healthz = await fetch(`${service.url}/healthz`)
  expect(healthz.status).toBe(200)
  expect(await healthz.json()).toEqual({ status: 'ok' })
  const readyz = await fetch(`${service.url}/readyz`)
  expect(readyz.status).toBe(200)
  expect(await readyz.json()).toMatchObject({ status: 'ready' })
}

function parseOne<T>(stdout: string): T {
  const lines = stdout.split('\n').filter(Boolean)
  expect(lines).toHaveLength(1)
  return JSON.parse(lines[0]!) as T
}

describe('npm start', () => {
  it('builds the bundle and then runs it as node itself (what the tests and the bench start)', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>
    }
    expect(pkg.scripts.start).toBe(
      `node ${BUILD_ARGS.join(' ')} && exec node ${SERVICE_ARGS.join(' ')}`,
    )
  })

  it('builds without a word on stdout or stderr (the service log stays one JSON object a line)', async () => {
    const result = await run(process.execPath, [...BUILD_ARGS], { env: {} })
    expect(result.code).toBe(0)
    expect(result.stdout + result.stderr).toBe('')
  })
})

describe('npm start on the embedded database (DATA_DIR)', () => {
  let data: TempDir
  let env: Record<string, string>
  beforeAll(() => {
    data = tempDataDir()
    env = { DATA_DIR: data.dir }
  })
  afterAll(() => data.remove())

  let service: ServiceProcess
  let adminKey: string
  let agentKey: string

  it('serves /healthz and /readyz once it logs "listening"', async () => {
    service = await startServiceProcess(env)
    expect(service.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(service.url).not.toBe('http://127.0.0.1:0')
    await expectHealthy(service)
    expect(service.logs().find((l) => l.msg === 'listening')).toMatchObject({ database: 'pglite' })
    // Outside production without ENCRYPTION_KEY, a development key is generated, with a warning.
    expect(
      service.logs().some((l) => l.level === 40 && /ENCRYPTION_KEY is not set/.test(l.msg)),
    ).toBe(true)
    expect(existsSync(path.join(data.dir, 'encryption.key'))).toBe(true)
    // The first start says it is creating the database before the seconds that takes.
    const messages = service.logs().map((l) => l.msg)
    const creating = messages.findIndex((m) => m.startsWith('creating the embedded database'))
    expect(creating).toBeGreaterThanOrEqual(0)
    expect(creating).toBeLessThan(messages.indexOf('embedded database created'))
    expect(messages.indexOf('embedded database created')).toBeLessThan(
      messages.indexOf('listening'),
    )
  })

  it('owns DATA_DIR: a second service on it refuses to start and names DATA_DIR', async () => {
    const second = await startExpectingFailure(env)
    expect(second.code).not.toBe(0)
    expect(second.code).not.toBeNull()
    expect(second.stderr).toContain('DATA_DIR')
    expect(second.stderr).toContain(data.dir)
    expect(second.stderr).toContain(String(service.pid))
    expect(readOwner(data.dir)?.pid).toBe(service.pid)
    await expectHealthy(service)
  })

  it('lets the CLI hand its command to the running service, whose API then accepts the key', async () => {
    const result = await cli(['tenant', 'create', 'acme'], env)
    expect(result.code, result.stderr).toBe(0)
    const created = parseOne<{ tenant: { slug: string }; apiKey: string }>(result.stdout)
    expect(created.tenant.slug).toBe('acme')
    adminKey = created.apiKey
    // The CLI never opened the database: the lock still names the service, with its socket.
    const owner = readOwner(data.dir)
    expect(owner?.pid).toBe(service.pid)
    expect(owner?.socket).toBeTruthy()
    const viewer = await graphql(service.url, adminKey, VIEWER)
    expect(viewer).toEqual({ data: { viewer: { role: 'ADMIN', tenant: { slug: 'acme' } } } })
  })

  it('stops gracefully on SIGTERM: exit 0, "stopped" logged, lock and socket removed', async () => {
    const socket = readOwner(data.dir)!.socket!
    const exit = await service.stop('SIGTERM')
    expect(exit).toEqual({ code: 0, signal: null })
    // (pino writes asynchronously: the two lines may come out in either order)
    const messages = service.logs().map((l) => l.msg)
    expect(messages).toContain('shutting down')
    expect(messages).toContain('stopped')
    expect(existsSync(path.join(data.dir, 'owner.lock'))).toBe(false)
    expect(existsSync(socket)).toBe(false)
    expect(service.stderr()).toBe('')
  })

  it('lets the CLI open the database itself while no service runs', async () => {
    const result = await cli(['apikey', 'create', 'acme', '--role', 'AGENT'], env)
    expect(result.code, result.stderr).toBe(0)
    const created = parseOne<{ apiKey: string; role: string }>(result.stdout)
    expect(created.role).toBe('AGENT')
    agentKey = created.apiKey
    expect(existsSync(path.join(data.dir, 'owner.lock'))).toBe(false)
  })

  it('keeps every tenant and key across a restart (`npm start` this time)', async () => {
    const key = readFileSync(path.join(data.dir, 'encryption.key'), 'utf8')
    service = await startServiceProcess(env, { via: 'npm' })
    try {
      await expectHealthy(service)
      expect(await graphql(service.url, adminKey, VIEWER)).toEqual({
        data: { viewer: { role: 'ADMIN', tenant: { slug: 'acme' } } },
      })
      expect(await graphql(service.url, agentKey, VIEWER)).toEqual({
        data: { viewer: { role: 'AGENT', tenant: { slug: 'acme' } } },
      })
      // The development key is reused, not regenerated (sealed secrets stay readable).
      expect(readFileSync(path.join(data.dir, 'encryption.key'), 'utf8')).toBe(key)
      // Nothing to create this time.
      expect(service.logs().some((l) => l.msg.startsWith('creating the embedded'))).toBe(false)
    } finally {
      // npm passes the signal on (the script `exec`s node), and exits with the service's code.
      expect(await service.stop('SIGTERM')).toEqual({ code: 0, signal: null })
      expect(existsSync(path.join(data.dir, 'owner.lock'))).toBe(false)
    }
  })
})

describe.skipIf(!TEST_DATABASE_URL)('npm start on PostgreSQL (DATABASE_URL)', () => {
  let database: { url: string; drop(): Promise<void> }
  let data: TempDir
  afterAll(async () => {
    killLeftovers()
    await database?.drop()
    data?.remove()
  })

  it('migrates a fresh database, serves, and keeps the data across a restart', async () => {
    data = tempDataDir()
    database = await createPgDatabase(TEST_DATABASE_URL!)
    // DATA_DIR is set but unused for the database; ENCRYPTION_KEY as in production.
    const env = { DATABASE_URL: database.url, DATA_DIR: data.dir, ENCRYPTION_KEY: 'e'.repeat(44) }
    let service = await startServiceProcess(env)
    let adminKey: string
    try {
      await expectHealthy(service)
      expect(service.logs().find((l) => l.msg === 'listening')).toMatchObject({
        database: 'postgres',
      })
      // With PostgreSQL the CLI works on the database directly, beside the running service.
      const result = await cli(['tenant', 'create', 'acme-pg'], env)
      expect(result.code, result.stderr).toBe(0)
      adminKey = parseOne<{ apiKey: string }>(result.stdout).apiKey
      expect(await graphql(service.url, adminKey, VIEWER)).toEqual({
        data: { viewer: { role: 'ADMIN', tenant: { slug: 'acme-pg' } } },
      })
    } finally {
      const exit = await service.stop('SIGTERM')
      expect(exit).toEqual({ code: 0, signal: null })
    }
    expect(service.logs().map((l) => l.msg)).toContain('stopped')
    expect(existsSync(path.join(data.dir, 'owner.lock'))).toBe(false)

    service = await startServiceProcess(env)
    try {
      await expectHealthy(service)
      expect(await graphql(service.url, adminKey, VIEWER)).toEqual({
        data: { viewer: { role: 'ADMIN', tenant: { slug: 'acme-pg' } } },
      })
    } finally {
      // SIGINT (Ctrl-C) stops it as gracefully as SIGTERM.
      expect(await service.stop('SIGINT')).toEqual({ code: 0, signal: null })
    }
  })
})

describe('Ctrl-C in a terminal', () => {
  it('reaches npm and the service together (the whole process group), twice: "stopped", npm exits 0', async () => {
    const data = tempDataDir()
    // npm start exactly as typed in a terminal: npm, its shell and node share one process group.
    const npm = spawn('npm', ['start'], {
      cwd: ROOT,
      env: childEnv({ DATA_DIR: data.dir, PORT: '0', HOST: '127.0.0.1' }),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    npm.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
    npm.stderr!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      npm.once('close', (code, signal) => resolve({ code, signal })),
    )
    try {
      const until = Date.now() + 60_000
      while (!out.includes('"msg":"listening"')) {
        if (Date.now() > until) throw new Error(`npm start did not listen: ${out}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      // What a terminal does on Ctrl-C, and a second, impatient one right after it.
      process.kill(-npm.pid!, 'SIGINT')
      await new Promise((r) => setTimeout(r, 20))
      process.kill(-npm.pid!, 'SIGINT')
      expect(await exited).toEqual({ code: 0, signal: null })
      const messages = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => (JSON.parse(l) as { msg: string }).msg)
      expect(messages).toContain('shutting down')
      expect(messages.at(-1)).toBe('stopped')
    } finally {
      try {
        process.kill(-npm.pid!, 'SIGKILL')
      } catch {
        // already gone
      }
      data.remove()
    }
  })
})

describe('/readyz', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp()
  })
  afterAll(() => t.close())

  it('answers 503 while the database is unreachable, and 200 again once it answers', async () => {
    let reachable = false
    const app = createApp(t.deps, {
      ping: async () => {
        if (!reachable) throw new Error('connect ECONNREFUSED 127.0.0.1:5432')
      },
    })
    try {
      const down = await app.fetch(new Request('http://localhost/readyz'))
      expect(down.status).toBe(503)
      expect(await down.json()).toEqual({ status: 'not ready', database: 'unreachable' })
      // Liveness does not depend on the database.
      expect((await app.fetch(new Request('http://localhost/healthz'))).status).toBe(200)
      reachable = true
      expect((await app.fetch(new Request('http://localhost/readyz'))).status).toBe(200)
    } finally {
      await app.close()
    }
  })

  it('answers 503 once shutdown has begun', async () => {
    expect((await t.fetch('/readyz')).status).toBe(200)
    await t.app.close()
    const response = await t.fetch('/readyz')
    expect(response.status).toBe(503)
    expect(await response.json()).toEqual({ status: 'shutting down' })
  })
})
