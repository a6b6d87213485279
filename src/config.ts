/**
 * Configuration, read once from the environment (the names are the public contract's).
 * `loadConfig` is the only reader of `process.env`; a wrong value throws a ConfigError whose
 * message is one line naming the variable and what is wrong with it.
 */
import path from 'node:path'

export class ConfigError extends Error {
  constructor(variable: string, problem: string) {
    super(`${variable}: ${problem}`)
    this.name = 'ConfigError'
  }
}

export type DatabaseConfig =
  | { readonly kind: 'postgres'; readonly url: string }
  | { readonly kind: 'pglite'; readonly dataDir: string }

export interface Config {
  readonly port: number
  readonly host: string
  readonly database: DatabaseConfig
  /** Folder for the embedded database, the control socket and the development key file. */
  readonly dataDir: string
  /** Origin end users' browsers reach; may contain `{tenant}`. No trailing slash. */
  readonly publicBaseUrl: string
  /** Secret material for sealing; null outside production means "generate one into DATA_DIR". */
  readonly encryptionKey: string | null
  /** Older keys that may still open sealed values while they are re-sealed under the current one. */
  readonly previousEncryptionKeys: readonly string[]
  readonly outboundAllowHosts: readonly string[]
  /** Hosts webhook endpoints may use although private or plain http (not token or WhoAmI URLs). */
  readonly webhookAllowHosts: readonly string[]
  readonly production: boolean
  readonly logLevel: string
  /** Browser origins allowed to call /graphql (agent desktops); never with credentials. */
  readonly corsOrigins: readonly string[]
  /** Whether the schema may be introspected (and errors suggest field names). */
  readonly introspection: boolean
}

type Env = Readonly<Record<string, string | undefined>>

/** Every variable loadConfig reads (a test checks the list against what it reads). */
export const CONFIG_VARIABLES = [
  'PORT',
  'HOST',
  'DATABASE_URL',
  'DATA_DIR',
  'PUBLIC_BASE_URL',
  'ENCRYPTION_KEY',
  'ENCRYPTION_KEY_PREVIOUS',
  'OUTBOUND_ALLOW_HOSTS',
  'WEBHOOK_ALLOW_HOSTS',
  'LOG_LEVEL',
  'NODE_ENV',
  'CORS_ORIGINS',
  'GRAPHQL_INTROSPECTION',
] as const

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export function loadConfig(env: Env = process.env): Config {
  const production = env.NODE_ENV === 'production'
  const port = parsePort(env.PORT)
  const host = nonEmpty(env.HOST, 'HOST') ?? '127.0.0.1'
  const dataDir = path.resolve(nonEmpty(env.DATA_DIR, 'DATA_DIR') ?? './.data')
  const databaseUrl = nonEmpty(env.DATABASE_URL, 'DATABASE_URL')
  if (databaseUrl !== undefined) checkDatabaseUrl(databaseUrl)
  const publicBaseUrl = parsePublicBaseUrl(env.PUBLIC_BASE_URL, port, production)
  const encryptionKey = nonEmpty(env.ENCRYPTION_KEY, 'ENCRYPTION_KEY') ?? null
  if (encryptionKey !== null) checkKey(encryptionKey, 'ENCRYPTION_KEY')
  if (production && encryptionKey === null) {
    throw new ConfigError('ENCRYPTION_KEY', 'is required when NODE_ENV=production')
  }
  const previousEncryptionKeys = list(env.ENCRYPTION_KEY_PREVIOUS)
  for (const key of previousEncryptionKeys) checkKey(key, 'ENCRYPTION_KEY_PREVIOUS')
  const logLevel = env.LOG_LEVEL?.trim() || 'info'
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      'LOG_LEVEL',
      `must be one of ${LOG_LEVELS.join(', ')} (got "${logLevel}")`,
    )
  }
  const outboundAllowHosts = allowHosts(env, 'OUTBOUND_ALLOW_HOSTS')
  const webhookAllowHosts = allowHosts(env, 'WEBHOOK_ALLOW_HOSTS')

  const corsOrigins = list(env.CORS_ORIGINS).map((origin) => parseOrigin(origin))
  const introspection =
    parseBoolean(env.GRAPHQL_INTROSPECTION, 'GRAPHQL_INTROSPECTION') ?? !production

  return Object.freeze({
    corsOrigins,
    introspection,
    port,
    host,
    database: databaseUrl
      ? { kind: 'postgres' as const, url: databaseUrl }
      : { kind: 'pglite' as const, dataDir },
    dataDir,
    publicBaseUrl,
    encryptionKey,
    previousEncryptionKeys,
    outboundAllowHosts,
    webhookAllowHosts,
    production,
    logLevel,
  })
}

