/**
 * Configuration, read once from the environment (the names are the public contract's).
 * `loadConfig` is the only reader of `process.env`; a wrong value throws a ConfigError whose
 * message is one line naming the variable and what is wrong with it.
 */
import path from 'node:path'
import { parseTrustedProxies, type TrustedProxies } from './core/client-address.ts'

export class ConfigError extends Error {
  constructor(variable: string, problem: string) {
    super(`${variable}: ${problem}`)
    this.name = 'ConfigError'
  }
}

export type DatabaseConfig =
  | {
      readonly kind: 'postgres'
      readonly url: string
      /** Where to LISTEN (a direct connection when `url` goes through a pooling proxy). */
      readonly listenUrl: string
    }
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
  /** `pretty` or `json`; null: pretty when standard output is a terminal, JSON otherwise. */
  readonly logFormat: 'pretty' | 'json' | null
  /** Browser origins allowed to call /graphql (agent desktops); never with credentials. */
  readonly corsOrigins: readonly string[]
  /** Whether the schema may be introspected (and errors suggest field names). */
  readonly introspection: boolean
  readonly graphqlLimits: GraphQLLimits
  readonly rateLimits: RateLimitConfig
  /** Load balancers whose X-Forwarded-For is believed (TRUST_PROXY). */
  readonly trustProxy: TrustedProxies
  /** Redis for rate limits shared exactly across instances; null: PostgreSQL or memory. */
  readonly redisUrl: string | null
  /** Where Prometheus metrics are served (on HOST, path /metrics); null: not served. */
  readonly metricsPort: number | null
  /**
   * Whether traces are sent over OTLP (an OTLP endpoint is set); the OpenTelemetry SDK reads the
   * endpoint and the other OTEL_* variables itself.
   */
  readonly tracing: boolean
  /** Finished sessions (with their identity data) are deleted this many days after they ended. */
  readonly sessionRetentionDays: number
}

/** What one GraphQL document may ask for (graphql/limits.ts). */
export interface GraphQLLimits {
  readonly maxDepth: number
  readonly maxAliases: number
  readonly maxTokens: number
  readonly maxDirectives: number
  readonly maxCost: number
}

