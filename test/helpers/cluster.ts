/**
 * Several service processes on one PostgreSQL database, and what the cluster tests do with them:
 * seed a tenant through the CLI, drive sign-ins over plain HTTP against any instance (the
 * session's links and callback URLs are the same for every instance, as behind a load balancer:
 * the driver sends each request to the instance it names), read `authSessionUpdated` over
 * server-sent events, and a test provider whose token endpoint can hold requests.
 */
import { hiddenFields } from './browser.ts'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { expect } from 'vitest'
import { START, SUBSCRIBE, type Started, type SessionUpdate } from './flow.ts'
import { cli, startServiceProcess, type ServiceProcess } from './spawn.ts'

export const ENCRYPTION_KEY = 'cluster-test-key-0123456789abcdef0123456789'
/** What every instance puts into links and callback URLs; requests go to an instance instead. */
export const PUBLIC_BASE_URL = 'http://public.test:8080'

/** An instance of the service on `databaseUrl` (the same env for every instance). */
export function startInstance(
  databaseUrl: string,
  extra: Record<string, string> = {},
): Promise<ServiceProcess> {
  return startServiceProcess({
    DATABASE_URL: databaseUrl,
    ENCRYPTION_KEY,
    PUBLIC_BASE_URL,
    OUTBOUND_ALLOW_HOSTS: '127.0.0.1',
    LOG_LEVEL: 'info',
    // Dozens of sign-ins from one address in seconds: these tests are about instances, and the
    // limits have tests of their own (test/limits, shared across instances among them).
    RATE_LIMITS: 'off',
    ...extra,
  })
}

/** `url` with the origin of `instance`: the same request, sent to that instance. */
export function at(instance: { url: string }, url: string): string {
  const target = new URL(url)
  const base = new URL(instance.url)
  target.protocol = base.protocol
  target.host = base.host
  return target.href
}

export interface Seeded {
  readonly adminKey: string
  readonly agentKey: string
  readonly agentKeyId: string
}

/**
 * A tenant made by the CLI on the database directly (its ADMIN key), and an AGENT key made through
 * `instance`.
 */
export async function seedTenant(
  databaseUrl: string,
  slug: string,
  instance: { url: string },
): Promise<Seeded> {
  const tenant = await cli(['tenant', 'create', slug], {
    DATABASE_URL: databaseUrl,
    ENCRYPTION_KEY,
  })
  expect(tenant.stderr).toBe('')
  const adminKey = (JSON.parse(tenant.stdout) as { apiKey: string }).apiKey
  const agent = await gql<{ createApiKey: { apiKey: string; keyId: string } }>(
    instance,
    adminKey,
    'mutation { createApiKey(role: AGENT, label: "cluster test") { apiKey keyId } }',
  )
  expect(agent.errors).toBeUndefined()
  const { apiKey: agentKey, keyId } = agent.data!.createApiKey
  return { adminKey, agentKey, agentKeyId: keyId }
}

export interface GqlAnswer<T> {
  readonly status: number
  readonly data?: T | null
  readonly errors?: ReadonlyArray<{ message: string; extensions?: { code?: string } }>
}

