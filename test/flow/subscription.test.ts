/**
 * `authSessionUpdated(id)` over server-sent events, read off a real socket with fetch and a
 * streaming reader: the session now, then each status change, then the end of the stream once
 * the session is final. Errors (no key, a session of another tenant) arrive as one `next` event
 * with `errors` and no data, then `complete`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ScriptedBrowser } from '../helpers/browser.ts'
import {
  CANCEL,
  complete,
  createFlowApp,
  followLink,
  poll,
  seedProviderIntegration,
  start as startSignIn,
  SUBSCRIBE,
  type Cancelled,
  type SessionUpdate,
} from '../helpers/flow.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import type { SeededTenant, TestApp } from '../helpers/test-app.ts'

interface SseEvent {
  readonly event: string
  readonly data: string
}

interface Update {
  readonly data?: SessionUpdate | null
  readonly errors?: ReadonlyArray<{ message: string; extensions?: { code?: string } }>
}

/** One server-sent-events response, read event by event (comments skipped). */
class EventStream {
  private buffer = ''
  private readonly decoder = new TextDecoder()
  private ended = false

  private readonly reader: ReadableStreamDefaultReader<Uint8Array>

  private constructor(reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.reader = reader
  }

  static async open(url: string, init: RequestInit): Promise<EventStream> {
    const response = await fetch(url, init)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/)
    return new EventStream(response.body!.getReader())
  }

  /** The next event, or null once the server ended the stream. Fails after `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<SseEvent | null> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const end = this.buffer.indexOf('\n\n')
      if (end >= 0) {
        const block = this.buffer.slice(0, end)
        this.buffer = this.buffer.slice(end + 2)
        const lines = block.split('\n').filter((l) => !l.startsWith(':'))
        if (lines.length === 0) continue
        const field = (name: string) =>
          lines
            .filter((l) => l.startsWith(`${name}:`))
            .map((l) => l.slice(name.length + 1).replace(/^ /, ''))
            .join('\n')
        return { event: field('event') || 'message', data: field('data') }
      }
      if (this.ended) return null
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no server-sent event within ${timeoutMs} ms`)),
          Math.max(0, deadline - Date.now()),
        )
      })
      try {
        const chunk = await Promise.race([this.reader.read(), timeout])
        if (chunk.done) this.ended = true
        else this.buffer += this.decoder.decode(chunk.value, { stream: true })
      } finally {
        clearTimeout(timer)
      }
    }
  }

  /** The next `next` event's payload (fails on anything else). */
  async update(): Promise<Update> {
    const event = await this.next()
    expect(event?.event).toBe('next')
    return JSON.parse(event!.data) as Update
  }

  /** Asserts the server completes the stream and closes it. */
  async expectEnd(): Promise<void> {
    expect(await this.next()).toMatchObject({ event: 'complete' })
    expect(await this.next()).toBeNull()
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => {})
  }
}

