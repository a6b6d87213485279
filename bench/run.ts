/**
 * `npm run bench`: starts everything it needs, runs the scenarios, prints a table.
 *
 *   npm run bench -- [--scenarios start,status,flow,mapping,soak,growth] [--duration 5]
 *                    [--warmup 5] [--rounds 5] [--connections 10] [--flow-concurrency 16]
 *                    [--soak-duration 60]
 *                    [--soak-concurrency 100] [--growth-rows 10000,1000000] [--out FILE]
 *                    (10M rows, opt-in: --scenarios growth --growth-rows 10000,10000000)
 *                    [--profile] [--log-level info] [--node-options OPTS]
 *
 * On PostgreSQL when BENCH_DATABASE_URL is set (a fresh `euo_bench_<random>` database is created
 * on that server and dropped at the end), else on the embedded database (temporary DATA_DIRs).
 *
 * Processes: the service (`npm start`'s command: the bundle it builds, run by node, with env;
 * restarted for each scenario so its peak RSS is that scenario's), the floor (bench/floor.ts), the fake provider
 * (bench/provider.ts) and the load generator (bench/load.ts) each run in their own child process.
 */
import { spawn, fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  closeSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import { CONFIG_VARIABLES } from '../src/config.ts'
import type { CannonJob, CannonResult, FlowJob, FlowResult, Job } from './load.ts'
import type { MappingBenchResult } from './mapping.ts'
import { median, percentile, round2, type Percentiles } from './stats.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ALL_SCENARIOS = [
  'start',
  'status',
  'flow',
  'mapping',
  'soak',
  'growth',
  'hostile',
  'limits',
] as const
type Scenario = (typeof ALL_SCENARIOS)[number]

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  scenarios: Scenario[]
  durationSec: number
  warmupSec: number
  rounds: number
  connections: number
  flowConcurrency: number
  soakDurationSec: number
  soakConcurrency: number
  growthRows: [number, number] | null
  out: string | null
  profile: boolean
  logLevel: string
  nodeOptions: string | null
}

const USAGE = `usage: npm run bench -- [options]
  --scenarios LIST        comma-separated, from ${ALL_SCENARIOS.join(',')} (default: all)
  --duration S            seconds per measured round and side (default 5)
  --warmup S              seconds of warm-up per side before the rounds (default 5)
  --rounds N              measured rounds per side, alternating service/floor (default 5, at least 3)
  --connections N         concurrent connections (start, status, growth, limits) and sign-ins
                          (hostile) (default 10)
  --flow-concurrency N    concurrent sign-ins in flow (default 16, the bench kit's -c 16)
  --soak-duration S       soak length (default 60)
  --soak-concurrency N    concurrent sign-ins in the soak (default 100)
  --growth-rows A,B       session rows for the two growth phases
                          (default 10000,1000000 on PostgreSQL; 10000,100000 embedded)
  --out FILE              also write every figure as JSON
  --profile               run the service with --cpu-prof (profiles in bench/results/profiles)
  --log-level LEVEL       the service's LOG_LEVEL (default info, as in production)
  --node-options OPTS     NODE_OPTIONS for the service process (default: none, as npm start)
environment: BENCH_DATABASE_URL=postgres://... to run on PostgreSQL (the figures that count)`

function parseOptions(argv: readonly string[]): Options {
  const o: Options = {
    scenarios: [...ALL_SCENARIOS],
    durationSec: 5,
    warmupSec: 5,
    rounds: 5,
    connections: 10,
    flowConcurrency: 16,
    soakDurationSec: 60,
    soakConcurrency: 100,
    growthRows: null,
    out: null,
    profile: false,
    logLevel: 'info',
    nodeOptions: null,
  }
  const num = (name: string, raw: string | undefined, min: number): number => {
    const value = Number(raw)
    if (raw === undefined || !Number.isFinite(value) || value < min)
      fail(`${name} needs a number >= ${min}`)
    return value
  }
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = (argv[i] as string).split(/=(.*)/s, 2) as [string, string | undefined]
    const value = () => inline ?? argv[++i]
    switch (flag) {
      case '--scenarios': {
        const list = (value() ?? '')
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
        const unknown = list.filter((s) => !(ALL_SCENARIOS as readonly string[]).includes(s))
        if (list.length === 0 || unknown.length > 0)
          fail(`--scenarios: unknown ${unknown.join(', ') || '(none given)'}`)
        o.scenarios = ALL_SCENARIOS.filter((s) => list.includes(s))
        break
      }
      case '--duration':
        o.durationSec = num(flag, value(), 1)
        break
      case '--warmup':
        o.warmupSec = num(flag, value(), 0)
        break
      case '--rounds':
        o.rounds = Math.round(num(flag, value(), 3))
        break
      case '--connections':
        o.connections = Math.round(num(flag, value(), 1))
        break
      case '--flow-concurrency':
        o.flowConcurrency = Math.round(num(flag, value(), 1))
        break
      case '--soak-duration':
        o.soakDurationSec = num(flag, value(), 1)
        break
      case '--soak-concurrency':
        o.soakConcurrency = Math.round(num(flag, value(), 1))
        break
      case '--growth-rows': {
        const [a, b] = (value() ?? '').split(',').map(Number)
        if (!a || !b || a < 1000 || b <= a)
          fail('--growth-rows needs two counts A,B with 1000 <= A < B')
        o.growthRows = [a, b]
        break
      }
      case '--out':
        o.out = value() ?? fail('--out needs a file name')
        break
      case '--profile':
        o.profile = true
        break
      case '--log-level':
        o.logLevel = value() ?? fail('--log-level needs a level')
        break
      case '--node-options':
        o.nodeOptions = value() ?? fail('--node-options needs a value')
        break
      case '--help':
      case '-h':
        console.log(USAGE)
        process.exit(0)
        break
      default:
        fail(`unknown option ${flag}`)
    }
  }
  return o
}

function fail(message: string): never {
  console.error(`bench: ${message}\n\n${USAGE}`)
  process.exit(2)
}

// ---------------------------------------------------------------------------------------------
// Child processes

const children = new Set<ChildProcess>()

function track<T extends ChildProcess>(child: T): T {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

function killChildren(): void {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null) child.kill('SIGKILL')
  }
}

/** Forks a bench/*.ts module with IPC and waits for its first message. */
async function forkTs<T>(
  file: string,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; hello: T }> {
  const child = track(
    fork(path.join(ROOT, 'bench', file), [], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  )
  const hello = await new Promise<T>((resolve, reject) => {
    child.once('message', (m) => resolve(m as T))
    child.once('exit', (code) =>
      reject(new Error(`bench/${file} exited (code ${code}) before it was ready`)),
    )
  })
  return { child, hello }
}

class Loader {
  readonly child: ChildProcess

  private constructor(child: ChildProcess) {
    this.child = child
  }

  static async start(): Promise<Loader> {
    return new Loader((await forkTs<{ ready: true }>('load.ts')).child)
  }

  run(job: CannonJob): Promise<CannonResult>
  run(job: FlowJob): Promise<FlowResult>
  run(job: Job): Promise<unknown>
  run(job: Job): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) =>
        reject(new Error(`the load generator exited (code ${code})`))
      this.child.once('exit', onExit)
      this.child.once('message', (m) => {
        this.child.off('exit', onExit)
        const answer = m as { ok: true; result: unknown } | { ok: false; error: string }
        if (answer.ok) resolve(answer.result)
        else reject(new Error(`load generator: ${answer.error}`))
      })
      this.child.send(job)
    })
  }

  stop(): void {
    this.child.disconnect()
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

/** A memory figure of a process from /proc/<pid>/status, in bytes; 0 when unreadable. */
function procMemory(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(
      readFileSync(`/proc/${pid}/status`, 'utf8'),
    )
    return match ? Number(match[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/** Peak resident set size (VmHWM) of a process, in bytes; 0 when unreadable. */
const peakRss = (pid: number): number => procMemory(pid, 'VmHWM')
const currentRss = (pid: number): number => procMemory(pid, 'VmRSS')

/** A process's parent and the CPU time (user + system) it has used so far, in ms; null if gone. */
function procStat(pid: number): { ppid: number; cpuMs: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may contain spaces): state is field 3, ppid 4, utime 14,
    // stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return {
      ppid: Number(fields[1]),
      cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS,
    }
  } catch {
    return null
  }
}
const CLOCK_TICKS = 100

function procName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return ''
  }
}

