/**
 * createTestApp: the whole app over a fresh test database, with captured logs and a fixed
 * encryption key, called through `fetch` without a socket (or `listen()` for a real one).
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import type { AddressInfo } from 'node:net'
import { createApp, type App } from '../../src/runtime/app.ts'
import { loadConfig, type Config } from '../../src/config.ts'
import { endUserRoutes } from '../../src/http/index.ts'
import { createLogger } from '../../src/logger.ts'
import type { OutboundOptions } from '../../src/oauth/outbound.ts'
import { createDeps } from '../../src/runtime/open.ts'
import {
  startWebhookWorker,
  type WebhookWorker,
  type WebhookWorkerOptions,
} from '../../src/runtime/webhook-worker.ts'
import type { Deps } from '../../src/services/deps.ts'
import { createTenant, createApiKey } from '../../src/services/tenants.ts'
import { createTestDatabase, type TestDatabase } from './test-db.ts'

export const TEST_ENCRYPTION_KEY = 'test-encryption-key-0123456789abcdef0123456789'

export interface TestApp {
  readonly app: App
  readonly deps: Deps
  readonly database: TestDatabase
  /** Every log line written so far, as raw JSON text. */
  readonly logs: string[]
  fetch(input: string | Request, init?: RequestInit): Promise<Response>
  gql<T = Record<string, unknown>>(
    apiKey: string | null,
    query: string,
    variables?: Record<string, unknown>,
  ): Promise<GqlResult<T>>
  seedTenant(slug?: string): Promise<SeededTenant>
  /** PUBLIC_BASE_URL of this app. */
  readonly baseUrl: string
  /** The webhook worker, when `webhooks` was given. */
  readonly webhookWorker: WebhookWorker | null
  /** Listens on 127.0.0.1:0 (for browsers and other processes); returns the base URL. */
  listen(): Promise<string>
  close(): Promise<void>
}

export interface GqlResult<T> {
  readonly status: number
  readonly data: T | null | undefined
  readonly errors:
    ReadonlyArray<{ message: string; extensions?: { code?: string }; path?: unknown[] }> | undefined
}

export interface SeededTenant {
  readonly id: string
  readonly slug: string
  readonly adminKey: string
  readonly agentKey: string
}

let tenantCounter = 0

export async function createTestApp(
  options: {
    env?: Record<string, string>
    now?: () => Date
    database?: TestDatabase
    /** Outbound client settings beyond OUTBOUND_ALLOW_HOSTS (short deadlines, a fake resolver). */
    outbound?: Partial<OutboundOptions>
    /**
     * Listen on 127.0.0.1 (a free port) before the app is built, so PUBLIC_BASE_URL can be the
     * real address: browsers and providers then reach the links and callbacks.
     */
    serve?: boolean
    /** Runs a webhook worker as the service does, with these settings over its defaults. */
    webhooks?: Partial<WebhookWorkerOptions>
  } = {},
): Promise<TestApp> {
  const database = options.database ?? (await createTestDatabase())
  let server: Server | undefined
  let served: string | undefined
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined
  if (options.serve) {
    server = createServer((req, res) => handler!(req, res))
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
    served = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }
  const logs: string[] = []
  const logger = createLogger({ level: 'debug' }, { write: (line: string) => void logs.push(line) })
  const config: Config = loadConfig({
    PUBLIC_BASE_URL: served ?? 'http://localhost:4000',
    ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
    // Most tests send many requests from one address and key in a moment; the tests of the
    // limits (test/limits/) pass RATE_LIMITS=on and get the service's defaults.
    RATE_LIMITS: 'off',
    ...options.env,
  })
  // The service's own assembly; ENCRYPTION_KEY is always set here, so no development key is made.
  const deps = createDeps(config, database.db, logger, {
    databaseKind: database.kind,
    ...(options.now ? { now: options.now } : {}),
    ...(options.outbound ? { outbound: options.outbound } : {}),
  })
  const app = createApp(deps, database, endUserRoutes)
  handler = app.handleNode
  const webhookWorker = options.webhooks
    ? startWebhookWorker(deps, deps.webhookWake, logger, options.webhooks)
    : null
  const base = served ?? 'http://localhost:4000'

  const toRequest = (input: string | Request, init?: RequestInit) =>
    typeof input === 'string' ? new Request(new URL(input, base), init) : input
  const inProcess = (input: string | Request, init?: RequestInit) =>
    app.fetch(toRequest(input, init))
  // TEST_TRANSPORT=node (the `direct` vitest project): every request goes over a socket to
  // app.handleNode, the listener `npm start` uses, instead of straight into yoga.
  let socketBase: Promise<string> | undefined
  const overSocket = async (input: string | Request, init?: RequestInit) => {
    socketBase ??= listen()
    return requestOverSocket(await socketBase, toRequest(input, init))
  }
  const fetchApp = process.env.TEST_TRANSPORT === 'node' ? overSocket : inProcess
  async function listen(): Promise<string> {
    if (served) return served
    server = createServer(app.handleNode)
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  return {
    app,
    deps,
    database,
    logs,
    fetch: fetchApp,
    async gql(apiKey, query, variables) {
      const response = await fetchApp('/graphql', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
        },
        body: JSON.stringify({ query, variables }),
      })
      const body = (await response.json()) as { data?: never; errors?: never }
      return { status: response.status, data: body.data, errors: body.errors }
    },
    async seedTenant(slug) {
      const name = slug ?? `tenant-${process.pid}-${++tenantCounter}`
      const { tenant, apiKey } = await createTenant(deps, { slug: name })
      const agent = await createApiKey(deps, { slug: name, role: 'AGENT' })
      return { id: tenant.id, slug: tenant.slug, adminKey: apiKey.apiKey, agentKey: agent.apiKey }
    },
    baseUrl: base,
    webhookWorker,
    listen() {
      socketBase ??= listen()
      return socketBase
    },
    async close() {
      if (server) {
        server.closeAllConnections()
        await new Promise<void>((resolve) => server!.close(() => resolve()))
      }
      await webhookWorker?.stop()
      await app.close()
      await deps.rateLimits.close()
      await deps.provider.close()
      if (!options.database) await database.close()
    },
  }
}

/**
 * Sends a Fetch Request to `base` with node's HTTP client: exactly the request's headers, and a
 * Content-Length for a body (no headers added the way fetch adds them, such as Origin or
 * Sec-Fetch-Mode).
 */
export async function requestOverSocket(base: string, request: Request): Promise<Response> {
  const url = new URL(request.url)
  const body = request.body ? Buffer.from(await request.arrayBuffer()) : undefined
  const headers: Record<string, string> = {}
  request.headers.forEach((value, key) => {
    headers[key] = value
  })
  if (body) headers['content-length'] = String(body.length)
  return new Promise<Response>((resolve, reject) => {
    const req = httpRequest(
      new URL(url.pathname + url.search, base),
      { method: request.method, headers },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.once('error', reject)
        res.once('end', () => {
          const responseHeaders = new Headers()
          for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
            responseHeaders.append(res.rawHeaders[i] as string, res.rawHeaders[i + 1] as string)
          }
          const status = res.statusCode ?? 0
          const nullBody = status === 204 || status === 304 || request.method === 'HEAD'
          resolve(
            new Response(nullBody ? null : Buffer.concat(chunks), {
              status,
              headers: responseHeaders,
            }),
          )
        })
      },
    )
    req.once('error', reject)
    req.end(body)
  })
}

/** The error codes of a GraphQL result, for terse assertions. */
export function codes(result: GqlResult<unknown>): Array<string | undefined> {
  return (result.errors ?? []).map((e) => e.extensions?.code)
}
