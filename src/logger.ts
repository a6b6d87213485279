import pino, { type DestinationStream, type Logger } from 'pino'

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
  options: { level: string; name?: string },
  destination?: DestinationStream,
): Logger {
  return pino(
    {
      level: options.level,
      name: options.name ?? 'end-user-oauth',
      redact: { paths: REDACT, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    destination ?? pino.destination(1),
  )
}