export async function gql<T>(
  instance: { url: string },
  key: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<GqlAnswer<T>> {
  const response = await fetch(`${instance.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  })
  const body = (await response.json()) as Omit<GqlAnswer<T>, 'status'>
  return { status: response.status, ...body }
}

export const CREATE_INTEGRATION = `mutation ($input: CreateOAuthIntegrationInput!) {
  createOAuthIntegration(input: $input) { integration { id } }
}`

/** An integration signing in at `provider`, created through `instance`. */
export async function seedIntegration(
  instance: { url: string },
  adminKey: string,
  provider: HoldingProvider,
  input: Record<string, unknown> = {},
): Promise<string> {
  const created = await gql<{ createOAuthIntegration: { integration: { id: string } } }>(
    instance,
    adminKey,
    CREATE_INTEGRATION,
    {
      input: {
        name: 'cluster provider',
        clientId: 'cluster-client',
        clientSecret: 'cluster-secret-0123456789abcdef',
        scope: 'profile email',
        authorizationUrl: `${provider.url}/authorize`,
        tokenUrl: `${provider.url}/token`,
        whoAmIUrl: `${provider.url}/whoami`,
        whoAmIMapping: '{userName: user.id, email: user.email}',
        ...input,
      },
    },
  )
  expect(created.errors).toBeUndefined()
  return created.data!.createOAuthIntegration.integration.id
}

/** A sign-in started and its link opened (OPENED): what the callback needs. */
export interface Opened {
  readonly sessionId: string
  readonly authorizationUrl: URL
  readonly cookie: string
  /** The callback the provider would send the browser to (on the public URL). */
  readonly callback: string
}

let conversations = 0

/** startEndUserAuth on `startOn`, then the link's page and its POST (Continue) on `openOn`. */
export async function openSignIn(
  startOn: { url: string },
  openOn: { url: string },
  agentKey: string,
  integrationId: string,
): Promise<Opened> {
  const started = await gql<Started>(startOn, agentKey, START, {
    input: { integrationId, conversationId: `conversation-${process.pid}-${++conversations}` },
  })
  expect(started.errors).toBeUndefined()
  const { authorizationLink, session } = started.data!.startEndUserAuth
  const page = await fetch(at(openOn, authorizationLink))
  expect(page.status).toBe(200)
  // As a browser submits the page's form: with its hidden fields.
  const form = new URLSearchParams(hiddenFields(await page.text()))
  const posted = await fetch(at(openOn, authorizationLink), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
  })
  expect(posted.status).toBe(303)
  const cookie = posted.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ')
  const authorizationUrl = new URL(posted.headers.get('location')!)
  const callback = new URL(authorizationUrl.searchParams.get('redirect_uri')!)
  callback.searchParams.set('code', `code-${session.id}`)
  callback.searchParams.set('state', authorizationUrl.searchParams.get('state')!)
  return { sessionId: session.id, authorizationUrl, cookie, callback: callback.href }
}

/** The browser arrives at the callback on `instance`; resolves with our answer's status. */
export async function arrive(instance: { url: string }, opened: Opened): Promise<number> {
  const response = await fetch(at(instance, opened.callback), {
    headers: { cookie: opened.cookie },
    redirect: 'manual',
  })
  await response.arrayBuffer()
  return response.status
}

export const STATUS = `query ($id: ID!) { authSession(id: $id) { id status failure { code message } } }`

export interface StatusView {
  readonly authSession: {
    readonly id: string
    readonly status: string
    readonly failure: { readonly code: string; readonly message: string } | null
  } | null
}

/** Polls `authSession` on `instance` every 100 ms until `done` holds; fails after `timeoutMs`. */
export async function pollUntil(
  instance: { url: string },
  key: string,
  sessionId: string,
  done: (status: StatusView['authSession']) => boolean,
  timeoutMs: number,
): Promise<NonNullable<StatusView['authSession']>> {
  const deadline = Date.now() + timeoutMs
  let last: StatusView['authSession']
  for (;;) {
    const answer = await gql<StatusView>(instance, key, STATUS, { id: sessionId })
    last = answer.data?.authSession ?? null
    if (done(last)) return last!
    if (Date.now() > deadline) {
      throw new Error(`session ${sessionId} still ${JSON.stringify(last)} after ${timeoutMs} ms`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** `authSessionUpdated(id)` over server-sent events: each update as it arrives. */
export class Subscription {
  private buffer = ''
  private readonly decoder = new TextDecoder()
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>

  private constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.reader = reader
  }

  static async open(instance: { url: string }, key: string, id: string): Promise<Subscription> {
    const response = await fetch(`${instance.url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        authorization: `Bearer ${key}`,
      },
      body: JSON.stringify({ query: SUBSCRIBE, variables: { id } }),
    })
    expect(response.status).toBe(200)
    return new Subscription(response.body!.getReader())
  }

  /** The next `next` event's session status; `null` when the stream completed or ended. */
  async next(timeoutMs: number): Promise<string | null> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const end = this.buffer.indexOf('\n\n')
      if (end >= 0) {
        const block = this.buffer.slice(0, end)
        this.buffer = this.buffer.slice(end + 2)
        const lines = block.split('\n').filter((l) => !l.startsWith(':'))
        if (lines.length === 0) continue
        const event =
          lines
            .find((l) => l.startsWith('event:'))
            ?.slice(6)
            .trim() ?? 'message'
        if (event === 'complete') return null
        const data = lines
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trim())
          .join('\n')
        const update = JSON.parse(data) as { data?: SessionUpdate; errors?: unknown }
        if (!update.data) throw new Error(`subscription error: ${data}`)
        return update.data.authSessionUpdated.status
      }
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no update within ${timeoutMs} ms`)),
          Math.max(0, deadline - Date.now()),
        )
      })
      try {
        const chunk = await Promise.race([this.reader.read(), timeout])
        if (chunk.done) return null
        this.buffer += this.decoder.decode(chunk.value, { stream: true })
      } finally {
        clearTimeout(timer)
      }
    }
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => {})
  }
}

/**
 * A provider whose `POST /token` answers at once, or, while `holding`, keeps each request until
 * `release()`; `GET /whoami` answers a person whose id is the access token's suffix.
 */
export interface HoldingProvider {
  readonly url: string
  holding: boolean
  /** Token requests held right now. */
  held(): number
  /** Token requests received so far. */
  tokenRequests(): number
  release(): void
  close(): Promise<void>
}

export async function startHoldingProvider(): Promise<HoldingProvider> {
  const waiting: Array<() => void> = []
  let received = 0
  const send = (res: ServerResponse, body: unknown) => {
    if (res.destroyed) return
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    res.end(JSON.stringify(body))
  }
  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (chunk: string) => (body += chunk))
      req.on('end', () => resolve(body))
    })
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://provider')
      const body = await readBody(req)
      if (req.method === 'POST' && url.pathname === '/token') {
        received += 1
        const code = new URLSearchParams(body).get('code') ?? ''
        const answer = () => send(res, { access_token: `at-${code}`, token_type: 'bearer' })
        if (provider.holding) waiting.push(answer)
        else answer()
      } else if (req.method === 'GET' && url.pathname === '/whoami') {
        const token = (req.headers.authorization ?? '').replace(/^Bearer /, '')
        const id = token.slice(-12)
        send(res, { user: { id: `user-${id}`, email: `user-${id}@example.com` } })
      } else {
        res.writeHead(404).end()
      }
    })()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const provider: HoldingProvider = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    holding: false,
    held: () => waiting.length,
    tokenRequests: () => received,
    release() {
      for (const answer of waiting.splice(0)) answer()
    },
    async close() {
      provider.release()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  return provider
}

/** Waits until `check` holds, polling every 50 ms; fails with `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<number> {
  const started = Date.now()
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return Date.now() - started
}