/** `root` and every process below it, from /proc. */
function processTree(root: number): number[] {
  const parents = new Map<number, number>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = procStat(Number(entry))
    if (stat) parents.set(Number(entry), stat.ppid)
  }
  const tree = [root]
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid)
  }
  return tree
}

/** CPU ms so far of each of `pids` (those still there). */
function cpuSample(pids: Iterable<number>): Map<number, number> {
  const sample = new Map<number, number>()
  for (const pid of pids) {
    const stat = procStat(pid)
    if (stat) sample.set(pid, stat.cpuMs)
  }
  return sample
}

/**
 * CPU ms used between two samples: a process first seen in `after` counts from zero; one gone
 * before `after` is lost (as in the bench kit's compare.mjs).
 */
function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let ms = 0
  for (const [pid, cpu] of after) ms += cpu - (before.get(pid) ?? 0)
  return ms
}

interface Service {
  readonly url: string
  readonly pid: number
  /** Stops it (SIGTERM, orderly close) and returns its peak RSS in bytes. */
  stop(): Promise<number>
}

interface Env {
  readonly base: Record<string, string>
  readonly tmp: string
  readonly profile: boolean
}

let serviceRuns = 0

/**
 * `npm start` read from package.json: the steps before the last (`node scripts/build.mjs`, the
 * bundle) run once before any scenario; the last (`exec node <args>`) is how the service is
 * started, flags included, so that what is measured is what runs. The service is node's own
 * process.
 */
function startCommand(): { prepare: string[][]; service: string[] } {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    scripts?: Record<string, string>
  }
  const steps = (pkg.scripts?.start ?? '').split('&&').map((step) =>
    step
      .trim()
      .replace(/^exec\s+/, '')
      .split(/\s+/),
  )
  for (const step of steps) {
    if (step[0] !== 'node' || step.length < 2) {
      throw new Error(
        `bench: npm start runs "${step.join(' ')}"; only node commands are understood`,
      )
    }
  }
  const service = steps.pop()!
  return { prepare: steps.map((step) => step.slice(1)), service: service.slice(1) }
}

/** Runs `npm start`'s steps before the service itself (the build), once. */
async function prepareService(): Promise<void> {
  for (const args of startCommand().prepare) {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit'],
    })
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    if (code !== 0) throw new Error(`bench: node ${args.join(' ')} exited with ${code}`)
  }
}

async function startService(env: Env, label: string): Promise<Service> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const logFile = path.join(env.tmp, `service-${++serviceRuns}-${label}.log`)
  const log = openSync(logFile, 'a')
  const args = startCommand().service
  if (env.profile) {
    // One folder per service run (node writes a profile per thread).
    const dir = path.join(ROOT, 'bench', 'results', 'profiles', `${label}-${Date.now()}`)
    mkdirSync(dir, { recursive: true })
    args.unshift('--cpu-prof', `--cpu-prof-dir=${dir}`)
  }
  const child = track(
    spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...env.base, PORT: String(port), HOST: '127.0.0.1', PUBLIC_BASE_URL: url },
      stdio: ['ignore', log, log],
    }),
  )
  closeSync(log)
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  )
  let gone = false
  void exited.then(() => (gone = true))
  // Sampled as well, in case VmHWM cannot be read at the end.
  let sampled = 0
  const sampler = setInterval(() => (sampled = Math.max(sampled, currentRss(child.pid!))), 250)
  sampler.unref()
  const deadline = Date.now() + 90_000
  for (;;) {
    if (gone) {
      clearInterval(sampler)
      throw new Error(
        `the service exited before it was ready; its log:\n${readFileSync(logFile, 'utf8').slice(-3000)}`,
      )
    }
    if (Date.now() > deadline)
      throw new Error(`the service was not ready within 90 s (log: ${logFile})`)
    try {
      if ((await fetch(`${url}/readyz`)).ok) break
    } catch {
      // not listening yet
    }
    await sleep(100)
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      const peak = Math.max(peakRss(child.pid!), sampled, currentRss(child.pid!))
      clearInterval(sampler)
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      await exited
      clearTimeout(timer)
      return peak
    },
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** `tsx src/cli.ts ...` with the service's environment; the one JSON object it prints. */
async function cli(env: Env, args: string[]): Promise<Record<string, unknown>> {
  const child = track(
    spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      cwd: ROOT,
      env: { ...env.base, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c))
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  if (code !== 0) throw new Error(`cli ${args.join(' ')} failed (${code}): ${stderr}`)
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>
}

async function gql<T>(
  url: string,
  key: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<T> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  })
  const body = (await response.json()) as { data?: T; errors?: unknown }
  if (!body.data || body.errors)
    throw new Error(`GraphQL failed: ${JSON.stringify(body).slice(0, 500)}`)
  return body.data
}

/** Runs `work(i)` for i in [0, count) with at most `concurrency` at a time. */
async function pool<T>(
  count: number,
  concurrency: number,
  work: (i: number) => Promise<T>,
): Promise<T[]> {
  const out: T[] = new Array(count)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++
        out[i] = await work(i)
      }
    }),
  )
  return out
}

// ---------------------------------------------------------------------------------------------
// The database of this run

interface BenchDatabase {
  readonly kind: 'postgres' | 'pglite'
  readonly label: string
  /** The service's DATABASE_URL / DATA_DIR. */
  readonly serviceEnv: Record<string, string>
  readonly floorEnv: Record<string, string>
  /**
   * Runs `fn` with a direct connection. On the embedded database only while the service is
   * stopped (one process may own a PGlite directory).
   */
  direct<T>(
    fn: (
      query: (text: string, values?: unknown[]) => Promise<Array<Record<string, unknown>>>,
    ) => Promise<T>,
  ): Promise<T>
  /**
   * A copy of this database as it is now (nothing may be connected to it): a template copy on
   * PostgreSQL, a copied folder for the embedded database. Dropped with this one.
   */
  copy(suffix: string): Promise<BenchDatabase>
  /**
   * The pids of the client backends connected to this database on behalf of `owner` (the floor's
   * connections carry FLOOR_APP_NAME; every other one is the service's); null on the embedded
   * database, which runs inside the service.
   */
  backendPids(owner: 'service' | 'floor'): Promise<number[] | null>
  drop(): Promise<void>
}

/** The floor's application_name (PGAPPNAME), to tell its backends from the service's. */
const FLOOR_APP_NAME = 'euo-bench-floor'

