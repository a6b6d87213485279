/**
 * The event loop stays free: the service as `npm start` runs it, with its default limits, gets
 * the heaviest requests those limits admit, back to back from several clients, while /healthz is
 * timed. Before the limits, 3,000 aliased authSession reads held the whole process (/healthz
 * included) for 4.6 s; the bound here (1 s) leaves room for a loaded CI machine, and `npm run
 * bench` (hostile) measures the figure that counts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { getIntrospectionQuery } from 'graphql'
import { TEST_DATABASE_URL } from '../helpers/test-db.ts'
import {
  cli,
  createPgDatabase,
  killLeftovers,
  startServiceProcess,
  tempDataDir,
  type ServiceProcess,
  type TempDir,
} from '../helpers/spawn.ts'

let service: ServiceProcess
let data: TempDir
let dropDatabase: (() => Promise<void>) | undefined
let env: Record<string, string>
let adminKey: string
let agentKey: string
let integrationId: string

async function post(key: string, query: string, variables?: unknown) {
  const response = await fetch(`${service.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  })
  return {
    status: response.status,
    body: (await response.json()) as { data?: Record<string, unknown> | null; errors?: unknown[] },
  }
}

beforeAll(async () => {
  data = tempDataDir()
  env = { DATA_DIR: data.dir, ENCRYPTION_KEY: 'k'.repeat(40) }
  if (TEST_DATABASE_URL) {
    const database = await createPgDatabase(TEST_DATABASE_URL)
    dropDatabase = database.drop
    env.DATABASE_URL = database.url
  }
  service = await startServiceProcess(env)
  const created = await cli(['tenant', 'create', 'hostile'], env)
  expect(created.code, created.stderr).toBe(0)
  adminKey = (JSON.parse(created.stdout) as { apiKey: string }).apiKey
  const agent = await cli(['apikey', 'create', 'hostile', '--role', 'AGENT'], env)
  agentKey = (JSON.parse(agent.stdout) as { apiKey: string }).apiKey
  const integration = await post(
    adminKey,
    `mutation ($input: CreateOAuthIntegrationInput!) { createOAuthIntegration(input: $input) { integration { id } } }`,
    {
      input: {
        name: 'Hostile',
        clientId: 'client',
        clientSecret: 'secret-Zq8vXw3nP1',
        authorizationUrl: 'https://idp.example.com/authorize',
        tokenUrl: 'https://idp.example.com/token',
      },
    },
  )
  expect(integration.body.errors).toBeUndefined()
  integrationId = (
    integration.body.data as { createOAuthIntegration: { integration: { id: string } } }
  ).createOAuthIntegration.integration.id
}, 120_000)

afterAll(async () => {
  await service?.stop()
  killLeftovers()
  await dropDatabase?.()
  data?.remove()
})

/** A 1 MiB WhoAmI answer and a mapping that runs into the engine's time budget on it. */
const PAYLOAD = {
  items: Array.from({ length: 19_000 }, (_, i) => ({
    id: `user-${i}`,
    name: `Name ${i}`,
    tags: ['a', 'b'],
  })),
}
const HEAVY_MAPPING = '{userName: to_string(length(items[*].tags[*].[@, @, @]))}'

let conversation = 0

/** The heaviest requests the default limits admit, and main's 3,000-alias stall, in turn. */
const HOSTILE: ReadonlyArray<() => Promise<{ status: number; admitted: boolean }>> = [
  async () => {
    const answer = await post(
      agentKey,
      `mutation ($input: TestWhoAmIMappingInput!) { testWhoAmIMapping(input: $input) { identity { userName } errors { message } } }`,
      { input: { mapping: HEAVY_MAPPING, payload: PAYLOAD } },
    )
    return { status: answer.status, admitted: answer.body.data?.testWhoAmIMapping != null }
  },
  async () => {
    const starts = Array.from(
      { length: 5 },
      (_, i) =>
        `s${i}: startEndUserAuth(input: { integrationId: "${integrationId}", conversationId: "c-${++conversation}" }) { authorizationLink message { text } session { id status expiresAt } }`,
    )
    const answer = await post(agentKey, `mutation { ${starts.join(' ')} }`)
    return { status: answer.status, admitted: answer.body.data?.s4 != null }
  },
  async () => {
    const answer = await post(agentKey, getIntrospectionQuery({ descriptions: true }))
    return { status: answer.status, admitted: answer.body.data?.__schema != null }
  },
  async () => {
    const reads = Array.from(
      { length: 3000 },
      (_, i) => `a${i}: authSession(id: "00000000-0000-4000-8000-000000000000") { id status }`,
    )
    const answer = await post(agentKey, `{ ${reads.join(' ')} }`)
    // Refused, by the token limit: cheap, and part of the traffic all the same.
    return { status: answer.status, admitted: false }
  },
]

async function healthzLatencies(until: () => boolean): Promise<number[]> {
  const latencies: number[] = []
  while (!until()) {
    const started = performance.now()
    const response = await fetch(`${service.url}/healthz`)
    await response.arrayBuffer()
    latencies.push(performance.now() - started)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return latencies
}

describe('hostile requests within the limits', () => {
  it('never hold /healthz for a second', async () => {
    // Warm up (the first requests compile code paths), and check each kind is really admitted.
    for (const send of HOSTILE.slice(0, 3)) expect((await send()).admitted).toBe(true)

    let done = false
    const admitted: boolean[] = []
    const clients = Array.from({ length: 3 }, async (_, client) => {
      let i = client
      while (!done) {
        const result = await HOSTILE[i++ % HOSTILE.length]!()
        admitted.push(result.admitted)
      }
    })
    const latencies = healthzLatencies(() => done)
    await new Promise((resolve) => setTimeout(resolve, 5_000))
    done = true
    const [measured] = await Promise.all([latencies, ...clients])
    const sorted = [...measured].sort((a, b) => a - b)
    const p99 = sorted[Math.floor(sorted.length * 0.99)] ?? Infinity
    const worst = sorted[sorted.length - 1] ?? Infinity
    console.log(
      `/healthz under hostile traffic: ${sorted.length} checks, p99 ${p99.toFixed(1)} ms, worst ${worst.toFixed(1)} ms; ${admitted.filter(Boolean).length} heavy requests admitted`,
    )
    expect(admitted.filter(Boolean).length).toBeGreaterThan(3)
    expect(sorted.length).toBeGreaterThan(20)
    expect(worst).toBeLessThan(1000)
  }, 60_000)
})
