import pino, { type DestinationStream, type Logger } from 'pino'
import pretty from 'pino-pretty'

export type { Logger }

/**
 * Paths pino blanks out wherever they appear one level deep. This is the second line of defence:
 * code never passes secrets to the logger on purpose, and a test scans captured logs for them.
 */
const REDACT = [
  'authorization',
  'cookie',
  'apiKey',
  'clientSecret',
  'client_secret',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'id_token',
  'code',
  'code_verifier',
  'codeVerifier',
  'state',
  'password',
  'headers.authorization',
  'headers.cookie',
  '*.authorization',
  '*.cookie',
  '*.apiKey',
  '*.clientSecret',
  '*.client_secret',
  '*.accessToken',
  '*.access_token',
  '*.refreshToken',
  '*.refresh_token',
  '*.code_verifier',
  '*.codeVerifier',
  '*.headers.authorization',
  '*.headers.cookie',
]

export function createLogger(
  options: {
    level: string
    name?: string
    format?: 'pretty' | 'json' | null
    /**
     * Write JSON lines synchronously: for short-lived commands that print a result after their
     * logs (asynchronous lines could come out after it). The service keeps them asynchronous.
     */
    sync?: boolean
  },
  destination?: DestinationStream,
): Logger {
  const format = options.format ?? (process.stdout.isTTY ? 'pretty' : 'json')
  return pino(
    {
      level: options.level,
      name: options.name ?? 'end-user-oauth',
      redact: { paths: REDACT, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    destination ??
      (format === 'pretty'
        ? // In the main thread and synchronous (no worker transport), so nothing is lost on exit.
          pretty({
            sync: true,
            colorize: process.stdout.isTTY === true,
            translateTime: 'SYS:HH:MM:ss.l',
            ignore: 'pid,hostname,name',
          })
        : jsonLines(options.sync ?? false)),
  )
}

const plainChildren = new WeakMap<Logger, Logger>()

/**
 * `logger` without the redaction of secret-named fields, for the lines written on every request
 * or sign-in whose fields are ids, counts and fixed words only (the request line, a sign-in
 * started, opened, ended). The redaction's wildcard paths cost about 5 µs a line, more than the
 * rest of writing it; a line that may carry anything else (an error, a provider's answer) keeps
 * it by going through `logger` itself.
 */
export function fixedFieldLines(logger: Logger): Logger {
  let plain = plainChildren.get(logger)
  if (plain === undefined) {
    plain = logger.child({}, { redact: { paths: [] } })
    plainChildren.set(logger, plain)
  }
  return plain
}

/** How long a line may wait in the buffer of the service's asynchronous output. */
const FLUSH_MS = 100

/**
 * JSON lines on standard output. The service's are buffered (up to 8 KiB, and never longer than
 * FLUSH_MS): one write per line was a system call per line, several per sign-in. pino flushes the
 * buffer synchronously when the process exits; a process killed outright loses at most the last
 * FLUSH_MS of lines.
 */
function jsonLines(sync: boolean): DestinationStream {
  if (sync) return pino.destination({ dest: 1, sync: true })
  const stream = pino.destination({ dest: 1, sync: false, minLength: 8 * 1024 })
  setInterval(() => stream.flush(), FLUSH_MS).unref()
  return stream
}
