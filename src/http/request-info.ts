/**
 * What the routes need to know about who sent a request and where: the host the browser
 * addressed (for the per-tenant host check; behind TRUST_PROXY the forwarded one), the client's address (rate limits, audit records of
 * refused callbacks; behind TRUST_PROXY the forwarded one) and user agent.
 */
import type { IncomingMessage } from 'node:http'
import { clientAddress, requestHost, type TrustedProxies } from '../core/client-address.ts'

export interface RequestInfo {
  readonly host: string
  readonly clientAddress: string | null
  readonly userAgent: string | null
}

/**
 * The connection's peer address, from what the node:http adapter hands yoga as the server
 * context (`{ req, res }`); null for a request that came in without a socket (app.fetch).
 */
export function peerAddress(serverContext: unknown): string | null {
  const req = (serverContext as { req?: Partial<IncomingMessage> } | undefined)?.req
  return req?.socket?.remoteAddress ?? null
}

export function requestInfo(
  request: Request,
  peer: string | null,
  trusted: TrustedProxies,
): RequestInfo {
  return {
    host: requestHost(
      new URL(request.url).host,
      peer,
      request.headers.get('x-forwarded-host'),
      trusted,
    ),
    clientAddress: clientAddress(peer, request.headers.get('x-forwarded-for'), trusted),
    userAgent: request.headers.get('user-agent'),
  }
}
