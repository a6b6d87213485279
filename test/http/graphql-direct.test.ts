/**
 * The direct GraphQL path (src/http/graphql-direct.ts) against yoga: each request is sent to yoga
 * in process (`app.fetch`) and over a socket to `app.handleNode` (what `npm start` listens
 * with), and the two answers must be the same: status, content type, body byte for byte, and no
 * header that one has and the other lacks (apart from framing and the date). Each case also says
 * which path must answer over the socket (app.directGraphQL counts them), so a change that
 * silently sent everything to yoga, or took what it should leave to yoga, fails here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createTestApp,
  requestOverSocket,
  type SeededTenant,
  type TestApp,
} from '../helpers/test-app.ts'
import { CREATE, validInput } from '../graphql/integration-fixtures.ts'
import { POLL, seedIntegration, start, START, SUBSCRIBE } from '../helpers/flow.ts'
import { QueryCache } from '../../src/graphql/options.ts'
import { acceptedMediaType } from '../../src/http/graphql-direct.ts'

/** Headers that frame or stamp a response rather than say anything about it. */
const FRAMING = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding', 'content-length'])

interface Fixture {
  readonly adminKey: string
  readonly agentKey: string
  readonly sessionId: string
}

const PLACEHOLDERS: Fixture = { adminKey: 'admin', agentKey: 'agent', sessionId: 'session' }

interface Case {
  readonly name: string
  readonly path: 'direct' | 'yoga'
  readonly method?: string
  readonly url?: string
  readonly headers?: Record<string, string>
  /** An object is sent as JSON; a string as it is. */
  readonly body?: unknown
}