/** An allow-list of `host` or `host:port` entries, lower-cased. */
function allowHosts(env: Env, variable: 'OUTBOUND_ALLOW_HOSTS' | 'WEBHOOK_ALLOW_HOSTS'): string[] {
  const entries = list(env[variable]).map((h) => h.toLowerCase())
  for (const entry of entries) {
    if (/[\s/@?#]/.test(entry)) {
      throw new ConfigError(variable, `"${entry}" is not a host name (use host or host:port)`)
    }
  }
  return entries
}

function nonEmpty(value: string | undefined, variable: string): string | undefined {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (trimmed === '') {
    // An empty value is almost always a templating mistake; say so instead of defaulting.
    throw new ConfigError(variable, 'is set but empty (unset it to use the default)')
  }
  return trimmed
}

function parsePort(raw: string | undefined): number {
  if (raw === undefined) return 4000
  const value = raw.trim()
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) {
    throw new ConfigError('PORT', `must be a whole number from 0 to 65535 (got "${raw}")`)
  }
  return Number(value)
}

function checkDatabaseUrl(raw: string): void {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError(
      'DATABASE_URL',
      'is not a URL (expected postgres://user@host:port/database)',
    )
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError('DATABASE_URL', `must start with postgres:// (got "${url.protocol}//")`)
  }
  if (!url.hostname && !url.searchParams.get('host')) {
    throw new ConfigError(
      'DATABASE_URL',
      'has no host (expected postgres://user@host:port/database)',
    )
  }
}

function parsePublicBaseUrl(raw: string | undefined, port: number, production: boolean): string {
  if (raw === undefined) return `http://localhost:${port}`
  const value = raw.trim().replace(/\/+$/, '')
  let url: URL
  try {
    // `{tenant}` is a placeholder for a host label; check the URL with a sample label in place.
    url = new URL(value.replaceAll('{tenant}', 'tenant'))
  } catch {
    throw new ConfigError('PUBLIC_BASE_URL', `is not an absolute URL (got "${raw}")`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError('PUBLIC_BASE_URL', 'must be an http or https URL')
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new ConfigError(
      'PUBLIC_BASE_URL',
      'must be an origin (and optional path) without query, fragment or credentials',
    )
  }
  // End users' browsers carry the binding cookie and the provider's code over this origin.
  if (production && url.protocol !== 'https:' && !isLoopbackHost(url.hostname)) {
    throw new ConfigError(
      'PUBLIC_BASE_URL',
      `must be https when NODE_ENV=production (got "${raw}"); plain http only on a loopback host such as localhost`,
    )
  }
  return value
}

/** localhost, 127.0.0.0/8 and [::1]: where plain http never leaves the machine. */
function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/\.$/, '')
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    host === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
  )
}

function parseOrigin(raw: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError(
      'CORS_ORIGINS',
      `"${raw}" is not an origin (e.g. https://desk.example.com)`,
    )
  }
  if (
    (url.protocol !== 'https:' && url.protocol !== 'http:') ||
    url.origin !== raw.replace(/\/$/, '')
  ) {
    throw new ConfigError(
      'CORS_ORIGINS',
      `"${raw}" is not an origin: scheme, host and port only (e.g. https://desk.example.com)`,
    )
  }
  return url.origin
}

function parseBoolean(raw: string | undefined, variable: string): boolean | undefined {
  const value = nonEmpty(raw, variable)
  if (value === undefined) return undefined
  if (value === 'true') return true
  if (value === 'false') return false
  throw new ConfigError(variable, `must be true or false (got "${value}")`)
}

function checkKey(key: string, variable: string): void {
  if (key.length < 32) {
    throw new ConfigError(
      variable,
      'must be at least 32 characters (e.g. `openssl rand -base64 32`)',
    )
  }
}

function list(raw: string | undefined): string[] {
  return (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
}
