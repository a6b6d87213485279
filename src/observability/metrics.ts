/**
 * Prometheus metrics (prom-client), one registry for the process, scraped from a listener of its
 * own (`METRICS_PORT`, see startMetricsServer) so that the public port never serves them.
 *
 * Every label value comes from a fixed set: session statuses, failure codes, provider steps,
 * operation types, the schema's root field names, and a capped set of rate-limit scopes. Nothing a
 * tenant or a client sends (operation names, ids, URLs) becomes a label value, so the number of
 * series stays bounded whatever requests arrive.
 *
 * The recording functions are cheap and always on (a counter increment); only the listener and the
 * process metrics depend on METRICS_PORT.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client'
import { AUTH_FAILURE_CODES } from '../core/auth-failure.ts'
import type { AuthSessionStatus } from '../core/auth-session.ts'

export const registry = new Registry()

const signInsStarted = new Counter({
  name: 'euo_sign_ins_started_total',
  help: 'Sign-in sessions started (startEndUserAuth).',
  registers: [registry],
})

const signInsEnded = new Counter({
  name: 'euo_sign_ins_ended_total',
  help:
    'Sign-in sessions that reached an end, by outcome (the status reached: AUTHENTICATED, FAILED, ' +
    'EXPIRED, CANCELLED, or AWAITING_CONFIRMATION when the callback left it waiting for the code) ' +
    'and, for FAILED, the failure code.',
  labelNames: ['outcome', 'failure_code'] as const,
  registers: [registry],
})

const signInDuration = new Histogram({
  name: 'euo_sign_in_duration_seconds',
  help: 'From startEndUserAuth to the end counted by euo_sign_ins_ended_total, by outcome.',
  labelNames: ['outcome'] as const,
  buckets: [1, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600],
  registers: [registry],
})

const providerCallDuration = new Histogram({
  name: 'euo_provider_call_duration_seconds',
  help:
    'Calls to providers by step (token, whoami, jwks, discovery) and outcome (ok: a 2xx answer; ' +
    'http_error: another status; transport_error: no answer, e.g. timeout, refused or blocked address).',
  labelNames: ['step', 'outcome'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
})

/**
 * The counts of GraphQL operations, by label set. Operations are counted into these plain numbers
 * and handed to prom-client when it is scraped (the counter's `collect`): prom-client validates
 * and hashes the labels of every `inc`, which cost more than the rest of answering a small query.
 */
export interface OperationCounts {
  readonly ok: Readonly<Record<string, string>>
  readonly error: Readonly<Record<string, string>>
  /** The duration histogram's labels. */
  readonly timed: Readonly<Record<string, string>>
  okCount: number
  errorCount: number
}
const operationCounts = new Map<string, OperationCounts>()

// Registered by its construction; its values come from operationCounts when scraped.
new Counter({
  name: 'euo_graphql_operations_total',
  help:
    'GraphQL operations executed, by type, root field (the schema names; "other" otherwise) and ' +
    'result (ok, or error when the result carries errors).',
  labelNames: ['type', 'operation', 'result'] as const,
  registers: [registry],
  collect() {
    this.reset()
    for (const counts of operationCounts.values()) {
      if (counts.okCount > 0) this.inc(counts.ok, counts.okCount)
      if (counts.errorCount > 0) this.inc(counts.error, counts.errorCount)
    }
  },
})

