/**
 * The load generator, in its own process (bench/run.ts forks it and sends it one job at a time
 * over IPC):
 *
 * - `cannon`: autocannon against the service's GraphQL (`startEndUserAuth`, `authSession`) or the
 *   floor's equivalent, with a fresh conversation id per start and session ids taken round-robin
 *   for reads. Every answer's body is checked (a GraphQL error counts as an error), and latency
 *   is recorded at full resolution (autocannon's own histogram rounds to whole milliseconds).
 * - `flow`: whole sign-ins, `concurrency` at a time, for `durationMs` (a sign-in under way when
 *   time is up is finished, never abandoned), each step timed (FLOW_STEPS, the steps of
 *   /work/shared/bench-kit/flow-bench.mjs).
 * - `mapping`: bench/mapping.ts.
 */
import autocannon from 'autocannon'
import { benchMapping } from './mapping.ts'
import { percentile, type Percentiles } from './stats.ts'

export const START_QUERY = `mutation Start($input: StartEndUserAuthInput!) {
  startEndUserAuth(input: $input) {
    authorizationLink
    message { text buttonLabel url }
    session { id status conversationId contactId createdAt expiresAt }
  }
}`

export const POLL_QUERY = `query Poll($id: ID!) {
  authSession(id: $id) {
    id status completedAt
    identity { email userName fullName firstName lastName }
    failure { code message }
  }
}`

const TYPENAME_BODY = JSON.stringify({ query: '{ __typename }' })

export interface CannonJob {
  readonly kind: 'cannon'
  readonly target: 'service' | 'floor'
  /** `typename`: `{ __typename }` with the key, the service's GraphQL over HTTP with no database work. */
  readonly op: 'start' | 'status' | 'typename'
  readonly url: string
  readonly agentKey: string
  readonly integrationId: string
  /** Session ids to read (status). */
  readonly ids: readonly string[]
  readonly connections: number
  readonly durationSec: number
  /** A fixed rate over all connections (requests per second); absent: as fast as answered. */
  readonly rate?: number
  /** Return every latency too (to pool several runs into one distribution). */
  readonly keepLatencies?: boolean
}

export interface CannonResult {
  readonly requests: number
  readonly rps: number
  readonly latency: Percentiles
  /** Socket errors, timeouts, non-2xx answers and answers whose body is not the expected one. */
  readonly errors: number
  readonly firstError: string | null
  readonly latencies?: number[]
}

export interface FlowJob {
  readonly kind: 'flow'
  readonly serviceUrl: string
  readonly providerUrl: string
  readonly agentKey: string
  readonly integrationId: string
  readonly concurrency: number
  readonly durationMs: number
  /** Prefix of the conversation ids, so runs never supersede each other's sessions. */
  readonly tag: string
}

/**
 * The steps of a sign-in, as the bench kit names them: start (the bot's startEndUserAuth), open
 * (the link's page and the POST behind its Continue), form (that POST alone, part of open),
 * authorize (the provider's redirect back), callback (the callback and its result page), status
 * (the bot's read of the outcome).
 */
export const FLOW_STEPS = ['start', 'open', 'form', 'authorize', 'callback', 'status'] as const
export type FlowStep = (typeof FLOW_STEPS)[number]

export interface FlowResult {
  readonly flows: number
  readonly seconds: number
  readonly flowsPerSec: number
  /** A whole sign-in as the driver saw it, provider included, over the successful ones. */
  readonly latency: Percentiles
  /** Each step's time per sign-in, over the successful ones. */
  readonly steps: Record<FlowStep, Percentiles>
  /** Our time per sign-in (the provider's own time taken out), over the successful ones. */
  readonly ours: Percentiles
  /** The provider's own time per sign-in (token + WhoAmI), as it reported it. */
  readonly provider: Percentiles
  readonly errors: number
  readonly firstError: string | null
  /** Every session id startEndUserAuth returned. */
  readonly sessionIds: readonly string[]
}

export interface MappingJob {
  readonly kind: 'mapping'
  readonly durationMs: number
}

export type Job = CannonJob | FlowJob | MappingJob

// ---------------------------------------------------------------------------------------------

