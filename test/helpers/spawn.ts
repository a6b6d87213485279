/**
 * Child processes for the tests that exercise the real commands (`npm start`, the CLI): run a
 * command to completion, or start the service on port 0 and find its URL in the "listening" log
 * line. Commands run as package.json runs them: the service as the bundle `npm start` builds and
 * runs, the CLI as `node --import tsx src/cli.ts`; each is one process that gets signals itself
 * (the `tsx` binary relays them to a child of its own and SIGKILLs it when the child is slow to
 * acknowledge). Each child gets its own process group so that a failed test can still end it, and
 * whatever it started, by its id.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer as createNetServer } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { CONFIG_VARIABLES } from '../../src/config.ts'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
/** `node --import tsx`: how package.json's migrate and cli scripts run TypeScript. */
export const NODE_TSX: readonly string[] = ['--import', 'tsx']
/**
 * `npm start` is `node <BUILD_ARGS> && exec node <SERVICE_ARGS>`: bundle, then run the bundle
 * (test/startup.test.ts checks package.json says exactly that).
 */
export const BUILD_ARGS: readonly string[] = ['scripts/build.mjs']
export const SERVICE_ARGS: readonly string[] = [
  '--enable-source-maps',
  '--heap-growing-percent=100',
  'dist/main.js',
]

let built: Promise<void> | undefined
/** Runs `npm start`'s build step once per test process (later calls wait for the same build). */
export function ensureBuilt(): Promise<void> {
  built ??= run(process.execPath, BUILD_ARGS, {}).then((result) => {
    if (result.code !== 0) throw new Error(`node ${BUILD_ARGS.join(' ')} failed: ${result.stderr}`)
  })
  return built
}

/** Variables of the contract (and test runners) that must not leak from the test's own env. */
const SCRUBBED = [...CONFIG_VARIABLES, 'NODE_OPTIONS']

export type Env = Record<string, string | undefined>

/** The parent's environment without the service's variables, plus `extra` (undefined unsets). */
export function childEnv(extra: Env = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const name of SCRUBBED) delete env[name]
  for (const [name, value] of Object.entries(extra)) {
    if (value === undefined) delete env[name]
    else env[name] = value
  }
  return env
}

const live = new Set<ChildProcess>()

function track(child: ChildProcess): ChildProcess {
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

/** Ends (SIGKILL, whole process group) every child a test left running. For afterAll. */
export function killLeftovers(): void {
  for (const child of live) {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  live.clear()
}

export interface Completed {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `command args` in the repository root to completion. */
export function run(
  command: string,
  args: readonly string[],
  options: { env?: Env; timeoutMs?: number } = {},
): Promise<Completed> {
  const child = track(
    spawn(command, args, {
      cwd: ROOT,
      env: childEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    }),
  )
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const timeoutMs = options.timeoutMs ?? 45_000
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid) process.kill(-child.pid, 'SIGKILL')
      reject(new Error(`${command} ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stderr}`))
    }, timeoutMs)
    child.once('error', reject)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** `node --import tsx <script> ...args` in the repository root, to completion. */
export function runScript(
  script: string,
  args: readonly string[],
  env: Env = {},
): Promise<Completed> {
  return run(process.execPath, [...NODE_TSX, script, ...args], { env })
}

/** The CLI as `npm run cli` runs it, without npm's start-up cost. */
export function cli(args: readonly string[], env: Env = {}): Promise<Completed> {
  return runScript('src/cli.ts', args, env)
}

/** The service as `npm start` runs it, to its exit: for configurations that must be refused. */
export async function startExpectingFailure(env: Env): Promise<Completed> {
  await ensureBuilt()
  return run(process.execPath, SERVICE_ARGS, { env: { PORT: '0', ...env } })
}

export interface LogLine {
  readonly level: number
  readonly msg: string
  readonly pid: number
  readonly [field: string]: unknown
}

export interface ServiceProcess {
  readonly url: string
  /** The pid of the node process running the service (from its log lines). */
  readonly pid: number
  readonly child: ChildProcess
  logs(): LogLine[]
  stderr(): string
  /** Sends `signal` to the process started (node, or npm) and waits for its exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/**
 * The service with PORT=0 on 127.0.0.1, started as `npm start` starts it (the bundle built once,
 * then `node <SERVICE_ARGS>`) or (`via: 'npm'`) by `npm start` itself: resolves once it logs
 * "listening" (with the URL it listens on), rejects with its stderr if it exits first.
 */
export async function startServiceProcess(
  env: Env,
  options: { via?: 'node' | 'npm'; timeoutMs?: number } = {},
): Promise<ServiceProcess> {
  const timeoutMs = options.timeoutMs ?? 45_000
  if (options.via !== 'npm') await ensureBuilt()
  const [command, args] =
    options.via === 'npm' ? ['npm', ['start', '--silent']] : [process.execPath, SERVICE_ARGS]
  const child = track(
    spawn(command, args, {
      cwd: ROOT,
      env: childEnv({ PORT: '0', HOST: '127.0.0.1', ...env }),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    }),
  )
  const lines: LogLine[] = []
  let partial = ''
  let stderr = ''
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  )
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid) process.kill(-child.pid, 'SIGKILL')
      reject(new Error(`the service did not log "listening" within ${timeoutMs} ms\n${stderr}`))
    }, timeoutMs)
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      partial += chunk
      let newline: number
      while ((newline = partial.indexOf('\n')) >= 0) {
        const text = partial.slice(0, newline)
        partial = partial.slice(newline + 1)
        let line: LogLine
        try {
          line = JSON.parse(text) as LogLine
        } catch {
          continue // not a log line
        }
        lines.push(line)
        if (line.msg === 'listening' && typeof line.url === 'string') {
          clearTimeout(timer)
          resolve({
            url: line.url,
            pid: line.pid,
            child,
            logs: () => [...lines],
            stderr: () => stderr,
            async stop(signal = 'SIGTERM') {
              child.kill(signal)
              return exited
            },
          })
        }
      }
    })
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(
        new Error(
          `the service exited (code ${code}, signal ${signal}) before listening\n${stderr}`,
        ),
      )
    })
  })
}

/**
 * A TCP port nobody listens on at the moment, on 127.0.0.1: for a process whose URLs must carry
 * its real port (PUBLIC_BASE_URL), so PORT=0 will not do.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

export interface TempDir {
  readonly dir: string
  remove(): void
}

/** A fresh, empty folder for DATA_DIR (short, so the control socket fits in it). */
export function tempDataDir(): TempDir {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'euo-t-'))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** POSTs a GraphQL document to a running service. */
export async function graphql(
  baseUrl: string,
  apiKey: string,
  query: string,
): Promise<{
  data?: unknown
  errors?: Array<{ message: string; extensions?: { code?: string } }>
}> {
  const response = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ query }),
  })
  return (await response.json()) as { data?: unknown; errors?: Array<{ message: string }> }
}

/**
 * A new, empty PostgreSQL database next to TEST_DATABASE_URL's (a child process's DATABASE_URL
 * cannot carry a search path, so a schema per test is not enough here); dropped by `drop()`.
 */
export async function createPgDatabase(
  adminUrl: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `euo_t_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    await admin.query(`create database ${name}`)
  } finally {
    await admin.end()
  }
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: adminUrl })
      await client.connect()
      try {
        await client.query(`drop database if exists ${name} with (force)`)
      } finally {
        await client.end()
      }
    },
  }
}
