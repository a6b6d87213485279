/**
 * The request body limit, in place of yoga's `maxRequestBodySize` (same limit, same errors).
 *
 * Yoga's plugin checks Content-Length and then also re-streams every body through a
 * TransformStream that counts bytes, with a new Request around it. Profiling `npm run bench`
 * showed that second part costing about a quarter of the CPU time of a small GraphQL POST. It only
 * matters for a body without Content-Length: behind node:http (how requests reach the service)
 * a body with Content-Length is exactly that long, because the HTTP parser frames it by that
 * header. So a declared length is checked and trusted, and only a body without one (chunked) is
 * counted as it streams.
 */
import { createGraphQLError } from 'graphql-yoga'
import { named, type NamedPlugin } from './named-plugin.ts'

/**
 * The largest legitimate request is a `testWhoAmIMapping` with a 1 MiB payload (the most a
 * WhoAmI answer may be) and its mapping: 1.25 MiB leaves room for the query and JSON escaping.
 * Yoga's default, 25 MB, let one request hold the event loop for seconds while it was parsed.
 */
export const MAX_REQUEST_BODY_BYTES = 1.25 * 1024 * 1024

function tooLarge(limit: number): Error {
  return createGraphQLError(`Request body too large: at most ${limit} bytes`, {
    extensions: { http: { status: 413 }, code: 'REQUEST_ENTITY_TOO_LARGE' },
  })
}

function invalidLength(): Error {
  return createGraphQLError('Content-Length header is invalid.', {
    extensions: { http: { status: 400 }, code: 'BAD_REQUEST' },
  })
}

/** Must come after the request parsers: among `plugins`, as yoga's own limit plugin does. */
export function useRequestBodyLimit(limit = MAX_REQUEST_BODY_BYTES): NamedPlugin {
  return named('request-body-limit', {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      const declared = request.headers.get('content-length')
      if (declared !== null) {
        // A single non-negative integer, nothing else (a comma-joined list is a smuggling attempt).
        if (!/^\d+$/.test(declared)) throw invalidLength()
        if (Number(declared) > limit) throw tooLarge(limit)
        return
      }
      if (requestParser === undefined || request.body === null) return
      const parse = requestParser
      setRequestParser((req) => {
        let seen = 0
        const Transform =
          req.body instanceof ReadableStream ? TransformStream : fetchAPI.TransformStream
        const counted = req.body!.pipeThrough(
          new Transform<Uint8Array, Uint8Array>({
            transform(chunk, controller) {
              seen += chunk.byteLength
              if (seen > limit) controller.error(tooLarge(limit))
              else controller.enqueue(chunk)
            },
          }),
        )
        return parse(
          new fetchAPI.Request(req.url, {
            method: req.method,
            headers: req.headers,
            signal: req.signal,
            body: counted,
            duplex: 'half',
          } as RequestInit),
        )
      })
    },
  })
}