async function cannon(job: CannonJob): Promise<CannonResult> {
  let counter = 0
  let bad = 0
  let firstError: string | null = null
  const note = (message: string) => {
    bad++
    firstError ??= message
  }
  const tag = `${process.pid}-${Date.now().toString(36)}`
  const graphql = job.target === 'service'
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (graphql) headers.authorization = `Bearer ${job.agentKey}`

  const body = (): string => {
    const n = counter++
    if (job.op === 'start') {
      const conversationId = `bench-${tag}-${n}`
      return graphql
        ? JSON.stringify({
            query: START_QUERY,
            variables: { input: { integrationId: job.integrationId, conversationId } },
          })
        : JSON.stringify({ conversationId })
    }
    if (job.op === 'typename') return TYPENAME_BODY
    const id = job.ids[n % job.ids.length]
    return graphql
      ? JSON.stringify({ query: POLL_QUERY, variables: { id } })
      : JSON.stringify({ id })
  }
  // What a good answer contains: the new session, or the session read.
  const expected =
    job.op === 'start'
      ? '"status":"PENDING"'
      : job.op === 'typename'
        ? '"__typename"'
        : '"status":"'
  const path = graphql ? '/graphql' : job.op === 'start' ? '/start' : '/status'

  const latencies: number[] = []
  let instance: autocannon.Instance | undefined
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url: job.url,
        connections: job.connections,
        duration: job.durationSec,
        ...(job.rate ? { overallRate: job.rate } : {}),
        requests: [
          {
            method: 'POST',
            path,
            headers,
            setupRequest: (req) => ({ ...req, body: body() }),
            onResponse: (status, text) => {
              if (status !== 200) note(`HTTP ${status}: ${text.slice(0, 200)}`)
              else if (!text.includes(expected) || text.includes('"errors"'))
                note(`unexpected answer: ${text.slice(0, 300)}`)
            },
          },
        ],
      },
      (error, result) => (error ? reject(error as Error) : resolve(result)),
    )
  })
  instance!.on('response', (_client, _status, _bytes, responseTime) => {
    latencies.push(responseTime)
  })
  const result = await finished
  const socketErrors = result.errors + result.timeouts
  if (socketErrors > 0) firstError ??= `${result.errors} socket errors, ${result.timeouts} timeouts`
  return {
    requests: result.requests.total,
    rps: result.requests.total / (result.duration || job.durationSec),
    latency: percentile(latencies),
    errors: bad + socketErrors,
    firstError,
    ...(job.keepLatencies ? { latencies } : {}),
  }
}

// ---------------------------------------------------------------------------------------------

class FlowError extends Error {}

async function expectStatus(response: Response, status: number, step: string): Promise<string> {
  const text = await response.text()
  if (response.status !== status)
    throw new FlowError(`${step}: HTTP ${response.status} ${text.slice(0, 200)}`)
  return text
}

