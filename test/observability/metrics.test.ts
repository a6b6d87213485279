/**
 * Prometheus metrics through real sign-ins: one that succeeds at oidc-provider and one the person
 * aborts there, GraphQL requests over both paths (yoga in process, the direct path over a socket),
 * hostile operation names and aliases, and rate-limit scopes. Each scrape reads /metrics over
 * HTTP from the metrics listener, and the counters must move by exactly what was done.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { schema } from '../../src/graphql/schema.ts'
import {
  RATE_LIMIT_SCOPES_MAX,
  recordRateLimited,
  startMetricsServer,
  type MetricsServer,
} from '../../src/observability/metrics.ts'
import { ScriptedBrowser } from '../helpers/browser.ts'
import {
  CANCEL,
  complete,
  createFlowApp,
  poll,
  postLink,
  seedProviderIntegration,
  start,
  type SeededIntegration,
} from '../helpers/flow.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import {
  createPgDatabase,
  killLeftovers,
  startServiceProcess,
  tempDataDir,
  type TempDir,
} from '../helpers/spawn.ts'
import { requestOverSocket, type SeededTenant, type TestApp } from '../helpers/test-app.ts'
import { TEST_DATABASE_URL } from '../helpers/test-db.ts'

interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** The samples of a Prometheus text exposition (no escaped quotes occur in our label values). */
function parse(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!match) throw new Error(`unparsed metrics line: ${line}`)
    const labels: Record<string, string> = {}
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[pair[1]!] = pair[2]!
    samples.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return samples
}

