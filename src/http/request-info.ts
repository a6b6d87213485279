/**
 * What the end-user routes need to know about who sent a request and where: the host the
 * browser addressed (for the per-tenant host check), the client's address and user agent (for
 * audit records of refused callbacks).
 */
export interface RequestInfo {
  readonly host: string
  readonly clientAddress: string | null
  readonly userAgent: string | null
}

export function requestInfo(request: Request): RequestInfo {
  return {
    host: new URL(request.url).host.toLowerCase(),
    clientAddress: null,
    userAgent: request.headers.get('user-agent'),
  }
}