async function openBenchDatabase(tmp: string): Promise<BenchDatabase> {
  const adminUrl = process.env.BENCH_DATABASE_URL
  if (adminUrl) {
    const admin = async <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => {
      const client = new pg.Client({ connectionString: adminUrl })
      await client.connect()
      try {
        return await fn(client)
      } finally {
        await client.end()
      }
    }
    const version = await admin(
      async (c) =>
        (await c.query<{ server_version: string }>('show server_version')).rows[0]
          ?.server_version ?? '?',
    )
    const postgres = async (name: string, template: string | null): Promise<BenchDatabase> => {
      await admin((c) =>
        c.query(`create database ${name}${template ? ` template ${template}` : ''}`),
      )
      const url = new URL(adminUrl)
      url.pathname = `/${name}`
      const copies: BenchDatabase[] = []
      return {
        kind: 'postgres',
        label: `PostgreSQL ${version} (${url.host}, database ${name})`,
        serviceEnv: { DATABASE_URL: url.href },
        floorEnv: { FLOOR_DATABASE_URL: url.href },
        async direct(fn) {
          const client = new pg.Client({ connectionString: url.href })
          await client.connect()
          try {
            return await fn(
              async (text, values) =>
                (await client.query(text, values)).rows as Array<Record<string, unknown>>,
            )
          } finally {
            await client.end()
          }
        },
        async copy(suffix) {
          const copy = await postgres(`${name}_${suffix}`, name)
          copies.push(copy)
          return copy
        },
        async backendPids(owner) {
          const { rows } = await admin((c) =>
            c.query<{ pid: number }>(
              `select pid from pg_stat_activity where datname = $1 and backend_type = 'client backend'
                 and (application_name = $2) = $3 and pid <> pg_backend_pid()`,
              [name, FLOOR_APP_NAME, owner === 'floor'],
            ),
          )
          // Only PostgreSQL processes of this machine: a remote server's pids mean nothing here.
          return rows.map((r) => r.pid).filter((pid) => procName(pid) === 'postgres')
        },
        async drop() {
          for (const copy of copies) await copy.drop()
          await admin((c) => c.query(`drop database if exists ${name} with (force)`))
        },
      }
    }
    return postgres(`euo_bench_${randomBytes(5).toString('hex')}`, null)
  }
  const embedded = (serviceDir: string): BenchDatabase => ({
    kind: 'pglite',
    label: `embedded PGlite (${serviceDir})`,
    serviceEnv: { DATA_DIR: serviceDir },
    floorEnv: { FLOOR_DATA_DIR: path.join(tmp, 'floor-data') },
    async direct(fn) {
      const db = new PGlite(serviceDir)
      try {
        return await fn(
          async (text, values) =>
            (await db.query(text, values)).rows as Array<Record<string, unknown>>,
        )
      } finally {
        await db.close()
      }
    },
    async copy(suffix) {
      const dir = `${serviceDir}-${suffix}`
      cpSync(serviceDir, dir, {
        recursive: true,
        filter: (source) => !/(owner\.lock|control\.sock)$/.test(source),
      })
      return embedded(dir)
    },
    async backendPids() {
      return null
    },
    async drop() {},
  })
  return embedded(path.join(tmp, 'service-data'))
}

// ---------------------------------------------------------------------------------------------
// Results

interface Row {
  readonly scenario: string
  readonly measure: string
  readonly value: string
  readonly target?: string
  readonly ok?: boolean
  readonly rss?: string
}

interface Report {
  machine: Record<string, string | number>
  database: string
  options: Omit<Options, 'out'>
  scenarios: Record<string, unknown>
  rows: Row[]
  failures: string[]
}

const MB = 1024 * 1024
const RSS_LIMIT = 180 * MB

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US')
}
function fmtMs(p: Percentiles, keys: Array<'p50' | 'p95' | 'p99'> = ['p50', 'p95', 'p99']): string {
  return keys.map((k) => p[k].toFixed(2)).join(' / ')
}
function fmtMb(bytes: number): string {
  return bytes > 0 ? `${(bytes / MB).toFixed(0)} MB` : 'n/a'
}

function printTable(rows: readonly Row[]): void {
  const header = {
    scenario: 'scenario',
    measure: 'measure',
    value: 'value',
    target: 'target',
    ok: 'ok',
    rss: 'peak RSS',
  }
  const cells = [
    header,
    ...rows.map((r) => ({
      scenario: r.scenario,
      measure: r.measure,
      value: r.value,
      target: r.target ?? '',
      ok: r.ok === undefined ? '' : r.ok ? 'yes' : 'NO',
      rss: r.rss ?? '',
    })),
  ]
  const keys = Object.keys(header) as Array<keyof typeof header>
  const width = Object.fromEntries(
    keys.map((k) => [k, Math.max(...cells.map((c) => c[k].length))]),
  ) as Record<keyof typeof header, number>
  const line = (c: (typeof cells)[number]) =>
    keys
      .map((k) => c[k].padEnd(width[k]))
      .join('  ')
      .trimEnd()
  console.log(line(cells[0]!))
  console.log(keys.map((k) => '-'.repeat(width[k])).join('  '))
  let last = ''
  for (const c of cells.slice(1)) {
    console.log(line({ ...c, scenario: c.scenario === last ? '' : c.scenario }))
    last = c.scenario
  }
}