/** Requests per minute, per bucket (services/rate-limits.ts). */
export interface RateLimitConfig {
  readonly enabled: boolean
  /** GraphQL requests per API key. */
  readonly perKey: number
  /** GraphQL requests per tenant, all its keys together. */
  readonly perTenant: number
  /** Link and callback requests per client address. */
  readonly perAddress: number
  /** GraphQL requests without a valid key, per client address. */
  readonly anonymousPerAddress: number
  /** startEndUserAuth per conversation (and integration's tenant). */
  readonly startsPerConversation: number
  /** testWhoAmIMapping calls that fetch a WhoAmI answer, per tenant. */
  readonly liveMappingsPerTenant: number
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
  'LOG_FORMAT',
  'NODE_ENV',
  'CORS_ORIGINS',
  'GRAPHQL_INTROSPECTION',
  'GRAPHQL_MAX_DEPTH',
  'GRAPHQL_MAX_ALIASES',
  'GRAPHQL_MAX_TOKENS',
  'GRAPHQL_MAX_DIRECTIVES',
  'GRAPHQL_MAX_COST',
  'RATE_LIMITS',
  'RATE_LIMIT_KEY_PER_MINUTE',
  'RATE_LIMIT_TENANT_PER_MINUTE',
  'RATE_LIMIT_IP_PER_MINUTE',
  'RATE_LIMIT_ANONYMOUS_PER_MINUTE',
  'RATE_LIMIT_CONVERSATION_PER_MINUTE',
  'RATE_LIMIT_LIVE_MAPPING_PER_MINUTE',
  'TRUST_PROXY',
  'REDIS_URL',
  'METRICS_PORT',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'DATABASE_LISTEN_URL',
  'SESSION_RETENTION_DAYS',
] as const

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export function loadConfig(env: Env = process.env): Config {
  const production = env.NODE_ENV === 'production'
  const port = parsePort(env.PORT)
  const metricsPort =
    env.METRICS_PORT === undefined ? null : parsePort(env.METRICS_PORT, 'METRICS_PORT')
  if (metricsPort !== null && metricsPort !== 0 && metricsPort === port) {
    throw new ConfigError('METRICS_PORT', `must differ from PORT (both are ${port})`)
  }
  const host = nonEmpty(env.HOST, 'HOST') ?? '127.0.0.1'
  const dataDir = path.resolve(nonEmpty(env.DATA_DIR, 'DATA_DIR') ?? './.data')
  const databaseUrl = nonEmpty(env.DATABASE_URL, 'DATABASE_URL')
  if (databaseUrl !== undefined) checkDatabaseUrl(databaseUrl, 'DATABASE_URL')
  const listenUrl = nonEmpty(env.DATABASE_LISTEN_URL, 'DATABASE_LISTEN_URL')
  if (listenUrl !== undefined) {
    if (databaseUrl === undefined) {
      throw new ConfigError(
        'DATABASE_LISTEN_URL',
        'is only used with DATABASE_URL (the embedded database needs no listening connection)',
      )
    }
    checkDatabaseUrl(listenUrl, 'DATABASE_LISTEN_URL')
  }
  const sessionRetentionDays = parseRetentionDays(env.SESSION_RETENTION_DAYS)
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
  const logFormat = nonEmpty(env.LOG_FORMAT, 'LOG_FORMAT') ?? null
  if (logFormat !== null && logFormat !== 'pretty' && logFormat !== 'json') {
    throw new ConfigError('LOG_FORMAT', `must be pretty or json (got "${logFormat}")`)
  }
  const outboundAllowHosts = allowHosts(env, 'OUTBOUND_ALLOW_HOSTS')
  const webhookAllowHosts = allowHosts(env, 'WEBHOOK_ALLOW_HOSTS')

  const otlp = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] as const
  for (const variable of otlp) checkOtlpEndpoint(env[variable], variable)
  const tracing = otlp.some((variable) => env[variable] !== undefined)

  const corsOrigins = list(env.CORS_ORIGINS).map((origin) => parseOrigin(origin))
  const introspection =
    parseBoolean(env.GRAPHQL_INTROSPECTION, 'GRAPHQL_INTROSPECTION') ?? !production

  const graphqlLimits: GraphQLLimits = Object.freeze({
    maxDepth: parseCount(env.GRAPHQL_MAX_DEPTH, 'GRAPHQL_MAX_DEPTH', 15),
    maxAliases: parseCount(env.GRAPHQL_MAX_ALIASES, 'GRAPHQL_MAX_ALIASES', 15),
    maxTokens: parseCount(env.GRAPHQL_MAX_TOKENS, 'GRAPHQL_MAX_TOKENS', 2000),
    maxDirectives: parseCount(env.GRAPHQL_MAX_DIRECTIVES, 'GRAPHQL_MAX_DIRECTIVES', 10),
    maxCost: parseCount(env.GRAPHQL_MAX_COST, 'GRAPHQL_MAX_COST', 1000),
  })
  const rateLimitsSwitch = nonEmpty(env.RATE_LIMITS, 'RATE_LIMITS') ?? 'on'
  if (rateLimitsSwitch !== 'on' && rateLimitsSwitch !== 'off') {
    throw new ConfigError('RATE_LIMITS', `must be on or off (got "${rateLimitsSwitch}")`)
  }
  const rateLimits: RateLimitConfig = Object.freeze({
    enabled: rateLimitsSwitch === 'on',
    perKey: parseCount(env.RATE_LIMIT_KEY_PER_MINUTE, 'RATE_LIMIT_KEY_PER_MINUTE', 6000),
    perTenant: parseCount(env.RATE_LIMIT_TENANT_PER_MINUTE, 'RATE_LIMIT_TENANT_PER_MINUTE', 12000),
    perAddress: parseCount(env.RATE_LIMIT_IP_PER_MINUTE, 'RATE_LIMIT_IP_PER_MINUTE', 120),
    anonymousPerAddress: parseCount(
      env.RATE_LIMIT_ANONYMOUS_PER_MINUTE,
      'RATE_LIMIT_ANONYMOUS_PER_MINUTE',
      60,
    ),
    startsPerConversation: parseCount(
      env.RATE_LIMIT_CONVERSATION_PER_MINUTE,
      'RATE_LIMIT_CONVERSATION_PER_MINUTE',
      10,
    ),
    liveMappingsPerTenant: parseCount(
      env.RATE_LIMIT_LIVE_MAPPING_PER_MINUTE,
      'RATE_LIMIT_LIVE_MAPPING_PER_MINUTE',
      30,
    ),
  })
  const trustProxy = parseTrustedProxies(list(env.TRUST_PROXY))
  if ('error' in trustProxy) throw new ConfigError('TRUST_PROXY', trustProxy.error)
  const redisUrl = nonEmpty(env.REDIS_URL, 'REDIS_URL') ?? null
  if (redisUrl !== null && !/^rediss?:\/\/[^\s]+$/.test(redisUrl)) {
    throw new ConfigError('REDIS_URL', 'must start with redis:// or rediss://')
  }

  return Object.freeze({
    corsOrigins,
    introspection,
    graphqlLimits,
    rateLimits,
    trustProxy,
    redisUrl,
    metricsPort,
    tracing,
    port,
    host,
    database: databaseUrl
      ? { kind: 'postgres' as const, url: databaseUrl, listenUrl: listenUrl ?? databaseUrl }
      : { kind: 'pglite' as const, dataDir },
    sessionRetentionDays,
    dataDir,
    publicBaseUrl,
    encryptionKey,
    previousEncryptionKeys,
    outboundAllowHosts,
    webhookAllowHosts,
    production,
    logLevel,
    logFormat,
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

function parsePort(raw: string | undefined, variable = 'PORT'): number {
  if (raw === undefined) return 4000
  const value = raw.trim()
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) {
    throw new ConfigError(variable, `must be a whole number from 0 to 65535 (got "${raw}")`)
  }
  return Number(value)
}

function checkDatabaseUrl(raw: string, variable: string): void {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError(variable, 'is not a URL (expected postgres://user@host:port/database)')
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError(variable, `must start with postgres:// (got "${url.protocol}//")`)
  }
  if (!url.hostname && !url.searchParams.get('host')) {
    throw new ConfigError(variable, 'has no host (expected postgres://user@host:port/database)')
  }
}

