/**
 * The Responses the routes answer with: whatwg-node's (the Fetch implementation yoga runs on),
 * not Node's global one, and with plain-object headers and an explicit Content-Length.
 *
 * yoga writes a Response back to node:http with sendNodeResponse. Node's own Response (undici)
 * keeps even a string body as a web ReadableStream, which sendNodeResponse then pumps chunk by
 * chunk, and without a length the answer goes out chunked, in two socket writes. whatwg-node's
 * Response keeps the string, and with plain-object headers and the length known the status line,
 * headers and body go out in one write (@whatwg-node/server, sendNodeResponse's fast paths).
 * To a caller of `app.fetch` it is a Fetch Response like any other.
 */
import { Response as FetchResponse } from '@whatwg-node/server'

export function textResponse(
  status: number,
  headers: Readonly<Record<string, string>>,
  body: string | null,
): Response {
  return new FetchResponse(body, {
    status,
    // A fresh object: the Response keeps it as its headers.
    headers: {
      ...headers,
      'content-length': body === null ? '0' : String(Buffer.byteLength(body)),
    },
  })
}