describe('the direct GraphQL path answers as yoga does', () => {
  let t: TestApp
  let base: string
  let acme: SeededTenant
  let sessionId: string
  let integrationId: string
  /** When set, deps.now throws: an unexpected error inside a resolver. */
  let clockBroken = false

  beforeAll(async () => {
    t = await createTestApp({
      now: () => {
        if (clockBroken) throw new Error('clock exploded at /var/secret/path')
        return new Date()
      },
    })
    base = await t.listen()
    acme = await t.seedTenant('acme')
    integrationId = (await seedIntegration(t, acme, validInput())).id
    sessionId = (await start(t, acme.agentKey, { integrationId, conversationId: 'c-1' })).session.id
  })
  afterAll(() => t.close())

  const json = (
    auth: string | null,
    extra: Record<string, string> = {},
  ): Record<string, string> => ({
    'content-type': 'application/json',
    ...(auth ? { authorization: `Bearer ${auth}` } : {}),
    ...extra,
  })

  const cases = (f: Fixture): Case[] => [
    {
      name: 'a status poll',
      path: 'direct',
      headers: json(f.agentKey),
      body: { query: POLL, variables: { id: f.sessionId } },
    },
    {
      name: 'a poll with an operationName and null variables',
      path: 'direct',
      headers: json(f.agentKey),
      body: {
        query: 'query V { viewer { role tenant { slug } } }',
        operationName: 'V',
        variables: null,
      },
    },
    {
      name: 'a document with two operations, one chosen',
      path: 'direct',
      headers: json(f.adminKey),
      body: {
        query: 'query A { viewer { role } } query B { oauthIntegrations { id name } }',
        operationName: 'B',
      },
    },
    {
      name: 'a session of nobody (NOT_FOUND)',
      path: 'direct',
      headers: json(f.agentKey),
      body: { query: POLL, variables: { id: '00000000-0000-4000-8000-000000000000' } },
    },
    {
      name: 'no API key (UNAUTHENTICATED)',
      path: 'direct',
      headers: json(null),
      body: { query: POLL, variables: { id: f.sessionId } },
    },
    {
      name: 'a malformed API key',
      path: 'direct',
      headers: json('not-a-key'),
      body: { query: '{ viewer { role } }' },
    },
    {
      name: 'an AGENT key on an ADMIN mutation (FORBIDDEN)',
      path: 'direct',
      headers: json(f.agentKey),
      body: { query: CREATE, variables: { input: validInput() } },
    },
    {
      name: 'a mutation refused by validation (BAD_USER_INPUT, nothing written)',
      path: 'direct',
      headers: json(f.adminKey),
      body: { query: CREATE, variables: { input: validInput({ name: '', tokenUrl: 'ftp://x' }) } },
    },
    {
      name: 'errors with application/graphql-response+json',
      path: 'direct',
      headers: json(null, { accept: 'application/graphql-response+json' }),
      body: { query: POLL, variables: { id: f.sessionId } },
    },
    {
      name: 'Accept: */*',
      path: 'direct',
      headers: json(f.agentKey, { accept: '*/*' }),
      body: { query: '{ viewer { role } }' },
    },
    {
      name: 'a charset in the content type',
      path: 'direct',
      headers: { ...json(f.agentKey), 'content-type': 'application/json; charset=utf-8' },
      body: { query: '{ viewer { role } }' },
    },
    {
      name: 'a document over 4 KiB (parsed every time, not kept)',
      path: 'direct',
      headers: json(f.agentKey),
      body: { query: `# ${'x'.repeat(5000)}\n{ viewer { role } }` },
    },
    // Handed to yoga, which words the error (or does what the direct path does not).
    {
      name: 'a syntax error',
      path: 'yoga',
      headers: json(f.agentKey),
      body: { query: '{ viewer { role }' },
    },
    {
      name: 'an unknown field',
      path: 'yoga',
      headers: json(f.agentKey),
      body: { query: '{ viewer { nosuch } }' },
    },
    { name: 'a missing variable', path: 'yoga', headers: json(f.agentKey), body: { query: POLL } },
    {
      name: 'a variable of the wrong type',
      path: 'yoga',
      headers: json(f.agentKey),
      body: { query: POLL, variables: { id: { x: 1 } } },
    },
    {
      name: 'two operations and no operationName',
      path: 'yoga',
      headers: json(f.agentKey),
      body: { query: 'query A { viewer { role } } query B { viewer { role } }' },
    },
    {
      name: 'an unknown operationName',
      path: 'yoga',
      headers: json(f.agentKey),
      body: { query: '{ viewer { role } }', operationName: 'Nope' },
    },
    {
      name: 'extensions',
      path: 'yoga',
      headers: json(f.agentKey),
      body: { query: '{ viewer { role } }', extensions: { x: 1 } },
    },
    {
      name: 'an unknown parameter',
      path: 'yoga',
      headers: json(f.agentKey),
      body: { query: '{ viewer { role } }', foo: 1 },
    },
    {
      name: 'a batch',
      path: 'yoga',
      headers: json(f.agentKey),
      body: [{ query: '{ viewer { role } }' }],
    },
    {
      name: 'a body that is not JSON',
      path: 'yoga',
      headers: json(f.agentKey),
      body: '{"query": ',
    },
    {
      name: 'a query that is not a string',
      path: 'yoga',
      headers: json(f.agentKey),
      body: { query: 42 },
    },
    {
      name: 'variables that are a list',
      path: 'yoga',
      headers: json(f.agentKey),
      body: { query: '{ viewer { role } }', variables: [1] },
    },
    { name: 'an empty body', path: 'yoga', headers: json(f.agentKey), body: '' },
    {
      name: 'a subscription posted as JSON (yoga: 406 Not Acceptable)',
      path: 'yoga',
      headers: json(f.agentKey, { accept: 'application/json' }),
      body: {
        query: SUBSCRIBE,
        variables: { id: f.sessionId },
      },
    },
    {
      name: 'a request with an Origin (CORS)',
      path: 'yoga',
      headers: json(f.agentKey, { origin: 'https://desk.example' }),
      body: { query: '{ viewer { role } }' },
    },
    // Accept: yoga's negotiation (q-values ignored, the first entry that a JSON type matches).
    ...(
      [
        ['application/graphql-response+json, application/json;q=0.9', 'direct'],
        ['application/json, text/plain, */*', 'direct'],
        ['text/event-stream, application/json', 'direct'],
        ['application/*', 'direct'],
        ['', 'direct'],
        ['application/json; charset=iso-8859-1', 'yoga'],
        ['text/event-stream', 'yoga'],
      ] as const
    ).map(([accept, path]) => ({
      name: `Accept: "${accept}"`,
      path,
      headers: json(f.agentKey, { accept }),
      body: { query: '{ viewer { role } }' },
    })),
    {
      name: 'Accept: text/html',
      path: 'yoga',
      headers: json(f.agentKey, { accept: 'text/html' }),
      body: { query: '{ viewer { role } }' },
    },
    {
      name: 'application/graphql',
      path: 'yoga',
      headers: { 'content-type': 'application/graphql', authorization: `Bearer ${f.agentKey}` },
      body: '{ viewer { role } }',
    },
    {
      name: 'a GET',
      path: 'yoga',
      method: 'GET',
      url: `/graphql?query=${encodeURIComponent('{ viewer { role } }')}`,
      headers: { authorization: `Bearer ${f.agentKey}`, accept: 'application/json' },
    },
    {
      name: 'a query string on a POST',
      path: 'yoga',
      url: '/graphql?x=1',
      headers: json(f.agentKey),
      body: { query: '{ viewer { role } }' },
    },
    {
      name: 'a body over 64 KiB',
      path: 'yoga',
      headers: json(f.agentKey),
      body: { query: `{ viewer { role } }${' '.repeat(70_000)}` },
    },
  ]

  async function both(
    c: Case,
  ): Promise<{ inProcess: Response; socket: Response; direct: boolean }> {
    const build = () =>
      new Request(new URL(c.url ?? '/graphql', 'http://127.0.0.1'), {
        method: c.method ?? 'POST',
        headers: c.headers ?? {},
        ...(c.body === undefined
          ? {}
          : { body: typeof c.body === 'string' ? c.body : JSON.stringify(c.body) }),
      })
    const inProcess = await t.app.fetch(build())
    const before = t.app.directGraphQL.answered
    const socket = await requestOverSocket(base, build())
    return { inProcess, socket, direct: t.app.directGraphQL.answered === before + 1 }
  }

  async function expectSame(c: Case): Promise<{ status: number; body: string }> {
    const { inProcess, socket, direct } = await both(c)
    const [a, b] = [await inProcess.text(), await socket.text()]
    expect({ path: direct ? 'direct' : 'yoga', status: socket.status, body: b }).toEqual({
      path: c.path,
      status: inProcess.status,
      body: a,
    })
    const headers = (r: Response) =>
      Object.fromEntries(
        [...r.headers]
          .map(([name, value]) => [name.toLowerCase(), value])
          .filter(([name]) => !FRAMING.has(name!)),
      )
    expect(headers(socket)).toEqual(headers(inProcess))
    return { status: socket.status, body: b }
  }

  const fixture = (): Fixture => ({ adminKey: acme.adminKey, agentKey: acme.agentKey, sessionId })
  // The table is built before beforeAll runs: its names come from placeholders, and each test
  // builds its case again from the real keys and ids.
  const byName = (name: string): Case => {
    const found = cases(fixture()).find((c) => c.name === name)
    if (!found) throw new Error(`no case ${name}`)
    return found
  }

  it.each(cases(PLACEHOLDERS).map((c) => c.name))('%s', async (name) => {
    await expectSame(byName(name))
  })

  it('answers a poll with the session (not only the same as yoga: the right thing)', async () => {
    const { body } = await expectSame(byName('a status poll'))
    expect(JSON.parse(body)).toMatchObject({
      data: { authSession: { id: sessionId, status: 'PENDING' } },
    })
  })

  it('masks an unexpected error in a resolver the same way, and logs its detail once per request', async () => {
    clockBroken = true
    try {
      const before = t.logs.length
      const { status, body } = await expectSame({
        name: 'a resolver that throws',
        path: 'direct',
        headers: json(acme.agentKey),
        body: { query: POLL, variables: { id: sessionId } },
      })
      expect(status).toBe(200)
      expect(JSON.parse(body)).toEqual({
        data: { authSession: null },
        errors: [
          {
            message: 'Unexpected error.',
            locations: [{ line: 2, column: 3 }],
            path: ['authSession'],
            extensions: { code: 'INTERNAL_SERVER_ERROR' },
          },
        ],
      })
      expect(body).not.toContain('/var/secret')
      // One error line per request (yoga also repeats it at debug level, as it always has).
      const logged = t.logs
        .slice(before)
        .filter(
          (line) =>
            line.includes('clock exploded') && (JSON.parse(line) as { level: number }).level === 50,
        )
      expect(logged).toHaveLength(2)
    } finally {
      clockBroken = false
    }
  })

  it('runs a mutation once: startEndUserAuth over the direct path', async () => {
    const count = async () =>
      (
        await t.database.db
          .selectFrom('auth_sessions')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow()
      ).n
    const before = Number(await count())
    const answered = t.app.directGraphQL.answered
    const response = await requestOverSocket(
      base,
      new Request('http://127.0.0.1/graphql', {
        method: 'POST',
        headers: json(acme.agentKey),
        body: JSON.stringify({
          query: START,
          variables: { input: { integrationId, conversationId: 'c-2' } },
        }),
      }),
    )
    expect(await response.json()).toEqual({
      data: {
        startEndUserAuth: {
          authorizationLink: expect.any(String),
          message: {
            text: expect.any(String),
            buttonLabel: expect.any(String),
            url: expect.any(String),
          },
          session: {
            id: expect.any(String),
            status: 'PENDING',
            conversationId: 'c-2',
            contactId: 'c-2',
            expiresAt: expect.any(String),
          },
        },
      },
    })
    expect(Number(await count())).toBe(before + 1)
    expect(t.app.directGraphQL.answered).toBe(answered + 1)
  })

  it('hands yoga the body it already read (a request yoga then executes)', async () => {
    const { body } = await expectSame(byName('extensions'))
    expect(JSON.parse(body)).toEqual({ data: { viewer: { role: 'AGENT' } } })
  })

  it('survives a client that sends half a body and hangs up, and serves the next request', async () => {
    const { connect } = await import('node:net')
    const { port } = new URL(base)
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(
          'POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"query":',
          () => socket.destroy(),
        )
      })
      socket.once('close', () => resolve())
      socket.once('error', reject)
    })
    await new Promise((resolve) => setTimeout(resolve, 50))
    const response = await requestOverSocket(
      base,
      new Request('http://127.0.0.1/graphql', {
        method: 'POST',
        headers: json(acme.agentKey),
        body: JSON.stringify({ query: '{ viewer { role } }' }),
      }),
    )
    expect(await response.json()).toEqual({ data: { viewer: { role: 'AGENT' } } })
    expect(t.logs.filter((line) => line.includes('could not be written'))).toEqual([])
  })

  it('keeps a connection alive across direct answers', async () => {
    const { Agent, request } = await import('node:http')
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const sockets = new Set<unknown>()
    for (let i = 0; i < 3; i++) {
      const text = await new Promise<string>((resolve, reject) => {
        const req = request(
          `${base}/graphql`,
          { method: 'POST', agent, headers: json(acme.agentKey) },
          (res) => {
            sockets.add(res.socket)
            let data = ''
            res.setEncoding('utf8')
            res.on('data', (chunk: string) => (data += chunk))
            res.once('end', () => resolve(data))
          },
        )
        req.once('error', reject)
        req.end(JSON.stringify({ query: '{ viewer { role } }' }))
      })
      expect(JSON.parse(text)).toEqual({ data: { viewer: { role: 'AGENT' } } })
    }
    agent.destroy()
    expect(sockets.size).toBe(1)
  })
})