const MAX_RETENTION_DAYS = 3650

function parseRetentionDays(raw: string | undefined): number {
  const value = nonEmpty(raw, 'SESSION_RETENTION_DAYS')
  if (value === undefined) return 30
  if (!/^\d{1,4}$/.test(value) || Number(value) < 1 || Number(value) > MAX_RETENTION_DAYS) {
    throw new ConfigError(
      'SESSION_RETENTION_DAYS',
      `must be a whole number of days from 1 to ${MAX_RETENTION_DAYS} (got "${raw}")`,
    )
  }
  return Number(value)
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

/** A whole number from 1 up (a limit of 0 would refuse everything: RATE_LIMITS=off is the switch). */
function parseCount(raw: string | undefined, variable: string, fallback: number): number {
  const value = nonEmpty(raw, variable)
  if (value === undefined) return fallback
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1) {
    throw new ConfigError(variable, `must be a whole number from 1 to 999999999 (got "${value}")`)
  }
  return Number(value)
}

function parseBoolean(raw: string | undefined, variable: string): boolean | undefined {
  const value = nonEmpty(raw, variable)
  if (value === undefined) return undefined
  if (value === 'true') return true
  if (value === 'false') return false
  throw new ConfigError(variable, `must be true or false (got "${value}")`)
}

function checkOtlpEndpoint(raw: string | undefined, variable: string): void {
  const value = nonEmpty(raw, variable)
  if (value === undefined) return
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigError(variable, `is not a URL (e.g. http://collector:4318; got "${value}")`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(variable, `must be an http or https URL (OTLP over HTTP; got "${value}")`)
  }
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
