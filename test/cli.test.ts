/**
 * The CLI as the contract states it: one JSON object on stdout and nothing else on success;
 * errors on stderr, a non-zero exit and an empty stdout. On the embedded database it opens
 * DATA_DIR itself when no service runs, and hands its command to the service when one does
 * (never two processes in the same PGlite files); with DATABASE_URL it works on PostgreSQL.
 */
import { existsSync } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { UsageError, validateArgs } from '../src/runtime/cli-commands.ts'
import { readOwner } from '../src/runtime/owner-lock.ts'
import {
  cli,
  createPgDatabase,
  graphql,
  killLeftovers,
  run,
  startServiceProcess,
  tempDataDir,
  type Completed,
  type TempDir,
  type ServiceProcess,
} from './helpers/spawn.ts'
import { TEST_DATABASE_URL } from './helpers/test-db.ts'

const API_KEY = /^euo_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/
const VIEWER = '{ viewer { role tenant { slug } } }'

afterAll(killLeftovers)

/** stdout is exactly one line holding one JSON object; returns it. */
function output<T>(result: Completed): T {
  expect(result.code, result.stderr).toBe(0)
  expect(result.stdout).toMatch(/^\{.*\}\n$/)
  const value = JSON.parse(result.stdout) as T
  expect(`${JSON.stringify(value)}\n`).toBe(result.stdout)
  return value
}

/** A refusal: non-zero exit, nothing on stdout, the reason on stderr's first line. */
function refusal(result: Completed, code: number, reason: RegExp): void {
  const context = JSON.stringify(result)
  expect(result.code, context).toBe(code)
  expect(result.stdout, context).toBe('')
  const first = result.stderr.split('\n').find((l) => l.startsWith('error: '))
  expect(first, context).toMatch(reason)
}

interface CreatedTenant {
  tenant: { id: string; slug: string; name: string }
  apiKey: string
  role: string
}

const BAD_SLUGS: Array<[string, string, RegExp]> = [
  ['upper case', 'Acme', /slug: may contain only lower-case letters, digits and hyphens/],
  ['too long', 'a'.repeat(64), /slug: must be at most 63 characters/],
  ['a leading hyphen', '-acme', /slug: must not start or end with a hyphen/],
]

describe('CLI arguments (checked in-process)', () => {
  it.each([
    [['tenant', 'create', 'acme'], null],
    [['tenant', 'create', 'acme', '--name', 'Acme Inc.'], null],
    [['tenant', 'create', 'acme', '--name=Acme Inc.'], null],
    [['apikey', 'create', 'acme', '--role', 'ADMIN'], null],
    [['apikey', 'create', 'acme', '--role=AGENT', '--label', 'bot'], null],
    [['apikey', 'revoke', 'acme', '0123456789abcdef'], null],
    [[], /no command given/],
    [['tenant'], /unknown command "tenant"/],
    [['tenant', 'create'], /exactly one <slug>/],
    [['tenant', 'create', 'a', 'b'], /exactly one <slug>/],
    [['tenant', 'create', 'acme', '--colour', 'red'], /unknown option --colour/],
    [['tenant', 'create', 'acme', '--name'], /--name needs a value/],
    [['apikey', 'create', 'acme'], /needs --role/],
    [['apikey', 'create', 'acme', '--role'], /--role needs a value/],
    [['apikey', 'create', 'acme', '--role', 'agent'], /--role must be one of ADMIN, AGENT/],
    [['apikey', 'revoke', 'acme'], /<slug> and <keyId>/],
  ])('%j → %s', (argv, problem) => {
    if (problem === null) expect(() => validateArgs(argv)).not.toThrow()
    else expect(() => validateArgs(argv)).toThrow(problem)
    if (problem !== null) expect(() => validateArgs(argv)).toThrow(UsageError)
  })
})

describe('CLI usage errors', () => {
  it('are refused with exit 2 and the usage, before DATA_DIR is touched', async () => {
    const data = tempDataDir()
    const dir = path.join(data.dir, 'never-created')
    const cases: Array<[string[], RegExp]> = [
      [[], /no command given/],
      [['tenant', 'delete', 'acme'], /unknown command "tenant delete acme"/],
      [['apikey', 'create', 'acme'], /needs --role ADMIN or --role AGENT/],
      [
        ['apikey', 'create', 'acme', '--role', 'OWNER'],
        /--role must be one of ADMIN, AGENT \(got "OWNER"\)/,
      ],
    ]
    try {
      const results = await Promise.all(cases.map(([argv]) => cli(argv, { DATA_DIR: dir })))
      results.forEach((result, i) => {
        refusal(result, 2, cases[i]![1])
        expect(result.stderr).toContain('usage:')
      })
      expect(existsSync(dir)).toBe(false)
    } finally {
      data.remove()
    }
  })
})

