/**
 * A webhook receiver on 127.0.0.1 (node:http) for the webhook tests: it records every request
 * (headers and raw body), answers as its script says (200 by default), and verifies signatures
 * with the `standardwebhooks` package, as a platform's receiver would.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Webhook } from 'standardwebhooks'

export interface ReceivedWebhook {
  readonly headers: Record<string, string>
  readonly body: string
  readonly at: number
}

/** What to do with one request: answer a status, or leave it hanging, or redirect it. */
export type Answer = number | 'hang' | { redirect: string }

export interface WebhookReceiver {
  readonly url: string
  readonly host: string
  readonly received: ReceivedWebhook[]
  /** Answers for the next requests, in order; after them, `fallback`. */
  script(...answers: Answer[]): void
  fallback: Answer
  /** Waits until `count` requests came (fails after `timeoutMs`). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedWebhook[]>
  close(): Promise<void>
}

export async function startWebhookReceiver(
  options: { port?: number; path?: string } = {},
): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = []
  const queue: Answer[] = []
  const waiters = new Set<() => void>()
  const hanging = new Set<ServerResponse>()
  const receiver: Partial<WebhookReceiver> & { fallback: Answer } = { fallback: 200 }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const headers: Record<string, string> = {}
      for (const [name, value] of Object.entries(req.headers)) {
        if (typeof value === 'string') headers[name] = value
      }
      received.push({ headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() })
      for (const wake of waiters) wake()
      const answer = queue.shift() ?? receiver.fallback
      if (answer === 'hang') {
        hanging.add(res)
        return
      }
      if (typeof answer === 'object') {
        res.writeHead(302, { location: answer.redirect }).end()
        return
      }
      res.writeHead(answer, { 'content-type': 'text/plain' }).end('ok')
    })
  })
  const sockets = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const host = `127.0.0.1:${port}`

  return Object.assign(receiver, {
    url: `http://${host}${options.path ?? '/hooks'}`,
    host,
    received,
    script: (...answers: Answer[]) => void queue.push(...answers),
    async waitFor(count: number, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs
      while (received.length < count) {
        const left = deadline - Date.now()
        if (left <= 0) {
          throw new Error(`expected ${count} webhook requests, got ${received.length}`)
        }
        await new Promise<void>((resolve) => {
          const wake = () => {
            waiters.delete(wake)
            clearTimeout(timer)
            resolve()
          }
          const timer = setTimeout(wake, left)
          waiters.add(wake)
        })
      }
      return received.slice(0, count)
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const res of hanging) res.destroy()
      for (const socket of sockets) socket.destroy()
      await closed
    },
  }) as WebhookReceiver
}

/** Verifies one request with `secret` as a receiver does; returns the parsed payload. */
export function verify(secret: string, webhook: ReceivedWebhook): WebhookPayload {
  return new Webhook(secret).verify(webhook.body, webhook.headers) as WebhookPayload
}

export interface WebhookPayload {
  readonly type: string
  readonly timestamp: string
  readonly data: { readonly session: Record<string, unknown> & { id: string; status: string } }
}

export const CREATE_ENDPOINT = `mutation ($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { secret endpoint { id url events enabled description createdAt } }
}`

export interface CreatedEndpoint {
  readonly createWebhookEndpoint: {
    readonly secret: string
    readonly endpoint: {
      readonly id: string
      readonly url: string
      readonly events: string[]
      readonly enabled: boolean
      readonly description: string | null
      readonly createdAt: string
    }
  }
}

export const DELIVERIES = `query ($endpointId: ID!, $first: Int) {
  webhookDeliveries(endpointId: $endpointId, first: $first) {
    id eventId eventType status attempts lastStatusCode lastError nextAttemptAt createdAt deliveredAt
  }
}`

export interface DeliveryView {
  readonly id: string
  readonly eventId: string
  readonly eventType: string
  readonly status: string
  readonly attempts: number
  readonly lastStatusCode: number | null
  readonly lastError: string | null
  readonly nextAttemptAt: string | null
  readonly createdAt: string
  readonly deliveredAt: string | null
}

/** Polls `check` until it returns a value other than undefined (fails after `timeoutMs`). */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
