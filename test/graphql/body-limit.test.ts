/**
 * useRequestBodyLimit: the limit yoga's maxRequestBodySize enforced, with the same answers, both
 * for a declared Content-Length and for a body streamed without one.
 */
import { createSchema, createYoga } from 'graphql-yoga'
import { describe, expect, it } from 'vitest'
import { MAX_REQUEST_BODY_BYTES, useRequestBodyLimit } from '../../src/http/body-limit.ts'
import { createTestApp } from '../helpers/test-app.ts'

const yoga = createYoga({
  schema: createSchema({
    typeDefs: 'type Query { echo(text: String!): String! }',
    resolvers: { Query: { echo: (_: unknown, a: { text: string }) => a.text } },
  }),
  maxRequestBodySize: false,
  plugins: [useRequestBodyLimit(200)],
  logging: false,
})

const body = (text: string) =>
  JSON.stringify({ query: 'query($t: String!) { echo(text: $t) }', variables: { t: text } })

function streamed(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text)
  return new ReadableStream({
    start(controller) {
      for (let i = 0; i < bytes.length; i += 16) controller.enqueue(bytes.slice(i, i + 16))
      controller.close()
    },
  })
}

async function post(init: { body: BodyInit; headers?: Record<string, string> }) {
  const response = await yoga.fetch('http://test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...init.headers },
    body: init.body,
    duplex: 'half',
  } as RequestInit)
  return {
    status: response.status,
    json: (await response.json()) as {
      data?: unknown
      errors?: Array<{ message: string; extensions?: { code?: string } }>
    },
  }
}

describe('useRequestBodyLimit', () => {
  it('answers a body within the limit', async () => {
    const text = body('hello')
    const declared = await post({
      body: text,
      headers: { 'content-length': String(Buffer.byteLength(text)) },
    })
    expect(declared).toEqual({ status: 200, json: { data: { echo: 'hello' } } })
    expect(await post({ body: streamed(text) })).toEqual({
      status: 200,
      json: { data: { echo: 'hello' } },
    })
  })

  it('refuses a declared Content-Length over the limit with 413, before reading the body', async () => {
    const text = body('x'.repeat(300))
    const { status, json } = await post({
      body: text,
      headers: { 'content-length': String(Buffer.byteLength(text)) },
    })
    expect(status).toBe(413)
    expect(json.errors?.[0]).toMatchObject({
      message: 'Request body too large: at most 200 bytes',
      extensions: { code: 'REQUEST_ENTITY_TOO_LARGE' },
    })
  })

  it('counts a body without Content-Length as it streams and refuses it past the limit with 413', async () => {
    const { status, json } = await post({ body: streamed(body('x'.repeat(300))) })
    expect(status).toBe(413)
    expect(json.errors?.[0]).toMatchObject({
      message: 'Request body too large: at most 200 bytes',
      extensions: { code: 'REQUEST_ENTITY_TOO_LARGE' },
    })
  })

  it('refuses a malformed Content-Length with 400', async () => {
    const { status, json } = await post({
      body: body('hi'),
      headers: { 'content-length': '12, 12' },
    })
    expect(status).toBe(400)
    expect(json.errors?.[0]).toMatchObject({
      message: 'Content-Length header is invalid.',
      extensions: { code: 'BAD_REQUEST' },
    })
  })
})

describe('the service', () => {
  it('takes a 1 MiB mapping payload and refuses a body over 1.25 MiB with 413', async () => {
    const t = await createTestApp()
    try {
      const tenant = await t.seedTenant()
      // The largest WhoAmI answer a mapping may be tested on: just under 1 MiB of JSON.
      const payload = {
        user: { id: 'u1', email: 'a@example.com' },
        blob: 'x'.repeat(1024 * 1024 - 100),
      }
      const test = `mutation ($input: TestWhoAmIMappingInput!) {
        testWhoAmIMapping(input: $input) { identity { userName } errors { message } } }`
      const mapping = '{userName: user.id, email: user.email}'
      const accepted = await t.gql<{ testWhoAmIMapping: { identity: { userName: string } } }>(
        tenant.agentKey,
        test,
        { input: { mapping, payload } },
      )
      expect(accepted.errors).toBeUndefined()
      expect(accepted.data?.testWhoAmIMapping.identity.userName).toBe('u1')

      const big = { blob: 'x'.repeat(MAX_REQUEST_BODY_BYTES) }
      const refused = await t.gql(tenant.agentKey, test, { input: { mapping, payload: big } })
      expect(refused.status).toBe(413)
      expect(refused.errors?.[0]?.message).toBe(
        `Request body too large: at most ${MAX_REQUEST_BODY_BYTES} bytes`,
      )
    } finally {
      await t.close()
    }
  })
})
