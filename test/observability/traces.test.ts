/**
 * Traces of the real service process (`npm start`'s bundle) with OTEL_EXPORTER_OTLP_ENDPOINT
 * pointing at an OTLP/HTTP receiver in this test: a whole sign-in (GraphQL start, the link page and
 * its POST, the callback, token and WhoAmI calls to a scripted provider, polls), then the spans it
 * produced: HTTP routes named by template, GraphQL operations on both paths, PostgreSQL queries
 * (on PostgreSQL), the provider's token call with undici's request span under it. Then the whole
 * received payload is searched for every secret of the sign-in: none may appear.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { ScriptedBrowser } from '../helpers/browser.ts'
import { json, startFakeProvider, type FakeProvider } from '../helpers/fake-provider.ts'
import { START, CREATE_INTEGRATION, arriveAtCallback, postLink } from '../helpers/flow.ts'
import {
  cli,
  createPgDatabase,
  killLeftovers,
  startServiceProcess,
  tempDataDir,
  type ServiceProcess,
  type TempDir,
  freePort,
} from '../helpers/spawn.ts'
import { TEST_DATABASE_URL } from '../helpers/test-db.ts'
import { SHUTDOWN_MS } from '../../src/observability/tracing.ts'

interface OtlpAttribute {
  readonly key: string
  readonly value: { readonly stringValue?: string; readonly intValue?: string | number }
}

interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly name: string
  readonly kind: number
  readonly attributes?: readonly OtlpAttribute[]
}

interface OtlpPayload {
  readonly resourceSpans?: ReadonlyArray<{
    readonly resource?: { readonly attributes?: readonly OtlpAttribute[] }
    readonly scopeSpans?: ReadonlyArray<{
      readonly scope?: { readonly name?: string }
      readonly spans?: readonly OtlpSpan[]
    }>
  }>
}

interface Span extends OtlpSpan {
  readonly scope: string
  readonly attrs: Readonly<Record<string, string>>
}

/** An OTLP/HTTP receiver: POST /v1/traces with JSON bodies, kept as they came. */
async function startReceiver(): Promise<{
  readonly url: string
  readonly bodies: string[]
  readonly contentTypes: string[]
  spans(): Span[]
  close(): Promise<void>
}> {
  const bodies: string[] = []
  const contentTypes: string[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end()
        return
      }
      bodies.push(Buffer.concat(chunks).toString('utf8'))
      contentTypes.push(req.headers['content-type'] ?? '')
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url,
    bodies,
    contentTypes,
    spans: () =>
      bodies.flatMap((body) =>
        ((JSON.parse(body) as OtlpPayload).resourceSpans ?? []).flatMap((resource) =>
          (resource.scopeSpans ?? []).flatMap((scope) =>
            (scope.spans ?? []).map((span) => ({
              ...span,
              scope: scope.scope?.name ?? '',
              attrs: Object.fromEntries(
                (span.attributes ?? []).map((a) => [
                  a.key,
                  String(a.value.stringValue ?? a.value.intValue ?? ''),
                ]),
              ),
            })),
          ),
        ),
      ),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

async function gql<T>(
  base: string,
  key: string,
  query: string,
  variables: Record<string, unknown>,
  init: { readonly accept?: string } = {},
): Promise<T> {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${key}`,
      ...(init.accept ? { accept: init.accept } : {}),
    },
    body: JSON.stringify({ query, variables }),
  })
  const body = (await response.json()) as { data?: T; errors?: unknown }
  expect(body.errors).toBeUndefined()
  return body.data!
}

const ACCESS_TOKEN = `at-${randomBytes(12).toString('hex')}`
const CODE = `code-${randomBytes(12).toString('hex')}`
const CLIENT_SECRET = `secret-${randomBytes(12).toString('hex')}`
const ENCRYPTION_KEY = `ek-${randomBytes(24).toString('hex')}`

describe('traces of the service process over OTLP/HTTP', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>
  let idp: FakeProvider
  let data: TempDir
  let database: { url: string; drop(): Promise<void> } | undefined
  let service: ServiceProcess | undefined
  /** Every secret value of the sign-in, by what it is. */
  const secrets: Record<string, string> = {
    'access token': ACCESS_TOKEN,
    'authorization code': CODE,
    'client secret': CLIENT_SECRET,
    'encryption key': ENCRYPTION_KEY,
  }

  beforeAll(async () => {
    receiver = await startReceiver()
    idp = await startFakeProvider()
    data = tempDataDir()
    database = TEST_DATABASE_URL ? await createPgDatabase(TEST_DATABASE_URL) : undefined
  })

  afterAll(async () => {
    killLeftovers()
    await receiver?.close()
    await idp?.close()
    await database?.drop()
    data?.remove()
  })

  it('traces a whole sign-in, with templated routes and no secret anywhere', async () => {
    const port = await freePort()
    const base = `http://127.0.0.1:${port}`
    const env = {
      PORT: String(port),
      PUBLIC_BASE_URL: base,
      DATA_DIR: data.dir,
      ENCRYPTION_KEY,
      OUTBOUND_ALLOW_HOSTS: '127.0.0.1',
      ...(database ? { DATABASE_URL: database.url } : {}),
    }
    service = await startServiceProcess({
      ...env,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      OTEL_SERVICE_NAME: 'euo-trace-test',
    })
    const created = await cli(['tenant', 'create', 'traced'], env)
    expect(created.code).toBe(0)
    const apiKey = (JSON.parse(created.stdout) as { apiKey: string }).apiKey
    secrets['API key'] = apiKey

    const integration = await gql<{
      createOAuthIntegration: { integration: { id: string; redirectUrls: string[] } }
    }>(base, apiKey, CREATE_INTEGRATION, {
      input: {
        name: 'traced',
        clientId: 'traced-client',
        clientSecret: CLIENT_SECRET,
        authorizationUrl: idp.url('/authorize'),
        tokenUrl: idp.url('/token'),
        whoAmIUrl: idp.url('/me'),
        whoAmIMapping: '{userName: login, email: email}',
      },
    })
    const { id: integrationId, redirectUrls } = integration.createOAuthIntegration.integration
    const callbackKey = new URL(redirectUrls[0]!).pathname.split('/').pop()!
    secrets['callback key'] = callbackKey

    // Started over the direct path (a plain JSON POST)...
    const started = await gql<{
      startEndUserAuth: { authorizationLink: string; session: { id: string } }
    }>(base, apiKey, START, {
      input: { integrationId, conversationId: 'traced-conversation' },
    })
    const { authorizationLink, session } = started.startEndUserAuth
    secrets['link token'] = new URL(authorizationLink).pathname.slice('/l/'.length)

    idp.on('GET', '/authorize', (req, res) => {
      const back = new URL(req.query.get('redirect_uri')!)
      back.searchParams.set('code', CODE)
      back.searchParams.set('state', req.query.get('state')!)
      res.writeHead(302, { location: back.href, connection: 'close' }).end()
    })
    idp.on('POST', '/token', json({ access_token: ACCESS_TOKEN, token_type: 'bearer' }))
    idp.on('GET', '/me', json({ login: 'ada', email: 'ada@example.com' }))

    const browser = new ScriptedBrowser()
    const page = await browser.request(authorizationLink)
    expect(page.status).toBe(200)
    const authorizationUrl = await postLink(browser, authorizationLink)
    secrets.state = authorizationUrl.searchParams.get('state')!
    secrets['PKCE challenge'] = authorizationUrl.searchParams.get('code_challenge')!
    const cookies = [...browser.cookies(new URL(base).host).values()]
    expect(cookies.length).toBeGreaterThan(0)
    cookies.forEach((value, i) => (secrets[`cookie ${i}`] = value))

    const authorized = await browser.follow(authorizationUrl.href, {}, () => true)
    const callback = authorized.url
    expect(new URL(callback).searchParams.get('code')).toBe(CODE)
    const arrived = await arriveAtCallback(browser, callback)
    expect(arrived.callbackResponse.status).toBe(303)
    const token = idp.requestsTo('/token')[0]!
    secrets['PKCE verifier'] = token.form.get('code_verifier')!
    expect(idp.requestsTo('/me')[0]!.headers.authorization).toBe(`Bearer ${ACCESS_TOKEN}`)

    // ...and polled through yoga (a GET, which the direct path leaves to it), with a query string.
    const query = new URLSearchParams({
      query: 'query ($id: ID!) { authSession(id: $id) { status } }',
      variables: JSON.stringify({ id: session.id }),
    })
    const polledResponse = await fetch(`${base}/graphql?${query}`, {
      headers: { authorization: `Bearer ${apiKey}`, accept: 'application/json' },
    })
    const polled = (await polledResponse.json()) as { data: { authSession: { status: string } } }
    secrets['session id'] = session.id
    expect(polled.data.authSession.status).toBe('AUTHENTICATED')

    // SIGTERM: the service sends what it still holds before it exits.
    expect(await service.stop()).toEqual({ code: 0, signal: null })
    service = undefined

    const spans = receiver.spans()
    expect(receiver.contentTypes.every((type) => type.startsWith('application/json'))).toBe(true)
    const resource = JSON.parse(receiver.bodies[0]!) as OtlpPayload
    expect(JSON.stringify(resource.resourceSpans?.[0]?.resource)).toContain('euo-trace-test')

    const server = spans.filter((s) => s.kind === 2)
    const names = new Set(server.map((s) => s.name))
    expect(names).toContain('POST /graphql')
    expect(names).toContain('GET /graphql')
    expect(names).toContain('GET /l/:token')
    expect(names).toContain('POST /l/:token')
    expect(names).toContain('GET /idp/eu/oauth/callback/:callbackKey')
    expect(names).toContain('GET /r/:sessionId')
    const callbackSpan = server.find((s) => s.name.startsWith('GET /idp/'))!
    expect(callbackSpan.attrs['http.route']).toBe('/idp/eu/oauth/callback/:callbackKey')
    expect(callbackSpan.attrs['http.target'] ?? callbackSpan.attrs['url.path']).toBe(
      '/idp/eu/oauth/callback/:callbackKey',
    )

    // GraphQL operations, on the direct path and on yoga, each under its HTTP span.
    const operations = spans.filter((s) => s.attrs['graphql.operation.type'] !== undefined)
    const start = operations.find((s) => s.name === 'mutation startEndUserAuth')
    const poll = operations.find((s) => s.name === 'query authSession')
    expect(start).toBeDefined()
    expect(poll).toBeDefined()
    const parentOf = (span: Span) => spans.find((s) => s.spanId === span.parentSpanId)
    expect(parentOf(start!)?.name).toBe('POST /graphql')
    expect(parentOf(poll!)?.name).toBe('GET /graphql')
    expect(parentOf(poll!)?.attrs['url.path'] ?? parentOf(poll!)?.attrs['http.target']).toBe(
      '/graphql',
    )

    // The provider calls: a span per step, undici's request span under it.
    const tokenCall = spans.find((s) => s.name === 'provider token')
    const whoAmICall = spans.find((s) => s.name === 'provider whoami')
    expect(tokenCall?.attrs['server.address']).toBe('127.0.0.1')
    expect(whoAmICall).toBeDefined()
    const tokenRequest = spans.find((s) => s.parentSpanId === tokenCall!.spanId)
    expect(tokenRequest?.scope).toBe('@opentelemetry/instrumentation-undici')
    expect(tokenRequest?.kind).toBe(3)
    expect(tokenRequest?.attrs['url.full']).toBe(idp.url('/token'))
    // Within the callback's trace.
    expect(tokenCall!.traceId).toBe(callbackSpan.traceId)

    // Database queries, on PostgreSQL (the embedded database is not reached through pg).
    const queries = spans.filter((s) => s.scope === '@opentelemetry/instrumentation-pg')
    if (database) {
      expect(queries.length).toBeGreaterThan(0)
      const statements = queries.map((s) => s.attrs['db.statement'] ?? s.attrs['db.query.text'])
      expect(statements.some((text) => /insert into "auth_sessions"/i.test(text ?? ''))).toBe(true)
      expect(statements.some((text) => /\$1/.test(text ?? ''))).toBe(true)
      expect(queries.some((q) => q.traceId === callbackSpan.traceId)).toBe(true)
    } else {
      expect(queries).toEqual([])
    }

    const payload = receiver.bodies.join('\n')
    for (const [what, value] of Object.entries(secrets)) {
      expect(value.length, what).toBeGreaterThanOrEqual(8)
      expect(payload.includes(value), `${what} in a span`).toBe(false)
    }
    const keys = spans.flatMap((s) => Object.keys(s.attrs))
    expect(keys.filter((key) => /authorization|cookie|header/i.test(key))).toEqual([])
    expect(payload).not.toMatch(/[?&](code|state)=/)
  })

  it('exits promptly on SIGTERM when the collector does not answer', async () => {
    // Accepts the export and never answers: the exporter alone would wait for its 10 s timeout.
    const requests: string[] = []
    const silent = createServer((req) => requests.push(req.url ?? ''))
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`
    onTestFinished(
      () =>
        new Promise<void>((resolve) => {
          silent.closeAllConnections()
          silent.close(() => resolve())
        }),
    )
    service = await startServiceProcess({
      DATA_DIR: data.dir,
      ENCRYPTION_KEY,
      ...(database ? { DATABASE_URL: database.url } : {}),
      OTEL_EXPORTER_OTLP_ENDPOINT: silentUrl,
      OTEL_BSP_SCHEDULE_DELAY: '60000',
    })
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200)
    const stopping = Date.now()
    expect(await service.stop()).toEqual({ code: 0, signal: null })
    service = undefined
    // The close itself plus at most SHUTDOWN_MS for the spans nobody receives.
    expect(Date.now() - stopping).toBeLessThan(SHUTDOWN_MS + 3000)
    expect(requests).toContain('/v1/traces')
  })
})