describe('authSessionUpdated over server-sent events', () => {
  let t: TestApp
  let provider: TestProvider
  let acme: SeededTenant
  let globex: SeededTenant
  const integrationOf: Record<string, string> = {}
  let confirmedIntegration: string
  /** Added to the app's clock (the provider keeps real time). */
  let clockOffset = 0
  const streams: EventStream[] = []

  beforeAll(async () => {
    t = await createFlowApp({ now: () => new Date(Date.now() + clockOffset) })
    provider = await startTestProvider({
      accounts: { ada: { email: 'ada@example.com', name: 'Ada Lovelace' } },
    })
    acme = await t.seedTenant('sse-acme')
    globex = await t.seedTenant('sse-globex')
    for (const tenant of [acme, globex]) {
      // One OAuth client per tenant, as each business registers its own.
      const created = await seedProviderIntegration(
        t,
        tenant,
        provider,
        { clientId: tenant.slug, clientSecret: 'sse-secret-0123456789' },
        {
          name: 'oidc',
          whoAmIMapping: '{userName: sub, fullName: name, email: email}',
          sessionTtlSeconds: 60,
          issuer: provider.issuer,
        },
      )
      integrationOf[tenant.slug] = created.id
    }
    confirmedIntegration = (
      await seedProviderIntegration(
        t,
        acme,
        provider,
        { clientId: acme.slug, clientSecret: 'sse-secret-0123456789' },
        {
          name: 'oidc with a confirmation code',
          whoAmIMapping: '{userName: sub, fullName: name, email: email}',
          issuer: provider.issuer,
          requireConfirmationCode: true,
        },
      )
    ).id
  })
  afterAll(async () => {
    for (const stream of streams) await stream.close()
    await t?.close()
    await provider?.close()
  })

  let conversation = 0
  async function start(tenant: SeededTenant, conversationId = `sse-conv-${++conversation}`) {
    const started = await startSignIn(t, tenant.agentKey, {
      integrationId: integrationOf[tenant.slug]!,
      conversationId,
    })
    return { link: started.authorizationLink, id: started.session.id, conversationId }
  }

  async function statusOf(tenant: SeededTenant, id: string) {
    return (await poll(t, tenant.agentKey, id))?.status
  }

  /** GET /graphql?query=…&variables=… with Accept: text/event-stream. */
  async function subscribeByGet(apiKey: string | null, id: string): Promise<EventStream> {
    const url = new URL('/graphql', t.baseUrl)
    url.searchParams.set('query', SUBSCRIBE)
    url.searchParams.set('variables', JSON.stringify({ id }))
    const stream = await EventStream.open(url.href, {
      headers: {
        accept: 'text/event-stream',
        ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
      },
    })
    streams.push(stream)
    return stream
  }

  /** POST /graphql with Accept: text/event-stream. */
  async function subscribeByPost(apiKey: string | null, id: string): Promise<EventStream> {
    const stream = await EventStream.open(`${t.baseUrl}/graphql`, {
      method: 'POST',
      headers: {
        accept: 'text/event-stream',
        'content-type': 'application/json',
        ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
      },
      body: JSON.stringify({ query: SUBSCRIBE, variables: { id } }),
    })
    streams.push(stream)
    return stream
  }

  function statusIn(update: Update): string | undefined {
    expect(update.errors).toBeUndefined()
    return update.data?.authSessionUpdated.status
  }

  it('delivers PENDING (the state now), OPENED, AUTHENTICATED, then ends the stream', async () => {
    const { link, id } = await start(acme)
    const stream = await subscribeByGet(acme.agentKey, id)
    const first = await stream.update()
    expect(first.data?.authSessionUpdated).toEqual({ id, status: 'PENDING', identity: null })

    const browser = new ScriptedBrowser()
    // The GET of the page (as a link preview makes) changes nothing; the POST opens the session.
    const authorize = await followLink(browser, link)
    expect(statusIn(await stream.update())).toBe('OPENED')

    const { result } = await complete(browser, authorize, 'ada')
    expect(result.status).toBe(200)
    expect(await result.text()).toContain('<h1>You&#39;re signed in</h1>')

    const last = await stream.update()
    expect(last.errors).toBeUndefined()
    expect(last.data?.authSessionUpdated).toEqual({
      id,
      status: 'AUTHENTICATED',
      identity: { email: 'ada@example.com', userName: 'ada' },
    })
    // Exactly three updates: the code-exchange claim (still OPENED) sent none.
    await stream.expectEnd()
  })

  it('delivers AWAITING_CONFIRMATION without an identity, then AUTHENTICATED once the code comes back', async () => {
    const started = await startSignIn(t, acme.agentKey, {
      integrationId: confirmedIntegration,
      conversationId: `sse-conv-${++conversation}`,
    })
    const id = started.session.id
    const stream = await subscribeByPost(acme.agentKey, id)
    expect(statusIn(await stream.update())).toBe('PENDING')
    const browser = new ScriptedBrowser()
    const authorize = await followLink(browser, started.authorizationLink)
    expect(statusIn(await stream.update())).toBe('OPENED')
    const { result } = await complete(browser, authorize, 'ada')
    const code = /id="code"[^>]*>([^<]+)</.exec(await result.text())?.[1]?.replace(/\s/g, '')
    expect(code).toMatch(/^\d{6}$/)
    expect((await stream.update()).data?.authSessionUpdated).toEqual({
      id,
      status: 'AWAITING_CONFIRMATION',
      identity: null,
    })

    const confirmed = await t.gql(
      acme.agentKey,
      `mutation ($input: ConfirmEndUserAuthInput!) { confirmEndUserAuth(input: $input) { session { status } } }`,
      { input: { id, code } },
    )
    expect(confirmed.errors).toBeUndefined()
    expect((await stream.update()).data?.authSessionUpdated).toEqual({
      id,
      status: 'AUTHENTICATED',
      identity: { email: 'ada@example.com', userName: 'ada' },
    })
    await stream.expectEnd()
  })

  it('delivers CANCELLED after cancelEndUserAuth, then ends', async () => {
    const { id } = await start(acme)
    const stream = await subscribeByPost(acme.agentKey, id)
    expect(statusIn(await stream.update())).toBe('PENDING')
    const cancelled = await t.gql<Cancelled>(acme.agentKey, CANCEL, { id })
    expect(cancelled.errors).toBeUndefined()
    expect(cancelled.data!.cancelEndUserAuth.session.status).toBe('CANCELLED')
    expect(statusIn(await stream.update())).toBe('CANCELLED')
    await stream.expectEnd()
  })

  it('delivers CANCELLED when a newer link for the conversation supersedes the session', async () => {
    const older = await start(acme)
    const stream = await subscribeByGet(acme.agentKey, older.id)
    expect(statusIn(await stream.update())).toBe('PENDING')
    const newer = await start(acme, older.conversationId)
    expect(statusIn(await stream.update())).toBe('CANCELLED')
    await stream.expectEnd()
    expect(await statusOf(acme, newer.id)).toBe('PENDING')
  })

  it('delivers EXPIRED when the link runs out while the subscriber waits, then ends', async () => {
    const { id } = await start(acme) // expires in 60 s (app clock)
    clockOffset = 59_000 // one second before expiry: the stream's expiry timer fires in about 1 s
    try {
      const stream = await subscribeByGet(acme.agentKey, id)
      expect(statusIn(await stream.update())).toBe('PENDING')
      clockOffset = 61_000 // by the time the timer fires, the session has expired
      expect(statusIn(await stream.update())).toBe('EXPIRED')
      await stream.expectEnd()
    } finally {
      clockOffset = 0
    }
  })

  it('sends a final session once and ends at once', async () => {
    const { id } = await start(acme)
    await t.gql(acme.agentKey, CANCEL, { id })
    const stream = await subscribeByGet(acme.agentKey, id)
    expect(statusIn(await stream.update())).toBe('CANCELLED')
    await stream.expectEnd()
  })

  it("answers another tenant's session id with NOT_FOUND (no data), exactly like an unknown id", async () => {
    const theirs = await start(globex)
    for (const subscribe of [subscribeByGet, subscribeByPost]) {
      const stream = await subscribe(acme.agentKey, theirs.id)
      const update = await stream.update()
      expect(update.data ?? null).toBeNull()
      expect(update.errors?.map((e) => e.extensions?.code)).toEqual(['NOT_FOUND'])
      await stream.expectEnd()

      const unknown = await subscribe(acme.agentKey, crypto.randomUUID())
      const unknownUpdate = await unknown.update()
      expect(unknownUpdate.data ?? null).toBeNull()
      expect(unknownUpdate.errors?.map((e) => e.extensions?.code)).toEqual(['NOT_FOUND'])
      await unknown.expectEnd()
    }
    // Not a uuid at all: the same answer.
    const malformed = await subscribeByGet(acme.agentKey, 'not-a-session-id')
    expect((await malformed.update()).errors?.map((e) => e.extensions?.code)).toEqual(['NOT_FOUND'])
    await malformed.expectEnd()

    // The owner still sees its session, unchanged.
    expect(await statusOf(globex, theirs.id)).toBe('PENDING')
    const own = await subscribeByGet(globex.agentKey, theirs.id)
    expect(statusIn(await own.update())).toBe('PENDING')
    await own.close()
  })

  it('refuses a subscription without a valid key with UNAUTHENTICATED (no data)', async () => {
    const { id } = await start(acme)
    for (const stream of [
      await subscribeByGet(null, id),
      await subscribeByPost(null, id),
      await subscribeByGet('euo_0000000000000000_' + 'A'.repeat(43), id),
    ]) {
      const update = await stream.update()
      expect(update.data ?? null).toBeNull()
      expect(update.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED'])
      expect(JSON.stringify(update)).not.toContain('PENDING') // nothing about the session
      await stream.expectEnd()
    }
    expect(await statusOf(acme, id)).toBe('PENDING')
  })
})
