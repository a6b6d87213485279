/**
 * useRequestBodyLimit: the limit yoga's maxRequestBodySize enforced, with the same answers, both
 * for a declared Content-Length and for a body streamed without one.
 */
import { createSchema, createYoga } from 'graphql-yoga'
import { describe, expect, it } from 'vitest'
import { useRequestBodyLimit } from '../../src/http/body-limit.ts'

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
      message: 'Request body too large',
      extensions: { code: 'REQUEST_ENTITY_TOO_LARGE' },
    })
  })

  it('counts a body without Content-Length as it streams and refuses it past the limit with 413', async () => {
    const { status, json } = await post({ body: streamed(body('x'.repeat(300))) })
    expect(status).toBe(413)
    expect(json.errors?.[0]).toMatchObject({
      message: 'Request body too large',
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