/** The sum of the samples named `name` whose labels include `labels`. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)
}

describe('metrics', () => {
  let t: TestApp
  let provider: TestProvider
  let tenant: SeededTenant
  let integration: SeededIntegration
  let metrics: MetricsServer

  const scrape = async (): Promise<{ text: string; samples: Sample[] }> => {
    const response = await fetch(metrics.url)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await response.text()
    return { text, samples: parse(text) }
  }

  beforeAll(async () => {
    t = await createFlowApp()
    provider = await startTestProvider({
      accounts: { mary: { email: 'mary@example.com', name: 'Mary Ann' } },
    })
    tenant = await t.seedTenant('metrics')
    integration = await seedProviderIntegration(
      t,
      tenant,
      provider,
      { clientId: 'metrics-client', clientSecret: 'metrics-secret-0123456789' },
      { whoAmIMapping: '{userName: sub, fullName: name, email: email}', issuer: provider.issuer },
    )
    metrics = await startMetricsServer({ host: '127.0.0.1', port: 0 })
  })

  afterAll(async () => {
    await metrics?.close()
    await t?.close()
    await provider?.close()
  })

  it('serves only GET /metrics, on its own port, never on the public one', async () => {
    expect(metrics.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    const other = await fetch(new URL('/graphql', metrics.url))
    expect(other.status).toBe(404)
    expect(await other.text()).not.toContain('euo_')
    const post = await fetch(metrics.url, { method: 'POST' })
    expect(post.status).toBe(404)
    const publicPort = await t.fetch('/metrics')
    expect(publicPort.status).not.toBe(200)
    expect(await publicPort.text()).not.toContain('euo_')
  })

  it('counts sign-ins started and ended by outcome, with durations and provider calls', async () => {
    const before = (await scrape()).samples

    // One that succeeds...
    const ok = await start(t, tenant.agentKey, {
      integrationId: integration.id,
      conversationId: 'metrics-ok',
    })
    const okBrowser = new ScriptedBrowser()
    await complete(okBrowser, await postLink(okBrowser, ok.authorizationLink), 'mary')
    expect((await poll(t, tenant.agentKey, ok.session.id))!.status).toBe('AUTHENTICATED')
    // ...and one the person aborts at the provider.
    const aborted = await start(t, tenant.agentKey, {
      integrationId: integration.id,
      conversationId: 'metrics-abort',
    })
    const abortBrowser = new ScriptedBrowser()
    await complete(abortBrowser, await postLink(abortBrowser, aborted.authorizationLink), 'mary', {
      abort: true,
    })
    const failed = await poll(t, tenant.agentKey, aborted.session.id)
    expect(failed!.status).toBe('FAILED')
    expect(failed!.failure!.code).toBe('access_denied')

    const after = (await scrape()).samples
    const delta = (name: string, labels: Record<string, string> = {}) =>
      value(after, name, labels) - value(before, name, labels)

    expect(delta('euo_sign_ins_started_total')).toBe(2)
    expect(delta('euo_sign_ins_ended_total')).toBe(2)
    expect(delta('euo_sign_ins_ended_total', { outcome: 'AUTHENTICATED' })).toBe(1)
    expect(
      delta('euo_sign_ins_ended_total', { outcome: 'FAILED', failure_code: 'access_denied' }),
    ).toBe(1)
    expect(delta('euo_sign_in_duration_seconds_count', { outcome: 'AUTHENTICATED' })).toBe(1)
    expect(delta('euo_sign_in_duration_seconds_count', { outcome: 'FAILED' })).toBe(1)
    // Both took a few seconds at most: every sample sits in the buckets up to 30 s.
    expect(
      delta('euo_sign_in_duration_seconds_bucket', { outcome: 'AUTHENTICATED', le: '30' }),
    ).toBe(1)

    // The aborted sign-in never reached the token endpoint; the other called it and WhoAmI once.
    expect(provider.tokenRequests()).toBe(1)
    expect(delta('euo_provider_call_duration_seconds_count', { step: 'token' })).toBe(1)
    expect(
      delta('euo_provider_call_duration_seconds_count', { step: 'token', outcome: 'ok' }),
    ).toBe(1)
    expect(
      delta('euo_provider_call_duration_seconds_count', { step: 'whoami', outcome: 'ok' }),
    ).toBe(1)
    expect(delta('euo_provider_call_duration_seconds_count', { step: 'jwks' })).toBe(
      provider.jwksRequests(),
    )

    // The GraphQL calls of the flow: two starts and two polls.
    expect(
      delta('euo_graphql_operations_total', {
        type: 'mutation',
        operation: 'startEndUserAuth',
        result: 'ok',
      }),
    ).toBe(2)
    expect(
      delta('euo_graphql_operations_total', {
        type: 'query',
        operation: 'authSession',
        result: 'ok',
      }),
    ).toBe(2)
    expect(
      delta('euo_graphql_operation_duration_seconds_count', {
        type: 'mutation',
        operation: 'startEndUserAuth',
      }),
    ).toBe(2)
  })

  it('counts a cancelled sign-in and one superseded by a new start as CANCELLED', async () => {
    const before = (await scrape()).samples
    const input = { integrationId: integration.id, conversationId: 'metrics-cancel' }
    await start(t, tenant.agentKey, input)
    // The same conversation again: the first session is superseded (CANCELLED).
    const second = await start(t, tenant.agentKey, input)
    const cancelled = await t.gql(tenant.agentKey, CANCEL, { id: second.session.id })
    expect(cancelled.errors).toBeUndefined()
    const after = (await scrape()).samples
    const delta = (name: string, labels: Record<string, string> = {}) =>
      value(after, name, labels) - value(before, name, labels)
    expect(delta('euo_sign_ins_started_total')).toBe(2)
    expect(delta('euo_sign_ins_ended_total')).toBe(2)
    expect(delta('euo_sign_ins_ended_total', { outcome: 'CANCELLED' })).toBe(2)
    expect(delta('euo_sign_in_duration_seconds_count', { outcome: 'CANCELLED' })).toBe(2)
  })

  it('names GraphQL operations by root field only, whatever the client calls them, on both paths', async () => {
    const before = (await scrape()).samples
    const hostile = 'Evil_0p3ration_N4me'
    const alias = 'evilAlias7731'
    // Through yoga (in process)...
    const viaYoga = await t.gql(tenant.agentKey, `query ${hostile} { ${alias}: viewer { role } }`)
    expect(viaYoga.errors).toBeUndefined()
    // ...and through the direct path (a plain POST over the socket).
    const direct = t.app.directGraphQL.answered
    const base = await t.listen()
    const viaSocket = await requestOverSocket(
      base,
      new Request(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tenant.agentKey}` },
        body: JSON.stringify({ query: `query ${hostile}2 { ${alias}: viewer { role } }` }),
      }),
    )
    expect(viaSocket.status).toBe(200)
    expect(t.app.directGraphQL.answered).toBe(direct + 1)
    // Not a root field of the schema: "other". Unauthenticated: counted as an error.
    await t.gql(tenant.agentKey, `query ${hostile}3 { __typename }`)
    const denied = await t.gql(null, `query ${hostile}4 { viewer { role } }`)
    expect(denied.errors).toBeDefined()

    const { text, samples: after } = await scrape()
    const delta = (labels: Record<string, string>) =>
      value(after, 'euo_graphql_operations_total', labels) -
      value(before, 'euo_graphql_operations_total', labels)
    expect(delta({ type: 'query', operation: 'viewer', result: 'ok' })).toBe(2)
    expect(delta({ type: 'query', operation: 'other', result: 'ok' })).toBe(1)
    expect(delta({ type: 'query', operation: 'viewer', result: 'error' })).toBe(1)

    expect(text).not.toContain(hostile)
    expect(text).not.toContain(alias)
    const rootFields = new Set(
      [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].flatMap(
        (type) => (type ? Object.keys(type.getFields()) : []),
      ),
    )
    for (const sample of after.filter((s) => s.name.startsWith('euo_graphql_'))) {
      expect(['query', 'mutation', 'subscription']).toContain(sample.labels.type)
      const operation = sample.labels.operation!
      expect(operation === 'other' || rootFields.has(operation)).toBe(true)
    }
  })

  it('counts rate-limited requests by scope, with a bounded set of scopes', async () => {
    const before = (await scrape()).samples
    recordRateLimited('api_key')
    recordRateLimited('api_key')
    recordRateLimited('link')
    // A key, an address or an upper-case name passed by mistake is not a label value.
    recordRateLimited('euo_SECRETKEY_0123')
    recordRateLimited('203.0.113.7 ')
    for (let i = 0; i < RATE_LIMIT_SCOPES_MAX + 5; i++) recordRateLimited(`scope_${i}`)
    const { text, samples: after } = await scrape()
    const delta = (scope: string) =>
      value(after, 'euo_rate_limited_total', { scope }) -
      value(before, 'euo_rate_limited_total', { scope })
    expect(delta('api_key')).toBe(2)
    expect(delta('link')).toBe(1)
    expect(text).not.toContain('SECRETKEY')
    expect(text).not.toContain('203.0.113.7')
    const scopes = new Set(
      after.filter((s) => s.name === 'euo_rate_limited_total').map((s) => s.labels.scope),
    )
    expect(scopes.size).toBeLessThanOrEqual(RATE_LIMIT_SCOPES_MAX + 1)
    expect(scopes.has('other')).toBe(true)
    expect(value(after, 'euo_rate_limited_total')).toBe(
      value(before, 'euo_rate_limited_total') + 5 + RATE_LIMIT_SCOPES_MAX + 5,
    )
  })

  it('exports the process metrics with the euo_ prefix', async () => {
    const { samples } = await scrape()
    const names = new Set(samples.map((s) => s.name))
    expect(names.has('euo_process_cpu_user_seconds_total')).toBe(true)
    expect(names.has('euo_nodejs_heap_size_used_bytes')).toBe(true)
    for (const name of names) expect(name.startsWith('euo_')).toBe(true)
  })
})

describe('npm start with METRICS_PORT', () => {
  let data: TempDir | undefined
  let database: { url: string; drop(): Promise<void> } | undefined
  afterAll(async () => {
    killLeftovers()
    await database?.drop()
    data?.remove()
  })

  it('serves /metrics on HOST:METRICS_PORT, apart from the public port, until it stops', async () => {
    data = tempDataDir()
    database = TEST_DATABASE_URL ? await createPgDatabase(TEST_DATABASE_URL) : undefined
    const service = await startServiceProcess({
      DATA_DIR: data.dir,
      METRICS_PORT: '0',
      ...(database ? { DATABASE_URL: database.url } : {}),
    })
    const line = service.logs().find((l) => l.msg === 'metrics listening')
    expect(line?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    const url = line!.url as string
    expect(new URL(url).port).not.toBe(new URL(service.url).port)
    const scraped = await fetch(url)
    expect(scraped.status).toBe(200)
    const text = await scraped.text()
    expect(text).toContain('# TYPE euo_sign_ins_started_total counter')
    expect(text).toContain('euo_process_resident_memory_bytes')
    expect((await fetch(`${service.url}/metrics`)).status).toBe(404)
    expect(await service.stop()).toEqual({ code: 0, signal: null })
    await expect(fetch(url)).rejects.toThrow()
  })
})