describe('QueryCache (the parse caches of both paths)', () => {
  it('keeps short query texts only, 500 at most, dropping the oldest first', () => {
    const cache = new QueryCache<number>()
    cache.set('x'.repeat(4097), 1)
    expect(cache.get('x'.repeat(4097))).toBeUndefined()
    cache.set('x'.repeat(4096), 2)
    expect(cache.get('x'.repeat(4096))).toBe(2)
    for (let i = 0; i < 600; i++) cache.set(`q${i}`, i)
    expect(cache.size).toBe(500)
    expect(cache.get('x'.repeat(4096))).toBeUndefined()
    expect(cache.get('q99')).toBeUndefined()
    expect(cache.get('q100')).toBe(100)
    expect(cache.get('q599')).toBe(599)
  })
})

describe('acceptedMediaType (yoga’s negotiation, remembered per header)', () => {
  const cases: Array<[string | undefined, string | null]> = [
    [undefined, 'application/json'],
    ['', 'application/json'],
    ['*/*', 'application/json'],
    ['application/graphql-response+json', 'application/graphql-response+json'],
    [
      'application/graphql-response+json, application/json;q=0.9',
      'application/graphql-response+json',
    ],
    ['application/json; charset=latin1', null],
    ['text/event-stream', null],
    ['text/html, application/*', 'application/json'],
  ]

  it('answers each header the same, the first time and from memory, however many others came', () => {
    for (const [accept, expected] of cases) expect(acceptedMediaType(accept)).toBe(expected)
    for (const [accept, expected] of cases) expect(acceptedMediaType(accept)).toBe(expected)
    // A client sending a new header each time: answered right, and the memory stays bounded.
    for (let i = 0; i < 200; i++) {
      expect(acceptedMediaType(`application/x-${i}, application/json`)).toBe('application/json')
      expect(acceptedMediaType(`application/x-${i}`)).toBeNull()
    }
    for (const [accept, expected] of cases) expect(acceptedMediaType(accept)).toBe(expected)
  })
})