async function flows(job: FlowJob): Promise<FlowResult> {
  const gql = (query: string, variables: Record<string, unknown>) =>
    fetch(`${job.serviceUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${job.agentKey}` },
      body: JSON.stringify({ query, variables }),
    })
  const records: Array<{ code: string; ms: number; total: number; steps: number[] }> = []
  const sessionIds: string[] = []
  let errors = 0
  let firstError: string | null = null
  let counter = 0
  const started = performance.now()
  const deadline = started + job.durationMs

  async function one(): Promise<void> {
    const t0 = performance.now()
    // Our time: every step but the provider's authorize.
    let ms = 0
    const steps = FLOW_STEPS.map(() => 0)
    const step = async <T>(name: FlowStep, work: () => Promise<T>): Promise<T> => {
      const t = performance.now()
      const value = await work()
      const took = performance.now() - t
      steps[FLOW_STEPS.indexOf(name)]! += took
      if (name !== 'authorize') ms += took
      return value
    }
    // 1. The bot starts a sign-in.
    const startText = await step('start', async () =>
      expectStatus(
        await gql(START_QUERY, {
          input: {
            integrationId: job.integrationId,
            conversationId: `${job.tag}-${process.pid}-${counter++}`,
          },
        }),
        200,
        'start',
      ),
    )
    const started = JSON.parse(startText) as {
      data?: { startEndUserAuth: { authorizationLink: string; session: { id: string } } }
      errors?: unknown
    }
    if (!started.data) throw new FlowError(`start: ${startText.slice(0, 300)}`)
    const sessionId = started.data.startEndUserAuth.session.id
    sessionIds.push(sessionId)
    const link = started.data.startEndUserAuth.authorizationLink
    // 2. The end user opens the link: the page (GET), then its Continue (POST).
    await step('open', async () =>
      expectStatus(await fetch(link, { redirect: 'manual' }), 200, 'link GET'),
    )
    const t = performance.now()
    const posted = await step('form', async () => {
      const response = await fetch(link, { method: 'POST', redirect: 'manual' })
      await expectStatus(response, 303, 'link POST')
      return response
    })
    steps[FLOW_STEPS.indexOf('open')]! += performance.now() - t
    const cookie = posted.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ')
    const authorize = posted.headers.get('location') ?? ''
    // 3. The provider (not ours: not in our time) sends the browser back with code and state.
    const back = await step('authorize', async () => {
      const response = await fetch(authorize, { redirect: 'manual' })
      await expectStatus(response, 302, 'authorize')
      return response
    })
    const callback = back.headers.get('location') ?? ''
    const code = new URL(callback).searchParams.get('code') ?? ''
    // 4. The callback: code exchange and WhoAmI at the provider; it answers 303 to the result
    // page (whose URL holds neither code nor state), which the browser then shows.
    const page = await step('callback', async () => {
      const answered = await fetch(callback, { headers: { cookie }, redirect: 'manual' })
      await expectStatus(answered, 303, 'callback')
      const result = new URL(answered.headers.get('location') ?? '', callback)
      return expectStatus(
        await fetch(result, { headers: { cookie }, redirect: 'manual' }),
        200,
        'result page',
      )
    })
    if (!page.includes('signed in'))
      throw new FlowError(`callback: not signed in: ${page.slice(0, 300)}`)
    // 5. The bot reads the outcome.
    const polled = await step('status', async () =>
      expectStatus(await gql(POLL_QUERY, { id: sessionId }), 200, 'status'),
    )
    if (!polled.includes('"status":"AUTHENTICATED"'))
      throw new FlowError(`status: ${polled.slice(0, 300)}`)
    records.push({ code, ms, total: performance.now() - t0, steps })
  }

  async function loop(): Promise<void> {
    while (performance.now() < deadline) {
      try {
        await one()
      } catch (error) {
        errors++
        firstError ??= error instanceof Error ? error.message : String(error)
      }
    }
  }
  await Promise.all(Array.from({ length: job.concurrency }, loop))
  const seconds = (performance.now() - started) / 1000

  // The provider's own time per sign-in, as it measured it.
  const providerMs = new Map<string, number>()
  for (let i = 0; i < records.length; i += 1000) {
    const codes = records.slice(i, i + 1000).map((r) => r.code)
    const answer = await fetch(`${job.providerUrl}/_timings`, {
      method: 'POST',
      body: JSON.stringify({ codes }),
    })
    for (const [code, ms] of Object.entries((await answer.json()) as Record<string, number>))
      providerMs.set(code, ms)
  }
  const provider = records.map((r) => providerMs.get(r.code) ?? 0)
  return {
    flows: records.length,
    seconds,
    flowsPerSec: records.length / seconds,
    latency: percentile(records.map((r) => r.total)),
    steps: Object.fromEntries(
      FLOW_STEPS.map((name, i) => [name, percentile(records.map((r) => r.steps[i]!))]),
    ) as Record<FlowStep, Percentiles>,
    ours: percentile(records.map((r, i) => r.ms - provider[i]!)),
    provider: percentile(provider),
    errors,
    firstError,
    sessionIds,
  }
}

// ---------------------------------------------------------------------------------------------

async function runJob(job: Job): Promise<unknown> {
  switch (job.kind) {
    case 'cannon':
      return cannon(job)
    case 'flow':
      return flows(job)
    case 'mapping':
      return benchMapping({ durationMs: job.durationMs })
  }
}

process.on('message', (job: Job) => {
  runJob(job).then(
    (result) => process.send?.({ ok: true, result }),
    (error: unknown) =>
      process.send?.({
        ok: false,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      }),
  )
})
process.on('disconnect', () => process.exit(0))
process.send?.({ ready: true })