const graphqlDuration = new Histogram({
  name: 'euo_graphql_operation_duration_seconds',
  help: 'Execution time of GraphQL queries and mutations, by type and root field.',
  labelNames: ['type', 'operation'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [registry],
})

const rateLimited = new Counter({
  name: 'euo_rate_limited_total',
  help: 'Requests refused by a rate limit, by scope.',
  labelNames: ['scope'] as const,
  registers: [registry],
})

// ---------------------------------------------------------------------------------------------
// Sign-ins

/** The end statuses counted by euo_sign_ins_ended_total. */
export type SignInOutcome = Exclude<AuthSessionStatus, 'PENDING' | 'OPENED'>

export function recordSignInStarted(): void {
  signInsStarted.inc()
}

/**
 * A session reached `status`. `failureCode` only for FAILED (anything not a known code counts as
 * "other"); the duration only where the session's start is known.
 */
export function recordSignInEnded(ended: {
  readonly status: AuthSessionStatus
  readonly failureCode?: string | null | undefined
  readonly createdAt?: Date | undefined
  readonly endedAt?: Date | null | undefined
}): void {
  const outcome = ended.status
  if (outcome === 'PENDING' || outcome === 'OPENED') return
  if (outcome === 'FAILED') {
    const code = ended.failureCode ?? ''
    signInsEnded.inc({
      outcome,
      failure_code: Object.hasOwn(AUTH_FAILURE_CODES, code) ? code : 'other',
    })
  } else {
    signInsEnded.inc({ outcome })
  }
  if (ended.createdAt && ended.endedAt) {
    const seconds = (ended.endedAt.getTime() - ended.createdAt.getTime()) / 1000
    if (seconds >= 0) signInDuration.observe({ outcome }, seconds)
  }
}

/** recordSignInEnded for a session as the database returned it. */
export function recordSessionEnded(session: {
  readonly status: AuthSessionStatus
  readonly failure: { readonly code: string } | null
  readonly createdAt: Date
  readonly completedAt: Date | null
}): void {
  recordSignInEnded({
    status: session.status,
    failureCode: session.failure?.code ?? null,
    createdAt: session.createdAt,
    endedAt: session.completedAt,
  })
}

// ---------------------------------------------------------------------------------------------
// Provider calls

export type ProviderStep = 'token' | 'whoami' | 'jwks' | 'discovery'

/**
 * Wraps one call to a provider: times it into euo_provider_call_duration_seconds and, when tracing
 * is on, runs it inside a span (tracing.ts sets `providerCallTracer`). `call` resolves with the
 * answer (any status) or throws for no answer.
 */
export async function observeProviderCall<T extends { readonly status: number }>(
  step: ProviderStep,
  url: string | URL | Request,
  call: () => Promise<T>,
): Promise<T> {
  const started = process.hrtime.bigint()
  const timed = async (): Promise<T> => {
    let outcome = 'transport_error'
    try {
      const answer = await call()
      outcome = answer.status >= 200 && answer.status < 300 ? 'ok' : 'http_error'
      return answer
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      providerCallDuration.observe({ step, outcome }, seconds)
    }
  }
  return providerCallTracer ? providerCallTracer(step, url, timed) : timed()
}

/** Set by tracing.ts when traces are on; null otherwise, so that nothing of OpenTelemetry loads. */
export type ProviderCallTracer = <T extends { readonly status: number }>(
  step: ProviderStep,
  url: string | URL | Request,
  call: () => Promise<T>,
) => Promise<T>

let providerCallTracer: ProviderCallTracer | null = null

export function setProviderCallTracer(tracer: ProviderCallTracer | null): void {
  providerCallTracer = tracer
}

// ---------------------------------------------------------------------------------------------
// GraphQL

export type OperationType = 'query' | 'mutation' | 'subscription'

/**
 * Where operations of one type and root field are counted. `name` is already bounded: a root
 * field name of the schema, or "other" (see graphql-operation.ts), so the map stays small.
 */
export function graphQLOperationCounts(type: OperationType, name: string): OperationCounts {
  const key = `${type} ${name}`
  let counts = operationCounts.get(key)
  if (counts === undefined) {
    counts = {
      ok: { type, operation: name, result: 'ok' },
      error: { type, operation: name, result: 'error' },
      timed: { type, operation: name },
      okCount: 0,
      errorCount: 0,
    }
    operationCounts.set(key, counts)
  }
  return counts
}

/** One operation: counted by result and, unless it is a subscription, timed. */
export function recordGraphQLOperation(
  counts: OperationCounts,
  ok: boolean,
  /** Absent for subscriptions (they last as long as the client stays). */
  seconds?: number,
): void {
  if (ok) counts.okCount++
  else counts.errorCount++
  if (seconds !== undefined) graphqlDuration.observe(counts.timed, seconds)
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/** At most this many distinct scopes become label values; later ones count as "other". */
export const RATE_LIMIT_SCOPES_MAX = 16
const SCOPE_PATTERN = /^[a-z][a-z0-9_:.-]{0,39}$/
const scopesSeen = new Set<string>()

/**
 * For the rate-limit code: one request refused in `scope` (a fixed name of the limit, such as
 * "api_key" or "link"). A scope that is not a short lower-case name, or one past the first
 * RATE_LIMIT_SCOPES_MAX, counts as "other", so a caller passing a key or an address by mistake
 * cannot grow the series without bound.
 */
export function recordRateLimited(scope: string): void {
  let label = 'other'
  if (SCOPE_PATTERN.test(scope)) {
    if (scopesSeen.has(scope)) label = scope
    else if (scopesSeen.size < RATE_LIMIT_SCOPES_MAX) {
      scopesSeen.add(scope)
      label = scope
    }
  }
  rateLimited.inc({ scope: label })
}

// ---------------------------------------------------------------------------------------------
// The listener

let defaultMetricsOn = false

export interface MetricsServer {
  readonly url: string
  readonly server: Server
  close(): Promise<void>
}

/**
 * Serves `GET /metrics` on host:port (port 0: any free port), and starts collecting the process
 * metrics (prefix `euo_`). Anything else answers 404.
 */
export async function startMetricsServer(options: {
  readonly host: string
  readonly port: number
}): Promise<MetricsServer> {
  if (!defaultMetricsOn) {
    collectDefaultMetrics({ register: registry, prefix: 'euo_' })
    defaultMetricsOn = true
  }
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n')
      return
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' })
        res.end(req.method === 'HEAD' ? undefined : text)
      },
      () => res.writeHead(500).end(),
    )
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  const host = options.host.includes(':') ? `[${options.host}]` : options.host
  return {
    url: `http://${host}:${port}/metrics`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