function machine(): Record<string, string | number> {
  const cpu =
    /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ??
    os.cpus()[0]?.model ??
    '?'
  return {
    nproc: os.availableParallelism(),
    cpu,
    memory: `${Math.round(os.totalmem() / 1024 ** 3)} GiB`,
    node: process.version,
    os: `${os.type()} ${os.release()}`,
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Context {
  readonly o: Options
  readonly env: Env
  readonly db: BenchDatabase
  readonly loader: Loader
  readonly agentKey: string
  readonly adminKey: string
  readonly integrationId: string
  readonly floor: { url: string; pid: number }
  readonly providerUrl: string
  readonly report: Report
  /** Two copies of the freshly seeded database for `growth` (small, large). */
  readonly growth: [BenchDatabase, BenchDatabase] | null
}

function rssRow(ctx: Context, scenario: string, bytes: number): Row {
  const ok = bytes > 0 && bytes < RSS_LIMIT
  if (!ok) ctx.report.failures.push(`${scenario}: service peak RSS ${fmtMb(bytes)} (limit 180 MB)`)
  return {
    scenario,
    measure: 'service peak RSS (VmHWM)',
    value: fmtMb(bytes),
    target: '< 180 MB',
    ok,
    rss: fmtMb(bytes),
  }
}

function check(ctx: Context, ok: boolean, message: string): boolean {
  if (!ok) ctx.report.failures.push(message)
  return ok
}

function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`)
}

interface CpuUse {
  /** CPU ms of the server's process tree. */
  readonly serverMs: number
  /** CPU ms of its PostgreSQL client backends; null on the embedded database (in serverMs). */
  readonly pgMs: number | null
}

/**
 * Runs `work` (one load run against one server) and measures the CPU the server's process tree
 * and the PostgreSQL backends serving it used meanwhile, from /proc (10 ms ticks): what a request
 * or a sign-in costs, steadier than req/s on a shared machine. PostgreSQL's shared processes (WAL
 * writer, checkpointer) and autovacuum are in neither; a backend that disconnects before the end
 * is lost, one that connects during it counts from zero.
 */
async function withCpu<T>(
  ctx: Context,
  serverPid: number,
  owner: 'service' | 'floor',
  work: () => Promise<T>,
): Promise<{ result: T; cpu: CpuUse }> {
  const tree = processTree(serverPid)
  const backends = await ctx.db.backendPids(owner)
  const before = { server: cpuSample(tree), pg: cpuSample(backends ?? []) }
  const result = await work()
  const treeAfter = new Set([...tree, ...processTree(serverPid)])
  const backendsAfter =
    backends && new Set([...backends, ...((await ctx.db.backendPids(owner)) ?? [])])
  return {
    result,
    cpu: {
      serverMs: cpuBetween(before.server, cpuSample(treeAfter)),
      pgMs: backendsAfter ? cpuBetween(before.pg, cpuSample(backendsAfter)) : null,
    },
  }
}

/** `ms` of CPU per `count` operations, in µs, rounded to 0.01. */
function usPer(ms: number | null, count: number): number | null {
  return ms === null || count === 0 ? null : round2((ms * 1000) / count)
}

function cannonJob(
  ctx: Context,
  service: Service,
  target: 'service' | 'floor',
  op: CannonJob['op'],
  durationSec: number,
  ids: readonly string[] = [],
  connections = ctx.o.connections,
): CannonJob {
  return {
    kind: 'cannon',
    target,
    op,
    url: target === 'service' ? service.url : ctx.floor.url,
    agentKey: ctx.agentKey,
    // The floor has no integrations and ignores it.
    integrationId: ctx.integrationId,
    ids,
    connections,
    durationSec,
  }
}

const START_FOR_IDS = `mutation($input: StartEndUserAuthInput!) { startEndUserAuth(input: $input) { session { id } } }`

/**
 * start / status: service and floor alternating, after a warm-up of both. The floor does the
 * minimum SQL for the job (bench/floor.ts: one insert, or one read by key), so the ratio is the
 * service's whole cost, its SQL included.
 */
async function versusFloor(ctx: Context, op: 'start' | 'status', target: number): Promise<void> {
  const { o } = ctx
  const service = await startService(ctx.env, op)
  try {
    let serviceIds: string[] = []
    let floorIds: string[] = []
    if (op === 'status') {
      // Sessions to poll: created the ordinary way, on each side.
      const tag = randomBytes(4).toString('hex')
      const count = ctx.db.kind === 'postgres' ? 1000 : 200
      serviceIds = await pool(count, 8, async (i) => {
        const data = await gql<{ startEndUserAuth: { session: { id: string } } }>(
          service.url,
          ctx.agentKey,
          START_FOR_IDS,
          {
            input: { integrationId: ctx.integrationId, conversationId: `poll-${tag}-${i}` },
          },
        )
        return data.startEndUserAuth.session.id
      })
      floorIds = await pool(count, 8, async (i) => {
        const response = await fetch(`${ctx.floor.url}/start`, {
          method: 'POST',
          body: JSON.stringify({ conversationId: `poll-${tag}-${i}` }),
        })
        return ((await response.json()) as { session: { id: string } }).session.id
      })
    }
    const job = (side: 'service' | 'floor', seconds: number, what: CannonJob['op'] = op) =>
      cannonJob(ctx, service, side, what, seconds, side === 'service' ? serviceIds : floorIds)
    if (o.warmupSec > 0) {
      progress(`${op}: warm-up ${o.warmupSec} s each`)
      await ctx.loader.run(job('service', o.warmupSec))
      await ctx.loader.run(job('floor', o.warmupSec))
    }
    // CPU time per request of the serving process and of its PostgreSQL backends.
    const measured = async (side: 'service' | 'floor', what: CannonJob['op'] = op) => {
      const pid = side === 'service' ? service.pid : ctx.floor.pid
      const { result, cpu } = await withCpu(ctx, pid, side, () =>
        ctx.loader.run(job(side, o.durationSec, what)),
      )
      return {
        ...result,
        cpuUsPerRequest: usPer(cpu.serverMs, result.requests)!,
        pgUsPerRequest: usPer(cpu.pgMs, result.requests),
      }
    }
    type Measured = Awaited<ReturnType<typeof measured>>
    const rounds: Array<{ service: Measured; floor: Measured; ratio: number }> = []
    for (let r = 0; r < o.rounds; r++) {
      progress(`${op}: round ${r + 1}/${o.rounds}`)
      const a = await measured('service')
      const b = await measured('floor')
      rounds.push({ service: a, floor: b, ratio: round2(a.rps / b.rps) })
      progress(
        `${op}: ${a.rps.toFixed(0)} vs ${b.rps.toFixed(0)} req/s (ratio ${(a.rps / b.rps).toFixed(2)}); CPU ${a.cpuUsPerRequest} vs ${b.cpuUsPerRequest} µs/req`,
      )
    }
    // What the GraphQL HTTP path costs with no database work at all: the ceiling of `status`.
    let ceiling: Measured | null = null
    if (op === 'status') {
      progress('status: the same service answering { __typename } (no database)')
      ceiling = await measured('service', 'typename')
    }
    const rss = await service.stop()
    const ratios = rounds.map((r) => r.ratio)
    const med = round2(median(ratios))
    const serviceErrors = rounds.reduce((n, r) => n + r.service.errors, 0) + (ceiling?.errors ?? 0)
    const floorErrors = rounds.reduce((n, r) => n + r.floor.errors, 0)
    const firstError =
      rounds.map((r) => r.service.firstError ?? r.floor.firstError).find(Boolean) ?? null
    const ok = check(ctx, med >= target, `${op}: median ratio ${med} < ${target}`)
    check(
      ctx,
      serviceErrors + floorErrors === 0,
      `${op}: ${serviceErrors} service and ${floorErrors} floor errors (${firstError})`,
    )
    const name = op === 'start' ? 'startEndUserAuth' : 'authSession'
    const floorSql = op === 'start' ? 'one insert' : 'one read by key'
    const pgUs = (side: 'service' | 'floor') => {
      const values = rounds.map((r) => r[side].pgUsPerRequest)
      return values.every((v) => v !== null) ? fmtInt(median(values as number[])) : 'n/a'
    }
    const mid = (side: 'service' | 'floor') => {
      const sorted = [...rounds].sort((x, y) => x[side].rps - y[side].rps)
      return sorted[sorted.length >> 1]![side]
    }
    ctx.report.rows.push(
      {
        scenario: op,
        measure: `ratio service/floor (minimum SQL: ${floorSql}), median (rounds)`,
        value: `${med.toFixed(2)} (${ratios.map((r) => r.toFixed(2)).join(' ')})`,
        target: `>= ${target}`,
        ok,
      },
      {
        scenario: op,
        measure: `service ${name} req/s; p50 / p99 ms`,
        value: `${fmtInt(median(rounds.map((r) => r.service.rps)))}; ${fmtMs(mid('service').latency, ['p50', 'p99'])}`,
      },
      {
        scenario: op,
        measure: `floor (${floorSql}) req/s; p50 / p99 ms`,
        value: `${fmtInt(median(rounds.map((r) => r.floor.rps)))}; ${fmtMs(mid('floor').latency, ['p50', 'p99'])}`,
      },
      {
        scenario: op,
        measure: 'CPU µs per request, service / floor process',
        value: `${fmtInt(median(rounds.map((r) => r.service.cpuUsPerRequest)))} / ${fmtInt(median(rounds.map((r) => r.floor.cpuUsPerRequest)))}`,
      },
      {
        scenario: op,
        measure: 'PostgreSQL CPU µs per request, service / floor backends',
        value:
          ctx.db.kind === 'pglite'
            ? 'n/a (embedded: in the process CPU)'
            : `${pgUs('service')} / ${pgUs('floor')}`,
      },
      ...(ceiling
        ? [
            {
              scenario: op,
              measure: 'service { __typename } (no database) req/s; CPU µs; vs floor',
              value: `${fmtInt(ceiling.rps)}; ${fmtInt(ceiling.cpuUsPerRequest)}; ${(ceiling.rps / median(rounds.map((r) => r.floor.rps))).toFixed(2)}`,
            },
          ]
        : []),
      {
        scenario: op,
        measure: 'errors (service / floor)',
        value: `${serviceErrors} / ${floorErrors}`,
        target: '0',
        ok: serviceErrors + floorErrors === 0,
      },
      rssRow(ctx, op, rss),
    )
    ctx.report.scenarios[op] = { rounds, medianRatio: med, target, peakRssBytes: rss, ceiling }
  } catch (error) {
    await service.stop()
    throw error
  }
}

/** Whole sign-ins against `service`, `concurrency` at a time; a fresh tag keeps runs apart. */
function flowJob(
  ctx: Context,
  service: Service,
  label: string,
  concurrency: number,
  seconds: number,
): FlowJob {
  return {
    kind: 'flow',
    serviceUrl: service.url,
    providerUrl: ctx.providerUrl,
    agentKey: ctx.agentKey,
    integrationId: ctx.integrationId,
    concurrency,
    durationMs: seconds * 1000,
    tag: `${label}-${randomBytes(3).toString('hex')}`,
  }
}

/**
 * flow: whole sign-ins, `--flow-concurrency` at a time (16, as the bench kit's `-c 16`), with the
 * kit's measures: sign-ins/s, latency per sign-in, each step's p50, the CPU of the server's
 * process tree and of its PostgreSQL backends per sign-in, peak RSS.
 */
async function flowScenario(ctx: Context): Promise<void> {
  const { o } = ctx
  const c = o.flowConcurrency
  const service = await startService(ctx.env, 'flow')
  const job = (seconds: number) => flowJob(ctx, service, 'flow', c, seconds)
  try {
    if (o.warmupSec > 0) {
      progress(`flow: warm-up ${o.warmupSec} s`)
      await ctx.loader.run(job(o.warmupSec))
    }
    const seconds = o.durationSec * o.rounds
    progress(`flow: ${c} concurrent sign-ins for ${seconds} s`)
    const { result, cpu } = await withCpu(ctx, service.pid, 'service', () =>
      ctx.loader.run(job(seconds)),
    )
    const rss = await service.stop()
    // Per sign-in, in ms (usPer gives µs).
    const perFlow = (ms: number | null) => {
      const us = usPer(ms, result.flows)
      return us === null ? null : round2(us / 1000)
    }
    const serverMsPerFlow = perFlow(cpu.serverMs)
    const pgMsPerFlow = perFlow(cpu.pgMs)
    const ok = check(
      ctx,
      result.errors === 0,
      `flow: ${result.errors} errors (${result.firstError})`,
    )
    ctx.report.rows.push(
      {
        scenario: 'flow',
        measure: `sign-ins/s (${c} at a time)`,
        value: `${result.flowsPerSec.toFixed(1)} (${fmtInt(result.flows)} in ${result.seconds.toFixed(1)} s)`,
      },
      {
        scenario: 'flow',
        measure: 'latency per sign-in p50 / p95 / p99 ms (whole, provider included)',
        value: fmtMs(result.latency),
      },
      {
        scenario: 'flow',
        measure: `step p50 ms: ${Object.keys(result.steps).join(' / ')}`,
        value: Object.values(result.steps)
          .map((p) => p.p50.toFixed(2))
          .join(' / '),
      },
      {
        scenario: 'flow',
        measure: 'our time per sign-in p50 / p95 / p99 ms',
        value: fmtMs(result.ours),
      },
      {
        scenario: 'flow',
        measure: "provider's own time p50 / p95 / p99 ms",
        value: fmtMs(result.provider),
      },
      {
        scenario: 'flow',
        measure: 'server CPU ms per sign-in (process tree)',
        value: serverMsPerFlow === null ? 'n/a' : serverMsPerFlow.toFixed(2),
      },
      {
        scenario: 'flow',
        measure: "PostgreSQL CPU ms per sign-in (the service's backends)",
        value:
          pgMsPerFlow === null ? 'n/a (embedded: in the server figure)' : pgMsPerFlow.toFixed(2),
      },
      { scenario: 'flow', measure: 'errors', value: String(result.errors), target: '0', ok },
      rssRow(ctx, 'flow', rss),
    )
    const { sessionIds, ...rest } = result
    ctx.report.scenarios.flow = {
      ...rest,
      concurrency: c,
      sessions: sessionIds.length,
      serverCpuMsPerFlow: serverMsPerFlow,
      pgCpuMsPerFlow: pgMsPerFlow,
      peakRssBytes: rss,
    }
  } catch (error) {
    await service.stop()
    throw error
  }
}

async function mappingScenario(ctx: Context): Promise<void> {
  progress('mapping')
  // A fresh process of its own, so its peak RSS is the mapping's.
  const loader = await Loader.start()
  try {
    const result = (await loader.run({
      kind: 'mapping',
      durationMs: Math.max(3000, ctx.o.durationSec * 1000),
    })) as MappingBenchResult
    const rss = peakRss(loader.child.pid!)
    ctx.report.rows.push(
      {
        scenario: 'mapping',
        measure: 'identity mappings/s (compile once)',
        value: fmtInt(result.opsPerSec),
      },
      {
        scenario: 'mapping',
        measure: 'raw JMESPath interpreter/s; ratio',
        value: `${fmtInt(result.baselineOpsPerSec)}; ${result.ratio.toFixed(2)}`,
      },
      {
        scenario: 'mapping',
        measure: 'peak RSS of the mapping process',
        value: fmtMb(rss),
        rss: fmtMb(rss),
      },
    )
    ctx.report.scenarios.mapping = { ...result, peakRssBytes: rss }
  } finally {
    loader.stop()
  }
}

/** Up to `n` sessions' statuses in one request; one document per `n`, so it is parsed once. */
const STATUS_OF = (n: number) =>
  `query(${Array.from({ length: n }, (_, i) => `$i${i}: ID!`).join(', ')}) { ${Array.from({ length: n }, (_, i) => `s${i}: authSession(id: $i${i}) { status }`).join(' ')} }`

async function soakScenario(ctx: Context): Promise<void> {
  const { o } = ctx
  const service = await startService(ctx.env, 'soak')
  try {
    progress(`soak: ${o.soakConcurrency} concurrent sign-ins for ${o.soakDurationSec} s`)
    const result = await ctx.loader.run(
      flowJob(ctx, service, 'soak', o.soakConcurrency, o.soakDurationSec),
    )
    progress(`soak: checking ${result.sessionIds.length} sessions`)
    const counts: Record<string, number> = {}
    let lost = 0
    let checkErrors = 0
    let checkError: string | null = null
    let unchecked = 0
    // Ten aliases a request: the service refuses more than GRAPHQL_MAX_ALIASES (15) in one.
    const batches: string[][] = []
    for (let i = 0; i < result.sessionIds.length; i += 10)
      batches.push(result.sessionIds.slice(i, i + 10))
    await pool(batches.length, 4, async (b) => {
      const ids = batches[b]!
      try {
        const data = await gql<Record<string, { status: string } | null>>(
          service.url,
          ctx.agentKey,
          STATUS_OF(ids.length),
          Object.fromEntries(ids.map((id, i) => [`i${i}`, id])),
        )
        for (let i = 0; i < ids.length; i++) {
          const session = data[`s${i}`]
          if (!session) lost++
          else counts[session.status] = (counts[session.status] ?? 0) + 1
        }
      } catch (error) {
        checkErrors++
        unchecked += ids.length
        checkError ??= error instanceof Error ? error.message : String(error)
      }
    })
    const rss = await service.stop()
    const started = result.sessionIds.length
    const authenticated = counts.AUTHENTICATED ?? 0
    const stuck = (counts.PENDING ?? 0) + (counts.OPENED ?? 0)
    // A batch whose check failed says nothing of its sessions: counted as errors, not as ended.
    const otherwise = started - authenticated - stuck - lost - unchecked
    const errors = result.errors + checkErrors
    const ok = check(
      ctx,
      lost === 0 && stuck === 0 && otherwise === 0 && errors === 0 && started > 0,
      `soak: ${lost} lost, ${stuck} stuck, ${otherwise} ended otherwise, ${errors} errors ` +
        `(${result.firstError ?? checkError})`,
    )
    ctx.report.rows.push(
      {
        scenario: 'soak',
        measure: `sign-ins started / AUTHENTICATED (${o.soakConcurrency} at a time, ${o.soakDurationSec} s)`,
        value: `${fmtInt(started)} / ${fmtInt(authenticated)}`,
      },
      {
        scenario: 'soak',
        measure: 'lost / stuck / ended otherwise / errors',
        value: `${lost} / ${stuck} / ${otherwise} / ${errors}`,
        target: '0 / 0 / 0 / 0',
        ok,
      },
      {
        scenario: 'soak',
        measure: 'sign-ins/s; our time p50 / p95 / p99 ms',
        value: `${result.flowsPerSec.toFixed(1)}; ${fmtMs(result.ours)}`,
      },
      rssRow(ctx, 'soak', rss),
    )
    const { sessionIds, ...rest } = result
    ctx.report.scenarios.soak = {
      ...rest,
      started: sessionIds.length,
      statuses: counts,
      lost,
      stuck,
      otherwise,
      checkErrors,
      checkError,
      peakRssBytes: rss,
    }
  } catch (error) {
    await service.stop()
    throw error
  }
}

/**
 * Session rows in bulk: one INSERT ... SELECT FROM generate_series, finished sessions only, all
 * completed within the last 29 days, so the service's retention (30 days by default) has nothing
 * to delete while it is measured and the table is what a steady state of 30 days holds.
 */
function growthInsert(
  tenantId: string,
  integrationId: string,
  count: number,
  tag: string,
): { text: string; values: unknown[] } {
  return {
    text: `insert into auth_sessions (tenant_id, integration_id, conversation_id, contact_id, redirect_route, status,
             link_hash, identity, expires_at, opened_at, completed_at, created_at, updated_at)
           select $1::uuid, $2::uuid, 'growth-' || $3 || '-' || g, 'growth-' || $3 || '-' || g, 'IDP',
             case when g % 4 = 0 then 'EXPIRED' else 'AUTHENTICATED' end,
             sha256(convert_to($3 || '-' || g, 'UTF8')),
             case when g % 4 = 0 then null else jsonb_build_object('email', 'user' || g || '@example.com',
               'userName', 'user' || g, 'fullName', 'User ' || g, 'firstName', 'User', 'lastName', g::text,
               'attributes', jsonb_build_object('userName', 'user' || g)) end,
             t + interval '10 minutes', t + interval '1 minute', t + interval '2 minutes', t, t + interval '2 minutes'
           from generate_series(1, $4::int) as g, lateral (select now() - interval '1 minute' * (g % 40320) - interval '1 day' as t) as c`,
    values: [tenantId, integrationId, tag, count],
  }
}

/**
 * Status p99 on a small and a large table. A status read (`authSession(id)`, db/auth-sessions.ts
 * selectSession: `where id = $1 and tenant_id = $2`) is one probe of the primary key index
 * `auth_sessions_pkey` (a b-tree on id: its depth grows by one level per ~300x more rows), then
 * one heap page, whatever the table's size. `--growth-rows 10000,10000000` is the 10M-row run
 * (opt-in: filling the copy takes minutes and several GB); the default stays at 1M.
 *
 * The two tables are two copies of the seeded database (so nothing else the run wrote is in
 * them), each served by its own service; both are read in alternation (A B A B ...) at the same
 * fixed request rate, half of what the small one sustains, so that p99 reflects the work per read
 * rather than queueing.
 */
async function growthScenario(ctx: Context, tenantId: string): Promise<void> {
  const { o, db } = ctx
  if (!ctx.growth) throw new Error('growth needs its database copies')
  const counts = o.growthRows ?? (db.kind === 'postgres' ? [10_000, 1_000_000] : [10_000, 100_000])
  const sides = ctx.growth.map((copy, i) => ({ copy, target: counts[i]! }))
  const prepared: Array<{ copy: BenchDatabase; rows: number; ids: string[]; fillSeconds: number }> =
    []
  for (const { copy, target } of sides) {
    progress(`growth: filling a copy to ${fmtInt(target)} session rows`)
    const t0 = performance.now()
    const { rows, ids } = await copy.direct(async (query) => {
      const have = Number((await query('select count(*)::int as n from auth_sessions'))[0]!.n)
      if (have < target) {
        const insert = growthInsert(
          tenantId,
          ctx.integrationId,
          target - have,
          randomBytes(3).toString('hex'),
        )
        await query(insert.text, insert.values)
      }
      await query('vacuum analyze auth_sessions')
      const rows = Number((await query('select count(*)::int as n from auth_sessions'))[0]!.n)
      // Ids spread over the whole table, so reads touch old and new pages alike.
      const ids = (await query('select id from auth_sessions order by random() limit 1000')).map(
        (r) => String(r.id),
      )
      return { rows, ids }
    })
    prepared.push({ copy, rows, ids, fillSeconds: round2((performance.now() - t0) / 1000) })
  }
  const services: Service[] = []
  try {
    for (const side of prepared) {
      services.push(
        await startService(
          { ...ctx.env, base: { ...ctx.env.base, ...side.copy.serviceEnv } },
          `growth-${side.rows}`,
        ),
      )
    }
    const job = (i: number, seconds: number, rate?: number): CannonJob => ({
      ...cannonJob(ctx, services[i]!, 'service', 'status', seconds, prepared[i]!.ids),
      ...(rate ? { rate, keepLatencies: true } : {}),
    })
    // Warm-up at full speed; the small table's second run says what it sustains.
    const warm = Math.max(o.warmupSec, 1)
    progress(`growth: warm-up ${warm} s each, twice`)
    await ctx.loader.run(job(0, warm))
    await ctx.loader.run(job(1, warm))
    const capacity = (await ctx.loader.run(job(0, warm))).rps
    await ctx.loader.run(job(1, warm))
    const rate = Math.max(50, Math.round(capacity / 2))
    // Short slices, alternating, pooled per side: both sides meet the same noise of a shared machine.
    const total = o.durationSec * o.rounds
    // autocannon runs whole seconds.
    const sliceSec = total >= 2 * o.rounds ? 2 : 1
    const slices = Math.max(o.rounds, Math.round(total / sliceSec))
    const pooled: [number[], number[]] = [[], []]
    const perSlice: Array<{ small: number; large: number }> = []
    let errors = 0
    progress(`growth: ${slices} slices of ${sliceSec} s per side at ${rate} req/s, alternating`)
    for (let r = 0; r < slices; r++) {
      const small = await ctx.loader.run(job(0, sliceSec, rate))
      const large = await ctx.loader.run(job(1, sliceSec, rate))
      pooled[0].push(...(small.latencies ?? []))
      pooled[1].push(...(large.latencies ?? []))
      perSlice.push({ small: small.latency.p99, large: large.latency.p99 })
      errors += small.errors + large.errors
    }
    const rss = Math.max(...(await Promise.all(services.splice(0).map((s) => s.stop()))))
    const [a, b] = prepared as [(typeof prepared)[0], (typeof prepared)[0]]
    const [pa, pb] = [percentile(pooled[0]), percentile(pooled[1])]
    const ratio = round2(pb.p99 / pa.p99)
    const ok = check(
      ctx,
      ratio <= 1.5,
      `growth: status p99 x${ratio} from ${fmtInt(a.rows)} to ${fmtInt(b.rows)} rows`,
    )
    check(ctx, errors === 0, `growth: ${errors} errors`)
    const note = db.kind === 'pglite' ? ' (embedded: smaller counts)' : ''
    ctx.report.rows.push(
      {
        scenario: 'growth',
        measure: `status p99 ms at ${fmtInt(a.rows)} / ${fmtInt(b.rows)} rows${note}`,
        value: `${pa.p99.toFixed(2)} / ${pb.p99.toFixed(2)}`,
      },
      {
        scenario: 'growth',
        measure: 'ratio of the p99s, large/small',
        value: ratio.toFixed(2),
        target: '<= 1.5',
        ok,
      },
      {
        scenario: 'growth',
        measure: `status p50 ms at each size (${rate} req/s, ${fmtInt(pa.count)} + ${fmtInt(pb.count)} reads)`,
        value: `${pa.p50.toFixed(2)} / ${pb.p50.toFixed(2)}`,
      },
      {
        scenario: 'growth',
        measure: 'errors',
        value: String(errors),
        target: '0',
        ok: errors === 0,
      },
      rssRow(ctx, 'growth', rss),
    )
    ctx.report.scenarios.growth = {
      rows: [a.rows, b.rows],
      fillSeconds: [a.fillSeconds, b.fillSeconds],
      rate,
      small: pa,
      large: pb,
      p99Ratio: ratio,
      perSliceP99: perSlice,
      embeddedSmallerCounts: db.kind === 'pglite',
      peakRssBytes: rss,
    }
  } finally {
    await Promise.all(services.map((s) => s.stop()))
  }
}

/**
 * The heaviest requests the GraphQL limits admit (rate limits aside: they are off here, so the
 * load is the worst one key could send within them, not throttled): one mapping test on a 1 MiB
 * payload with a mapping that runs into the engine's time budget, five starts in one request,
 * the standard introspection query, and a 3,000-alias read (refused by the token limit).
 */
function hostileBodies(ctx: Context): string[] {
  const payload = {
    items: Array.from({ length: 19_000 }, (_, i) => ({
      id: `user-${i}`,
      name: `Name ${i}`,
      tags: ['a', 'b'],
    })),
  }
  let conversation = 0
  const starts = () =>
    Array.from(
      { length: 5 },
      (_, i) =>
        `s${i}: startEndUserAuth(input: { integrationId: "${ctx.integrationId}", conversationId: "hostile-${++conversation}-${randomBytes(3).toString('hex')}" }) { authorizationLink session { id } }`,
    ).join(' ')
  return [
    JSON.stringify({
      query: `mutation ($input: TestWhoAmIMappingInput!) { testWhoAmIMapping(input: $input) { identity { userName } errors { message } } }`,
      variables: {
        input: {
          mapping: '{userName: to_string(length(items[*].tags[*].[@, @, @]))}',
          payload,
        },
      },
    }),
    JSON.stringify({ query: `mutation { ${starts()} }` }),
    JSON.stringify({ query: INTROSPECTION }),
    JSON.stringify({
      query: `{ ${Array.from({ length: 3000 }, (_, i) => `a${i}: authSession(id: "00000000-0000-4000-8000-000000000000") { id }`).join(' ')} }`,
    }),
  ]
}

const INTROSPECTION = `query { __schema { queryType { name } mutationType { name } types { kind name description fields(includeDeprecated: true) { name description args { name description type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } defaultValue } type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } isDeprecated deprecationReason } inputFields { name type { kind name ofType { kind name ofType { kind name } } } } interfaces { name } enumValues(includeDeprecated: true) { name description } possibleTypes { name } } directives { name locations args { name } } } }`

/**
 * One client: the target is about what one hostile request does to the event loop (several at
 * once queue their work; test/limits/event-loop.test.ts sends three).
 */
const HOSTILE_CLIENTS = 1

/** /healthz, one request at a time with a 20 ms pause, until `stop` says so. */
async function probeHealth(url: string, stop: () => boolean): Promise<number[]> {
  const latencies: number[] = []
  while (!stop()) {
    const started = performance.now()
    try {
      const response = await fetch(`${url}/healthz`)
      await response.arrayBuffer()
      latencies.push(performance.now() - started)
    } catch {
      latencies.push(Infinity)
    }
    await sleep(20)
  }
  return latencies
}

/**
 * hostile: sign-ins (10 at a time) and /healthz, first alone, then while a client sends the
 * heaviest admitted requests back to back; the same service for both halves.
 */
async function hostileScenario(ctx: Context): Promise<void> {
  const { o } = ctx
  const service = await startService(ctx.env, 'hostile')
  try {
    const bodies = hostileBodies(ctx)
    const sendHostile = async (i: number) => {
      const body = i % bodies.length === 1 ? hostileBodies(ctx)[1]! : bodies[i % bodies.length]!
      const response = await fetch(`${service.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ctx.agentKey}` },
        body,
      })
      const text = await response.text()
      return response.status === 200 && !text.startsWith('{"errors"')
    }
    if (o.warmupSec > 0) {
      progress(`hostile: warm-up ${o.warmupSec} s`)
      await ctx.loader.run(flowJob(ctx, service, 'hostile-warmup', o.connections, o.warmupSec))
      for (let i = 0; i < bodies.length; i++) await sendHostile(i)
    }
    const seconds = o.durationSec * 2
    const half = async (hostile: boolean) => {
      progress(`hostile: ${seconds} s of sign-ins ${hostile ? 'with' : 'without'} hostile requests`)
      let done = false
      let heavy = 0
      let admitted = 0
      const clients = hostile
        ? Array.from({ length: HOSTILE_CLIENTS }, async (_, c) => {
            for (let i = c; !done; i++) {
              heavy++
              if (await sendHostile(i)) admitted++
            }
          })
        : []
      const probe = probeHealth(service.url, () => done)
      const flows = await ctx.loader.run(flowJob(ctx, service, 'hostile', o.connections, seconds))
      done = true
      const [health] = await Promise.all([probe, ...clients])
      return { flows, health: percentile(health), heavy, admitted }
    }
    const calm = await half(false)
    const loud = await half(true)
    const rss = await service.stop()
    const delay = round2(loud.health.p99 - calm.health.p99)
    const ok = check(
      ctx,
      delay <= 100,
      `hostile: /healthz p99 ${loud.health.p99} ms under hostile requests against ${calm.health.p99} ms without`,
    )
    const errors = calm.flows.errors + loud.flows.errors
    check(
      ctx,
      errors === 0,
      `hostile: ${errors} sign-in errors (${calm.flows.firstError ?? loud.flows.firstError})`,
    )
    ctx.report.rows.push(
      {
        scenario: 'hostile',
        measure: '/healthz p50 / p99 / max ms, without / with hostile requests',
        value: `${calm.health.p50} / ${calm.health.p99} / ${calm.health.max}; ${loud.health.p50} / ${loud.health.p99} / ${loud.health.max}`,
      },
      {
        scenario: 'hostile',
        measure: '/healthz p99 delay from hostile requests, ms',
        value: String(delay),
        target: '<= 100',
        ok,
      },
      {
        scenario: 'hostile',
        measure: 'sign-ins/s (10 at a time), without / with',
        value: `${calm.flows.flowsPerSec.toFixed(1)} / ${loud.flows.flowsPerSec.toFixed(1)}`,
      },
      {
        scenario: 'hostile',
        measure: `hostile requests sent / admitted (${HOSTILE_CLIENTS} client)`,
        value: `${fmtInt(loud.heavy)} / ${fmtInt(loud.admitted)}`,
      },
      rssRow(ctx, 'hostile', rss),
    )
    ctx.report.scenarios.hostile = {
      calm: { health: calm.health, flowsPerSec: calm.flows.flowsPerSec },
      hostile: {
        health: loud.health,
        flowsPerSec: loud.flows.flowsPerSec,
        sent: loud.heavy,
        admitted: loud.admitted,
      },
      delayMs: delay,
      peakRssBytes: rss,
    }
  } catch (error) {
    await service.stop()
    throw error
  }
}

/**
 * limits: what counting costs on the hot path. Status reads against two services, rate limits
 * on (with limits too high to refuse anything: counted in memory and, on PostgreSQL, added to
 * the shared counts every second) and off, alternating rounds.
 */
async function limitsScenario(ctx: Context): Promise<void> {
  const { o } = ctx
  const on = await startService(
    {
      ...ctx.env,
      base: {
        ...ctx.env.base,
        RATE_LIMITS: 'on',
        RATE_LIMIT_KEY_PER_MINUTE: '999999999',
        RATE_LIMIT_TENANT_PER_MINUTE: '999999999',
      },
    },
    'limits-on',
  )
  const off = await startService(ctx.env, 'limits-off')
  try {
    const tag = randomBytes(4).toString('hex')
    const ids = await pool(200, 8, async (i) => {
      const data = await gql<{ startEndUserAuth: { session: { id: string } } }>(
        off.url,
        ctx.agentKey,
        START_FOR_IDS,
        { input: { integrationId: ctx.integrationId, conversationId: `limits-${tag}-${i}` } },
      )
      return data.startEndUserAuth.session.id
    })
    const measured = async (service: Service, seconds: number) => {
      const { result, cpu } = await withCpu(ctx, service.pid, 'service', () =>
        ctx.loader.run(cannonJob(ctx, service, 'service', 'status', seconds, ids)),
      )
      return { ...result, cpuUsPerRequest: usPer(cpu.serverMs, result.requests)! }
    }
    if (o.warmupSec > 0) {
      progress(`limits: warm-up ${o.warmupSec} s each`)
      await measured(on, o.warmupSec)
      await measured(off, o.warmupSec)
    }
    const rounds: Array<{ on: number; off: number; cpuOn: number; cpuOff: number }> = []
    let errors = 0
    for (let r = 0; r < o.rounds; r++) {
      progress(`limits: round ${r + 1}/${o.rounds}`)
      const a = await measured(on, o.durationSec)
      const b = await measured(off, o.durationSec)
      errors += a.errors + b.errors
      rounds.push({ on: a.rps, off: b.rps, cpuOn: a.cpuUsPerRequest, cpuOff: b.cpuUsPerRequest })
      progress(
        `limits: ${a.rps.toFixed(0)} on vs ${b.rps.toFixed(0)} off req/s; CPU ${a.cpuUsPerRequest} vs ${b.cpuUsPerRequest} µs/req`,
      )
    }
    const rssOn = await on.stop()
    await off.stop()
    const ratio = round2(median(rounds.map((r) => r.on / r.off)))
    const cpuOn = round2(median(rounds.map((r) => r.cpuOn)))
    const cpuOff = round2(median(rounds.map((r) => r.cpuOff)))
    check(ctx, errors === 0, `limits: ${errors} errors`)
    ctx.report.rows.push(
      {
        scenario: 'limits',
        measure: 'authSession req/s, rate limits on / off, median ratio (rounds)',
        value: `${ratio} (${rounds.map((r) => round2(r.on / r.off)).join(' ')})`,
      },
      {
        scenario: 'limits',
        measure: 'CPU µs per request, on / off (medians)',
        value: `${cpuOn} / ${cpuOff}`,
      },
      {
        scenario: 'limits',
        measure: 'errors',
        value: String(errors),
        target: '0',
        ok: errors === 0,
      },
      rssRow(ctx, 'limits', rssOn),
    )
    ctx.report.scenarios.limits = { rounds, ratio, cpuOn, cpuOff, peakRssBytes: rssOn }
  } catch (error) {
    await on.stop()
    await off.stop()
    throw error
  }
}

// ---------------------------------------------------------------------------------------------

const CREATE_INTEGRATION = `mutation($input: CreateOAuthIntegrationInput!) { createOAuthIntegration(input: $input) { integration { id } } }`

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2))
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'euo-bench-'))
  let db: BenchDatabase | undefined
  let cleaned = false
  const cleanup = async () => {
    if (cleaned) return
    cleaned = true
    killChildren()
    await db
      ?.drop()
      .catch((error: unknown) =>
        console.error(`bench: could not drop the database: ${String(error)}`),
      )
    rmSync(tmp, { recursive: true, force: true })
  }
  process.once('SIGINT', () => {
    void cleanup().then(() => process.exit(130))
  })
  try {
    await prepareService()
    db = await openBenchDatabase(tmp)
    const { out: _out, ...options } = o
    const report: Report = {
      machine: machine(),
      database: db.label,
      options,
      scenarios: {},
      rows: [],
      failures: [],
    }
    progress(`database: ${db.label}`)
    const env: Env = {
      tmp,
      profile: o.profile,
      base: {
        ...scrubbedEnv(),
        ...db.serviceEnv,
        NODE_ENV: 'production',
        ENCRYPTION_KEY: randomBytes(32).toString('base64'),
        OUTBOUND_ALLOW_HOSTS: '127.0.0.1',
        // The load comes from one address and one key, far past any default limit: the
        // `limits` scenario measures what counting costs.
        RATE_LIMITS: 'off',
        LOG_LEVEL: o.logLevel,
        ...(o.nodeOptions ? { NODE_OPTIONS: o.nodeOptions } : {}),
      },
    }
    const provider = await forkTs<{ port: number }>('provider.ts')
    const providerUrl = `http://127.0.0.1:${provider.hello.port}`

    // Seed through the real commands: a tenant (ADMIN key), an AGENT key, an integration.
    const seeding = await startService(env, 'seed')
    let seeded: { tenantId: string; adminKey: string; agentKey: string; integrationId: string }
    try {
      const tenant = (await cli(env, ['tenant', 'create', 'bench', '--name', 'Bench'])) as {
        tenant: { id: string }
        apiKey: string
      }
      const agent = (await cli(env, [
        'apikey',
        'create',
        'bench',
        '--role',
        'AGENT',
        '--label',
        'bench',
      ])) as { apiKey: string }
      const created = await gql<{ createOAuthIntegration: { integration: { id: string } } }>(
        seeding.url,
        tenant.apiKey,
        CREATE_INTEGRATION,
        {
          input: {
            name: 'bench provider',
            clientId: 'bench-client',
            clientSecret: 'bench-secret-0123456789abcdef',
            scope: 'openid profile email',
            authorizationUrl: `${providerUrl}/authorize`,
            tokenUrl: `${providerUrl}/token`,
            whoAmIUrl: `${providerUrl}/whoami`,
            whoAmIMapping: '{"userName": user.id, "fullName": user.name, "email": user.email}',
          },
        },
      )
      seeded = {
        tenantId: tenant.tenant.id,
        adminKey: tenant.apiKey,
        agentKey: agent.apiKey,
        integrationId: created.createOAuthIntegration.integration.id,
      }
    } finally {
      await seeding.stop()
    }

    // Copies for growth, taken while nothing is connected: only seeded rows, nothing of the run.
    const growth = o.scenarios.includes('growth')
      ? ([await db.copy('small'), await db.copy('large')] as [BenchDatabase, BenchDatabase])
      : null
    const floor = await forkTs<{ port: number }>('floor.ts', {
      ...db.floorEnv,
      FLOOR_TENANT_ID: seeded.tenantId,
      PGAPPNAME: FLOOR_APP_NAME,
    })
    const loader = await Loader.start()
    const ctx: Context = {
      o,
      env,
      db,
      loader,
      agentKey: seeded.agentKey,
      adminKey: seeded.adminKey,
      integrationId: seeded.integrationId,
      floor: { url: `http://127.0.0.1:${floor.hello.port}`, pid: floor.child.pid! },
      providerUrl,
      report,
      growth,
    }
    const started = performance.now()
    const loadBefore = os.loadavg()[0]!
    for (const scenario of o.scenarios) {
      if (scenario === 'start') await versusFloor(ctx, 'start', 0.6)
      else if (scenario === 'status') await versusFloor(ctx, 'status', 0.75)
      else if (scenario === 'flow') await flowScenario(ctx)
      else if (scenario === 'mapping') await mappingScenario(ctx)
      else if (scenario === 'soak') await soakScenario(ctx)
      else if (scenario === 'hostile') await hostileScenario(ctx)
      else if (scenario === 'limits') await limitsScenario(ctx)
      else await growthScenario(ctx, seeded.tenantId)
    }
    loader.stop()
    const m = report.machine
    const seconds = Math.round((performance.now() - started) / 1000)
    // Other work on the machine moves every figure: say how busy it was.
    const loadAverage = `${loadBefore.toFixed(1)} before, ${os.loadavg()[0]!.toFixed(1)} after`
    Object.assign(report, { seconds, loadAverage })
    console.log(
      `\nend-user-oauth bench: ${db.label}\nmachine: ${m.nproc} x ${m.cpu}, ${m.memory}, Node ${m.node}, ${m.os}; ` +
        `1-min load average ${loadAverage}\n` +
        `load: ${o.connections} connections (flow: ${o.flowConcurrency} sign-ins at a time), ${o.rounds} rounds x ${o.durationSec} s per side after ${o.warmupSec} s warm-up; ` +
        `service LOG_LEVEL=${o.logLevel}, NODE_ENV=production${o.nodeOptions ? `, NODE_OPTIONS=${o.nodeOptions}` : ''}; took ${seconds} s\n` +
        (db.kind === 'pglite'
          ? "embedded database: PGlite runs inside the service (its memory is the service's); the targets are for PostgreSQL (BENCH_DATABASE_URL)\n"
          : ''),
    )
    printTable(report.rows)
    if (report.failures.length > 0)
      console.log(`\nnot met:\n${report.failures.map((f) => `  - ${f}`).join('\n')}`)
    else console.log('\nevery target met')
    if (o.out) {
      writeFileSync(
        o.out,
        `${JSON.stringify({ ...report, finishedAt: new Date().toISOString() }, null, 2)}\n`,
      )
      console.log(`figures written to ${o.out}`)
    }
    process.exitCode = report.failures.length > 0 ? 1 : 0
  } finally {
    await cleanup()
  }
}

/** The parent's environment without the service's own variables (they are set explicitly). */
function scrubbedEnv(): Record<string, string> {
  const drop = new Set<string>([...CONFIG_VARIABLES, 'NODE_OPTIONS'])
  return Object.fromEntries(
    Object.entries(process.env).filter(([k, v]) => v !== undefined && !drop.has(k)),
  ) as Record<string, string>
}

await main()
