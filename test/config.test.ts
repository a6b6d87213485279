import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { CONFIG_VARIABLES, ConfigError, loadConfig } from '../src/config.ts'
import { killLeftovers, startExpectingFailure, tempDataDir } from './helpers/spawn.ts'

const KEY = 'k'.repeat(32)

function problem(env: Record<string, string>): string {
  try {
    loadConfig(env)
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return (error as Error).message
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`)
}

describe('loadConfig', () => {
  it('reads exactly the variables CONFIG_VARIABLES lists (what tests and the bench scrub)', () => {
    const read = new Set<string>()
    const env = new Proxy({} as Record<string, string | undefined>, {
      get(_target, name) {
        if (typeof name === 'string') read.add(name)
        return undefined
      },
    })
    loadConfig(env)
    expect([...read].sort()).toEqual([...CONFIG_VARIABLES].sort())
  })

  it('has the contract defaults when nothing is set', () => {
    const config = loadConfig({})
    expect(config).toEqual({
      port: 4000,
      host: '127.0.0.1',
      database: { kind: 'pglite', dataDir: path.resolve('.data') },
      dataDir: path.resolve('./.data'),
      publicBaseUrl: 'http://localhost:4000',
      encryptionKey: null,
      previousEncryptionKeys: [],
      outboundAllowHosts: [],
      webhookAllowHosts: [],
      production: false,
      logLevel: 'info',
      logFormat: null,
      corsOrigins: [],
      introspection: true,
      rateLimits: {
        enabled: true,
        perKey: 6000,
        perTenant: 12000,
        perAddress: 120,
        anonymousPerAddress: 60,
        startsPerConversation: 10,
        liveMappingsPerTenant: 30,
      },
      trustProxy: { ranges: [] },
      redisUrl: null,
      graphqlLimits: {
        maxDepth: 15,
        maxAliases: 15,
        maxTokens: 2000,
        maxDirectives: 10,
        maxCost: 1000,
      },
      metricsPort: null,
      tracing: false,
      sessionRetentionDays: 30,
    })
    expect(Object.isFrozen(config)).toBe(true)
  })

  it('derives PUBLIC_BASE_URL from PORT, and resolves a relative DATA_DIR', () => {
    const config = loadConfig({ PORT: '8080', DATA_DIR: 'var/db' })
    expect(config.publicBaseUrl).toBe('http://localhost:8080')
    expect(config.dataDir).toBe(path.resolve('var/db'))
    expect(config.database).toEqual({ kind: 'pglite', dataDir: path.resolve('var/db') })
    expect(loadConfig({ PORT: '0' }).port).toBe(0)
  })

  it('reads every variable of the contract', () => {
    const config = loadConfig({
      PORT: '5000',
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgres://app@db.internal:5432/euo',
      DATA_DIR: '/tmp/euo-data',
      PUBLIC_BASE_URL: 'https://{tenant}.auth.example.com/',
      ENCRYPTION_KEY: KEY,
      ENCRYPTION_KEY_PREVIOUS: ` ${'p'.repeat(32)} , ${'q'.repeat(40)} `,
      OUTBOUND_ALLOW_HOSTS: 'IdP.Local:8443, 127.0.0.1 ,',
      WEBHOOK_ALLOW_HOSTS: 'Hooks.Internal, 10.1.2.3:8080',
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
      CORS_ORIGINS: 'https://desk.example.com, http://localhost:3000',
      GRAPHQL_INTROSPECTION: 'true',
      GRAPHQL_MAX_DEPTH: '20',
      GRAPHQL_MAX_ALIASES: '30',
      GRAPHQL_MAX_TOKENS: '5000',
      GRAPHQL_MAX_DIRECTIVES: '5',
      GRAPHQL_MAX_COST: '3000',
      RATE_LIMITS: 'off',
      RATE_LIMIT_KEY_PER_MINUTE: '100',
      RATE_LIMIT_TENANT_PER_MINUTE: '200',
      RATE_LIMIT_IP_PER_MINUTE: '30',
      RATE_LIMIT_ANONYMOUS_PER_MINUTE: '20',
      RATE_LIMIT_CONVERSATION_PER_MINUTE: '3',
      RATE_LIMIT_LIVE_MAPPING_PER_MINUTE: '5',
      TRUST_PROXY: '10.0.0.0/8, 192.168.1.1, fd00::/8',
      REDIS_URL: 'redis://127.0.0.1:6379',
      METRICS_PORT: '9464',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      DATABASE_LISTEN_URL: 'postgres://app@db-direct.internal:5432/euo',
      SESSION_RETENTION_DAYS: '7',
    })
    expect(config).toEqual({
      port: 5000,
      host: '0.0.0.0',
      database: {
        kind: 'postgres',
        url: 'postgres://app@db.internal:5432/euo',
        listenUrl: 'postgres://app@db-direct.internal:5432/euo',
      },
      dataDir: '/tmp/euo-data',
      publicBaseUrl: 'https://{tenant}.auth.example.com',
      encryptionKey: KEY,
      previousEncryptionKeys: ['p'.repeat(32), 'q'.repeat(40)],
      outboundAllowHosts: ['idp.local:8443', '127.0.0.1'],
      webhookAllowHosts: ['hooks.internal', '10.1.2.3:8080'],
      production: true,
      logLevel: 'warn',
      logFormat: 'json',
      corsOrigins: ['https://desk.example.com', 'http://localhost:3000'],
      introspection: true,
      rateLimits: {
        enabled: false,
        perKey: 100,
        perTenant: 200,
        perAddress: 30,
        anonymousPerAddress: 20,
        startsPerConversation: 3,
        liveMappingsPerTenant: 5,
      },
      trustProxy: {
        ranges: [
          { v6: false, base: 0x0a000000n, bits: 8 },
          { v6: false, base: 0xc0a80101n, bits: 32 },
          { v6: true, base: 0xfd000000000000000000000000000000n, bits: 8 },
        ],
      },
      redisUrl: 'redis://127.0.0.1:6379',
      graphqlLimits: {
        maxDepth: 20,
        maxAliases: 30,
        maxTokens: 5000,
        maxDirectives: 5,
        maxCost: 3000,
      },
      metricsPort: 9464,
      tracing: true,
      sessionRetentionDays: 7,
    })
  })

  it('listens through DATABASE_URL unless DATABASE_LISTEN_URL says otherwise', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u@h/db' }).database).toEqual({
      kind: 'postgres',
      url: 'postgres://u@h/db',
      listenUrl: 'postgres://u@h/db',
    })
  })

  it('turns introspection off in production unless GRAPHQL_INTROSPECTION says otherwise', () => {
    const production = {
      NODE_ENV: 'production',
      ENCRYPTION_KEY: KEY,
      PUBLIC_BASE_URL: 'https://a.example.com',
    }
    expect(loadConfig(production).introspection).toBe(false)
    expect(loadConfig({ ...production, GRAPHQL_INTROSPECTION: 'true' }).introspection).toBe(true)
    expect(loadConfig({ GRAPHQL_INTROSPECTION: 'false' }).introspection).toBe(false)
  })

  it('lets production use plain http for PUBLIC_BASE_URL on a loopback host only', () => {
    const production = { NODE_ENV: 'production', ENCRYPTION_KEY: KEY }
    for (const base of ['http://localhost:4000', 'http://127.0.0.1:8080', 'http://[::1]:4000']) {
      expect(loadConfig({ ...production, PUBLIC_BASE_URL: base }).publicBaseUrl).toBe(base)
    }
    expect(loadConfig({ PUBLIC_BASE_URL: 'http://auth.example.com' }).publicBaseUrl).toBe(
      'http://auth.example.com',
    )
  })

  it('accepts postgresql:// and a socket host given as a parameter', () => {
    expect(loadConfig({ DATABASE_URL: 'postgresql://u@h/db' }).database.kind).toBe('postgres')
    expect(
      loadConfig({ DATABASE_URL: 'postgres:///db?host=/var/run/postgresql' }).database.kind,
    ).toBe('postgres')
  })

  it.each([
    [{ PORT: 'abc' }, /^PORT: .*0 to 65535.*"abc"/],
    [{ PORT: '70000' }, /^PORT: .*"70000"/],
    [{ PORT: '-1' }, /^PORT: /],
    [{ PORT: '80.5' }, /^PORT: /],
    [{ PORT: '' }, /^PORT: /],
    [{ HOST: ' ' }, /^HOST: is set but empty/],
    [{ DATA_DIR: '' }, /^DATA_DIR: is set but empty/],
    [{ DATABASE_URL: 'not a url' }, /^DATABASE_URL: is not a URL/],
    [{ DATABASE_URL: 'mysql://x' }, /^DATABASE_URL: must start with postgres:\/\//],
    [{ DATABASE_URL: '' }, /^DATABASE_URL: is set but empty/],
    [
      { DATABASE_LISTEN_URL: 'postgres://u@h/db' },
      /^DATABASE_LISTEN_URL: is only used with DATABASE_URL/,
    ],
    [
      { DATABASE_URL: 'postgres://u@h/db', DATABASE_LISTEN_URL: 'mysql://x' },
      /^DATABASE_LISTEN_URL: must start with postgres:\/\//,
    ],
    [
      { SESSION_RETENTION_DAYS: '0' },
      /^SESSION_RETENTION_DAYS: must be a whole number of days from 1 to 3650 \(got "0"\)/,
    ],
    [{ SESSION_RETENTION_DAYS: '2.5' }, /^SESSION_RETENTION_DAYS: .*"2.5"/],
    [{ SESSION_RETENTION_DAYS: '9999' }, /^SESSION_RETENTION_DAYS: .*"9999"/],
    [{ SESSION_RETENTION_DAYS: '' }, /^SESSION_RETENTION_DAYS: is set but empty/],
    [{ PUBLIC_BASE_URL: 'example.com' }, /^PUBLIC_BASE_URL: is not an absolute URL/],
    [{ PUBLIC_BASE_URL: 'ftp://example.com' }, /^PUBLIC_BASE_URL: must be an http or https URL/],
    [{ PUBLIC_BASE_URL: 'https://example.com/?a=1' }, /^PUBLIC_BASE_URL: must be an origin/],
    [{ NODE_ENV: 'production' }, /^ENCRYPTION_KEY: is required when NODE_ENV=production/],
    [{ ENCRYPTION_KEY: 'short' }, /^ENCRYPTION_KEY: must be at least 32 characters/],
    [
      { ENCRYPTION_KEY: KEY, ENCRYPTION_KEY_PREVIOUS: 'short' },
      /^ENCRYPTION_KEY_PREVIOUS: must be at least 32/,
    ],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL: must be one of/],
    [{ LOG_FORMAT: 'xml' }, /^LOG_FORMAT: must be pretty or json \(got "xml"\)/],
    [
      { NODE_ENV: 'production', ENCRYPTION_KEY: KEY, PUBLIC_BASE_URL: 'http://auth.example.com' },
      /^PUBLIC_BASE_URL: must be https when NODE_ENV=production/,
    ],
    [
      {
        NODE_ENV: 'production',
        ENCRYPTION_KEY: KEY,
        PUBLIC_BASE_URL: 'http://{tenant}.example.com',
      },
      /^PUBLIC_BASE_URL: must be https/,
    ],
    [{ CORS_ORIGINS: 'desk.example.com' }, /^CORS_ORIGINS: "desk.example.com" is not an origin/],
    [
      { CORS_ORIGINS: 'https://desk.example.com/app' },
      /^CORS_ORIGINS: .* scheme, host and port only/,
    ],
    [{ GRAPHQL_INTROSPECTION: 'yes' }, /^GRAPHQL_INTROSPECTION: must be true or false/],
    [{ GRAPHQL_MAX_DEPTH: 'ten' }, /^GRAPHQL_MAX_DEPTH: must be a whole number from 1 .*"ten"/],
    [{ GRAPHQL_MAX_ALIASES: '0' }, /^GRAPHQL_MAX_ALIASES: must be a whole number from 1/],
    [{ GRAPHQL_MAX_TOKENS: '1e4' }, /^GRAPHQL_MAX_TOKENS: must be a whole number/],
    [{ GRAPHQL_MAX_DIRECTIVES: '-1' }, /^GRAPHQL_MAX_DIRECTIVES: must be a whole number/],
    [{ GRAPHQL_MAX_COST: '' }, /^GRAPHQL_MAX_COST: is set but empty/],
    [{ RATE_LIMITS: 'false' }, /^RATE_LIMITS: must be on or off \(got "false"\)/],
    [
      { RATE_LIMIT_KEY_PER_MINUTE: '0' },
      /^RATE_LIMIT_KEY_PER_MINUTE: must be a whole number from 1/,
    ],
    [{ RATE_LIMIT_IP_PER_MINUTE: 'many' }, /^RATE_LIMIT_IP_PER_MINUTE: must be a whole number/],
    [{ RATE_LIMIT_TENANT_PER_MINUTE: '1.5' }, /^RATE_LIMIT_TENANT_PER_MINUTE: must be a whole/],
    [{ RATE_LIMIT_ANONYMOUS_PER_MINUTE: '' }, /^RATE_LIMIT_ANONYMOUS_PER_MINUTE: is set but empty/],
    [{ RATE_LIMIT_CONVERSATION_PER_MINUTE: '-3' }, /^RATE_LIMIT_CONVERSATION_PER_MINUTE: must/],
    [{ RATE_LIMIT_LIVE_MAPPING_PER_MINUTE: 'x' }, /^RATE_LIMIT_LIVE_MAPPING_PER_MINUTE: must/],
    [
      { TRUST_PROXY: '10.0.0.0/33' },
      /^TRUST_PROXY: "10.0.0.0\/33" is not an IP address or CIDR range/,
    ],
    [{ TRUST_PROXY: 'lb.internal' }, /^TRUST_PROXY: "lb.internal" is not an IP address/],
    [{ REDIS_URL: 'localhost:6379' }, /^REDIS_URL: must start with redis:\/\/ or rediss:\/\//],
    [{ METRICS_PORT: 'abc' }, /^METRICS_PORT: .*0 to 65535.*"abc"/],
    [{ METRICS_PORT: '' }, /^METRICS_PORT: /],
    [{ PORT: '9464', METRICS_PORT: '9464' }, /^METRICS_PORT: must differ from PORT/],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' },
      /^OTEL_EXPORTER_OTLP_ENDPOINT: must be an http/,
    ],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }, /^OTEL_EXPORTER_OTLP_ENDPOINT: is not a URL/],
    [
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '' },
      /^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: is set but empty/,
    ],
    [
      { OUTBOUND_ALLOW_HOSTS: 'https://idp.example.com/' },
      /^OUTBOUND_ALLOW_HOSTS: .* is not a host name/,
    ],
    [{ WEBHOOK_ALLOW_HOSTS: 'hooks@internal' }, /^WEBHOOK_ALLOW_HOSTS: .* is not a host name/],
  ])('refuses %j with one line naming the variable', (env, message) => {
    const text = problem(env)
    expect(text).toMatch(message)
    expect(text).not.toContain('\n')
  })
})

describe('npm start with a bad configuration', () => {
  afterAll(killLeftovers)

  it('exits non-zero with one stderr line naming the variable, before touching DATA_DIR', async () => {
    const data = tempDataDir()
    const missing = path.join(data.dir, 'never-created')
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ PORT: 'abc' }, /PORT: must be a whole number/],
      [{ PORT: '70000' }, /PORT: must be a whole number .*"70000"/],
      [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL: must start with postgres:\/\//],
      [{ DATABASE_URL: 'not a url' }, /DATABASE_URL: is not a URL/],
      [{ NODE_ENV: 'production' }, /ENCRYPTION_KEY: is required when NODE_ENV=production/],
      [
        {
          NODE_ENV: 'production',
          ENCRYPTION_KEY: 'k'.repeat(40),
          PUBLIC_BASE_URL: 'http://auth.example.com',
        },
        /PUBLIC_BASE_URL: must be https when NODE_ENV=production/,
      ],
      [{ ENCRYPTION_KEY: 'too-short' }, /ENCRYPTION_KEY: must be at least 32 characters/],
      [{ DATA_DIR: '' }, /DATA_DIR: is set but empty/],
    ]
    try {
      const results = await Promise.all(
        cases.map(([env]) => startExpectingFailure({ DATA_DIR: missing, ...env })),
      )
      results.forEach((result, i) => {
        const [env, message] = cases[i]!
        const context = `${JSON.stringify(env)} → ${JSON.stringify(result)}`
        // EX_CONFIG, for every wrong variable.
        expect(result.code, context).toBe(78)
        const lines = result.stderr.split('\n').filter(Boolean)
        expect(lines, context).toHaveLength(1)
        expect(lines[0], context).toMatch(message)
        expect(result.stdout, context).toBe('')
      })
      // Nothing was created: the configuration is checked before the database is opened.
      const { existsSync } = await import('node:fs')
      expect(existsSync(missing)).toBe(false)
    } finally {
      data.remove()
    }
  })
})