describe('CLI on the embedded database', () => {
  let data: TempDir
  let env: Record<string, string>
  let acme: CreatedTenant
  beforeAll(() => {
    data = tempDataDir()
    env = { DATA_DIR: data.dir }
  })
  afterAll(() => data.remove())

  describe('with no service running (it opens DATA_DIR itself)', () => {
    it('`npm run --silent cli -- tenant create <slug>` prints exactly one JSON object', async () => {
      const result = await run(
        'npm',
        ['run', '--silent', 'cli', '--', 'tenant', 'create', 'acme'],
        { env },
      )
      acme = output<CreatedTenant>(result)
      expect(acme).toMatchObject({ tenant: { slug: 'acme', name: 'acme' }, role: 'ADMIN' })
      expect(acme.tenant.id).toMatch(/^[0-9a-f-]{36}$/)
      expect(acme.apiKey).toMatch(API_KEY)
      expect(existsSync(path.join(data.dir, 'owner.lock'))).toBe(false)
    })

    it('`apikey create <slug> --role AGENT` prints the new key and its role', async () => {
      const key = output<{ apiKey: string; role: string }>(
        await run(
          'npm',
          ['run', '--silent', 'cli', '--', 'apikey', 'create', 'acme', '--role', 'AGENT'],
          { env },
        ),
      )
      expect(key).toMatchObject({ role: 'AGENT' })
      expect(key.apiKey).toMatch(API_KEY)
      expect(key.apiKey).not.toBe(acme.apiKey)
    })
  })

  describe('while the service runs on the same DATA_DIR (it hands the command over)', () => {
    let service: ServiceProcess
    beforeAll(async () => {
      service = await startServiceProcess(env)
    })
    afterAll(async () => {
      expect((await service.stop()).code).toBe(0)
    })

    it('creates tenants and keys that the running service accepts at once', async () => {
      const [globex, agent] = await Promise.all([
        cli(['tenant', 'create', 'globex', '--name', 'Globex Corporation'], env),
        cli(['apikey', 'create', 'acme', '--role', 'AGENT', '--label', 'bot'], env),
      ])
      const created = output<CreatedTenant>(globex)
      expect(created.tenant).toMatchObject({ slug: 'globex', name: 'Globex Corporation' })
      const key = output<{ apiKey: string; role: string }>(agent)
      expect(key.role).toBe('AGENT')
      expect(await graphql(service.url, created.apiKey, VIEWER)).toEqual({
        data: { viewer: { role: 'ADMIN', tenant: { slug: 'globex' } } },
      })
      expect(await graphql(service.url, key.apiKey, VIEWER)).toEqual({
        data: { viewer: { role: 'AGENT', tenant: { slug: 'acme' } } },
      })
      // The key created before the service started works too.
      expect(await graphql(service.url, acme.apiKey, VIEWER)).toEqual({
        data: { viewer: { role: 'ADMIN', tenant: { slug: 'acme' } } },
      })
      // Only the service ever opened the files: the lock still names it.
      expect(readOwner(data.dir)?.pid).toBe(service.pid)
    })

    it('reports each refusal of the service on stderr with an empty stdout', async () => {
      const cases: Array<[string[], RegExp]> = [
        [['tenant', 'create', 'acme'], /slug: a tenant "acme" already exists/],
        [['apikey', 'create', 'nosuch', '--role', 'AGENT'], /tenant.*nosuch/],
        ...BAD_SLUGS.map(([, slug, reason]): [string[], RegExp] => [
          ['tenant', 'create', slug],
          reason,
        ]),
      ]
      const results = await Promise.all(cases.map(([argv]) => cli(argv, env)))
      results.forEach((result, i) => refusal(result, 1, cases[i]![1]))
      expect(readOwner(data.dir)?.pid).toBe(service.pid)
      expect((await fetch(`${service.url}/readyz`)).status).toBe(200)
    })
  })
})

describe.skipIf(!TEST_DATABASE_URL)('CLI on PostgreSQL (DATABASE_URL)', () => {
  let database: { url: string; drop(): Promise<void> }
  let env: Record<string, string>
  let data: TempDir
  beforeAll(async () => {
    data = tempDataDir()
    database = await createPgDatabase(TEST_DATABASE_URL!)
    env = { DATABASE_URL: database.url, DATA_DIR: data.dir, ENCRYPTION_KEY: 'e'.repeat(44) }
  })
  afterAll(async () => {
    await database?.drop()
    data?.remove()
  })

  it('creates tenants and keys directly in the database', async () => {
    const acme = output<CreatedTenant>(await cli(['tenant', 'create', 'acme'], env))
    expect(acme.tenant.slug).toBe('acme')
    expect(acme.apiKey).toMatch(API_KEY)
    const key = output<{ apiKey: string; role: string }>(
      await cli(['apikey', 'create', 'acme', '--role', 'AGENT'], env),
    )
    expect(key.role).toBe('AGENT')
    const client = new pg.Client({ connectionString: database.url })
    await client.connect()
    try {
      const { rows } = await client.query(
        'select k.role from api_keys k join tenants t on t.id = k.tenant_id where t.slug = $1 order by k.role',
        ['acme'],
      )
      expect(rows).toEqual([{ role: 'ADMIN' }, { role: 'AGENT' }])
    } finally {
      await client.end()
    }
    // PostgreSQL needs no owner lock in DATA_DIR.
    expect(existsSync(path.join(data.dir, 'owner.lock'))).toBe(false)
  })

  it('refuses a duplicate slug, an unknown tenant and bad slugs', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['tenant', 'create', 'acme'], /slug: a tenant "acme" already exists/],
      [['apikey', 'create', 'nosuch', '--role', 'ADMIN'], /tenant.*nosuch/],
      [['tenant', 'create', 'Acme'], /slug: may contain only lower-case letters/],
    ]
    const results = await Promise.all(cases.map(([argv]) => cli(argv, env)))
    results.forEach((result, i) => refusal(result, 1, cases[i]![1]))
  })
})
