/**
 * Whether an error means the database cannot be reached (down, restarting, refusing, the
 * connection broken), as opposed to a query that failed: requests then fail with a message that
 * says so, and background work waits for the database to come back.
 */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
])
// admin_shutdown, crash_shutdown, cannot_connect_now (starting up or shutting down).
const SERVER_CODES = new Set(['57P01', '57P02', '57P03'])
// What `pg` says when a connection ends under it or cannot be made in time.
const MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'is not queryable',
  'the database is unavailable',
]

export function isDatabaseUnavailable(error: unknown, depth = 0): boolean {
  if (depth > 5 || typeof error !== 'object' || error === null) return false
  const { code, message, cause, errors } = error as {
    code?: unknown
    message?: unknown
    cause?: unknown
    errors?: unknown
  }
  if (typeof code === 'string') {
    // SQLSTATE class 08: connection exception.
    if (NETWORK_CODES.has(code) || SERVER_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) {
      return true
    }
  }
  if (typeof message === 'string' && MESSAGES.some((m) => message.includes(m))) return true
  // Connecting to a host name with several addresses fails with an AggregateError.
  if (Array.isArray(errors) && errors.some((e) => isDatabaseUnavailable(e, depth + 1))) return true
  return isDatabaseUnavailable(cause, depth + 1)
}
