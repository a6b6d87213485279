/**
 * Every rule on integration input, through the API: each bad value is refused with BAD_USER_INPUT,
 * a message that names the field and says what is wrong, and no write at all (rows, audit).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'
import {
  create,
  CREATE,
  expectBadInput,
  snapshot,
  UPDATE,
  validInput,
  type IntegrationView,
} from './integration-fixtures.ts'

type Case = readonly [label: string, value: unknown, fragment: string | RegExp]

const BAD_URLS: readonly Case[] = [
  ['plain http', 'http://idp.example.com/oauth', 'must be an absolute https URL'],
  ['another scheme', 'ftp://idp.example.com/oauth', 'must be an absolute https URL'],
  ['a javascript: URL', 'javascript:alert(1)', 'must be an absolute https URL'],
  ['a relative URL', '/oauth/token', 'must be an absolute https URL'],
  ['not a URL', 'idp dot example', 'must be an absolute https URL'],
  ['an empty string', '', 'must not be empty'],
  ['surrounding whitespace', ' https://idp.example.com/oauth', 'whitespace'],
  ['user and password', 'https://user:pass@idp.example.com/oauth', 'credentials'],
  ['a user name', 'https://user@idp.example.com/oauth', 'credentials'],
  ['a fragment', 'https://idp.example.com/oauth#top', 'fragment'],
  ['an empty fragment', 'https://idp.example.com/oauth#', 'fragment'],
  ['loopback 127.0.0.1', 'https://127.0.0.1/oauth', 'loopback'],
  ['loopback 127.8.9.10', 'https://127.8.9.10:8443/oauth', 'loopback'],
  ['IPv6 loopback ::1', 'https://[::1]/oauth', 'loopback'],
  ['localhost', 'https://localhost/oauth', 'loopback'],
  ['a .localhost name', 'https://idp.localhost/oauth', 'loopback'],
  ['private 10.x', 'https://10.1.2.3/oauth', 'private'],
  ['private 172.16.x', 'https://172.16.0.9/oauth', 'private'],
  ['private 192.168.x', 'https://192.168.1.1/oauth', 'private'],
  [
    'the metadata service 169.254.169.254',
    'https://169.254.169.254/latest/meta-data/',
    'link-local',
  ],
  ['IPv6 link-local', 'https://[fe80::1]/oauth', 'link-local'],
  ['carrier-grade NAT 100.64.x', 'https://100.64.0.1/oauth', 'carrier-grade NAT'],
  ['IPv4-mapped ::ffff:127.0.0.1', 'https://[::ffff:127.0.0.1]/oauth', 'IPv4-mapped'],
  ['IPv4-mapped metadata', 'https://[::ffff:169.254.169.254]/oauth', 'IPv4-mapped'],
  ['unique local IPv6', 'https://[fd00::1]/oauth', 'unique local'],
  ['the unspecified address', 'https://0.0.0.0/oauth', /unspecified|this network/],
  ['decimal 2130706433 (127.0.0.1)', 'https://2130706433/oauth', 'loopback'],
  ['decimal 2852039166 (169.254.169.254)', 'https://2852039166/oauth', 'link-local'],
  ['hex 0x7f000001', 'https://0x7f000001/oauth', 'loopback'],
  ['dotted hex 0x7f.0.0.1', 'https://0x7f.0.0.1/oauth', 'loopback'],
  ['octal 0177.0.0.1', 'https://0177.0.0.1/oauth', 'loopback'],
  ['short 127.1', 'https://127.1/oauth', 'loopback'],
  ['hex 0xa9fea9fe (metadata)', 'https://0xa9fea9fe/oauth', 'link-local'],
  ['a public IP literal', 'https://93.184.216.34/oauth', 'IP address'],
  ['a single-label name', 'https://intranet/oauth', 'fully qualified'],
  ['too long', `https://idp.example.com/${'a'.repeat(2048)}`, 'at most 2048 characters'],
]

const RESERVED: readonly Case[] = [
  'state',
  'redirect_uri',
  'response_type',
  'client_id',
  'code_challenge',
  'code_challenge_method',
  'scope',
  'nonce',
  'State',
].map((p) => [
  `the reserved parameter ${p}`,
  `https://idp.example.com/authorize?audience=api&${p}=x`,
  `must not contain the parameter "${p}"`,
])

/** Field → bad values; the same list runs against create and update. */
const CASES: Record<string, readonly Case[]> = {
  name: [
    ['empty', '', 'must not be empty'],
    ['blank', '   ', 'must not be empty'],
    ['too long', 'n'.repeat(101), 'at most 100 characters'],
    ['a control character', 'Okta\u0007', 'control characters'],
    ['a bidi override', 'Okta\u202Eatk', 'invisible'],
  ],
  clientId: [
    ['empty', '', 'must not be empty'],
    ['too long', 'c'.repeat(256), 'at most 255 characters'],
    ['non-ASCII', 'clïent', 'printable ASCII'],
    ['a newline', 'client\nid', 'printable ASCII'],
  ],
  clientSecret: [
    ['empty', '', 'must not be empty'],
    ['too long', 's'.repeat(2049), 'at most 2048 characters'],
    ['a control character', 'Sup3rSecretValue\u0000', 'printable ASCII'],
  ],
  authorizationUrl: [...BAD_URLS, ...RESERVED],
  tokenUrl: BAD_URLS,
  whoAmIUrl: BAD_URLS,
  scope: [
    ['a tab', 'openid\tprofile', 'control characters'],
    ['a newline', 'openid\nprofile', 'control characters'],
    ['a NUL', 'openid\u0000', 'control characters'],
    ['DEL', 'openid\u007f', 'control characters'],
    ['a double quote', 'openid "profile"', 'invalid scope token'],
    ['a backslash', 'openid pro\\file', 'invalid scope token'],
    ['non-ASCII', 'openid prófile', 'invalid scope token'],
    ['too long', 'a '.repeat(600), 'at most 1000 characters'],
  ],
  whoAmIMapping: [
    ['a syntax error', '{userName: user.id', 'syntax error'],
    ['an unknown function', 'no_such_function(@)', 'unknown function no_such_function'],
    ['a wrong argument count', 'length(@, @)', 'takes 1 argument, got 2'],
    ['too deep nesting', `${'['.repeat(40)}@${']'.repeat(40)}`, 'nested too deeply'],
    ['blank', '  ', 'must not be empty'],
    ['too long', `{a: ${'b.'.repeat(1100)}c}`, 'at most 2048 characters'],
  ],
  issuer: [
    ['plain http', 'http://issuer.example.com', 'https'],
    ['a query', 'https://issuer.example.com/?tenant=1', 'query'],
    ['a fragment', 'https://issuer.example.com/#x', 'fragment'],
    ['credentials', 'https://a:b@issuer.example.com', 'credentials'],
    ['not a URL', 'issuer', 'absolute https URL'],
  ],
  sessionTtlSeconds: [
    ['below 60', 59, 'from 60 to 3600'],
    ['above 3600', 3601, 'from 60 to 3600'],
    ['zero', 0, 'from 60 to 3600'],
    ['negative', -600, 'from 60 to 3600'],
  ],
  messageText: [
    ['too long', 'm'.repeat(1001), 'at most 1000 characters'],
    ['an unknown placeholder', 'Hi {name}, please sign in', 'unknown placeholder {name}'],
    ['a control character', 'Hi\u0007', 'control characters'],
    ['blank', '   ', 'must not be empty'],
  ],
  messageButtonLabel: [
    ['too long', 'b'.repeat(41), 'at most 40 characters'],
    ['empty', '', 'must not be empty'],
    ['a newline', 'Sign\nin', 'control characters'],
  ],
}

const ROWS = Object.entries(CASES).flatMap(([field, cases]) =>
  cases.map(([label, value, fragment]) => ({ field, label, value, fragment })),
)

describe('OAuth integration input validation', () => {
  let t: TestApp
  let acme: SeededTenant
  let existing: IntegrationView

  beforeAll(async () => {
    t = await createTestApp()
    acme = await t.seedTenant()
    existing = await create(t, acme.adminKey, { name: 'Existing' })
  })
  afterAll(() => t.close())

  it.each(ROWS)('create refuses $field with $label', async ({ field, value, fragment }) => {
    const before = await snapshot(t)
    const result = await t.gql(acme.adminKey, CREATE, { input: validInput({ [field]: value }) })
    const message = expectBadInput(result, field, fragment)
    if (field === 'clientSecret' && typeof value === 'string' && value !== '') {
      expect(message).not.toContain(value)
    }
    expect(result.data).toBeNull()
    expect(await snapshot(t)).toEqual(before)
  })

  it.each(ROWS)('update refuses $field with $label, leaving the row as it was', async (row) => {
    const before = await snapshot(t)
    const result = await t.gql(acme.adminKey, UPDATE, {
      input: { id: existing.id, [row.field]: row.value },
    })
    expectBadInput(result, row.field, row.fragment)
    expect(await snapshot(t)).toEqual(before)
  })

  it.each(['name', 'clientId', 'clientSecret', 'authorizationUrl', 'tokenUrl'])(
    'update refuses null for the required field %s',
    async (field) => {
      const before = await snapshot(t)
      const result = await t.gql(acme.adminKey, UPDATE, {
        input: { id: existing.id, [field]: null },
      })
      expectBadInput(result, field, 'must not be null')
      expect(await snapshot(t)).toEqual(before)
    },
  )

  it('names every wrong field at once', async () => {
    const before = await snapshot(t)
    const result = await t.gql(acme.adminKey, CREATE, {
      input: validInput({ name: '', scope: 'a\tb', sessionTtlSeconds: 5 }),
    })
    const message = expectBadInput(result, 'name', 'must not be empty')
    expect(message).toContain('input.scope: ')
    expect(message).toContain('input.sessionTtlSeconds: ')
    expect(await snapshot(t)).toEqual(before)
  })

  it('names six wrong fields of six kinds at once, also one by one in extensions.fields', async () => {
    const before = await snapshot(t)
    const result = await t.gql(acme.adminKey, CREATE, {
      input: validInput({
        name: '',
        scope: 'a"b',
        // A private address: a rule that needs the configuration (OUTBOUND_ALLOW_HOSTS).
        tokenUrl: 'https://10.1.2.3/token',
        whoAmIMapping: 'foo[',
        sessionTtlSeconds: 5,
        messageText: 'Hi {nobody}',
      }),
    })
    const message = expectBadInput(result, 'name', 'must not be empty')
    const fields = (result.errors![0]!.extensions as { fields?: Array<{ field: string }> }).fields
    const names = [
      'input.name',
      'input.scope',
      'input.tokenUrl',
      'input.whoAmIMapping',
      'input.sessionTtlSeconds',
      'input.messageText',
    ]
    expect(fields?.map((f) => f.field)).toEqual(names)
    for (const [i, name] of names.entries()) {
      expect(message).toContain(`${name}: `)
      expect(fields![i]).toEqual({ field: name, message: expect.any(String) })
    }
    expect(await snapshot(t)).toEqual(before)
  })

  it('refuses a mapping pasted with escaped quotes, naming the repaired expression to save instead', async () => {
    const pasted = '{"userName\\": user.id, \\"fullName\\": user.name, \\"email\\": user.email}"'
    const repaired = '{"userName": user.id, "fullName": user.name, "email": user.email}'
    const before = await snapshot(t)
    const result = await t.gql(acme.adminKey, CREATE, {
      input: validInput({ whoAmIMapping: pasted }),
    })
    const message = expectBadInput(result, 'whoAmIMapping', 'syntax error')
    expect(message).toContain(`testWhoAmIMapping repairs it`)
    expect(message).toContain(`to ${repaired}, save that instead`)
    expect(message).not.toContain('; ')
    expect(await snapshot(t)).toEqual(before)
    // The expression the message names is accepted as it is.
    const created = await create(t, acme.adminKey, { whoAmIMapping: repaired })
    expect(created.whoAmIMapping).toBe(repaired)
  })

  it('accepts extra authorization parameters that the flow does not set', async () => {
    const created = await create(t, acme.adminKey, {
      authorizationUrl: 'https://idp.example.com/authorize?audience=https%3A%2F%2Fapi&prompt=login',
    })
    expect(created.authorizationUrl).toBe(
      'https://idp.example.com/authorize?audience=https%3A%2F%2Fapi&prompt=login',
    )
  })

  describe('unique names', () => {
    it('refuses a name taken in the tenant, ignoring case and surrounding spaces', async () => {
      await create(t, acme.adminKey, { name: 'Okta Workforce' })
      const before = await snapshot(t)
      const result = await t.gql(acme.adminKey, CREATE, {
        input: validInput({ name: '  okta WORKFORCE ' }),
      })
      expectBadInput(result, 'name', 'already exists')
      expect(await snapshot(t)).toEqual(before)
    })

    it('refuses renaming to a name taken by another integration', async () => {
      const other = await create(t, acme.adminKey, { name: 'Azure AD' })
      const before = await snapshot(t)
      const result = await t.gql(acme.adminKey, UPDATE, {
        input: { id: other.id, name: 'EXISTING' },
      })
      expectBadInput(result, 'name', 'already exists')
      expect(await snapshot(t)).toEqual(before)
    })

    it('lets exactly one of two concurrent creates with the same name win', async () => {
      for (let round = 0; round < 3; round++) {
        const name = `race-${round}`
        const results = await Promise.all(
          [0, 1, 2].map(() => t.gql(acme.adminKey, CREATE, { input: validInput({ name }) })),
        )
        expect(results.filter((r) => r.errors === undefined)).toHaveLength(1)
        for (const failed of results.filter((r) => r.errors !== undefined)) {
          expectBadInput(failed, 'name', 'already exists')
        }
      }
    })
  })
})

describe('OUTBOUND_ALLOW_HOSTS', () => {
  let t: TestApp
  let tenant: SeededTenant

  beforeAll(async () => {
    t = await createTestApp({
      env: { OUTBOUND_ALLOW_HOSTS: '127.0.0.1, idp.internal:8443 ,10.0.0.5' },
    })
    tenant = await t.seedTenant()
  })
  afterAll(() => t.close())

  it.each(['authorizationUrl', 'tokenUrl', 'whoAmIUrl'])(
    'lets %s use plain http and private addresses of allow-listed hosts only',
    async (field) => {
      for (const url of [
        'http://127.0.0.1:9000/oauth',
        'https://127.0.0.1/oauth',
        'http://idp.internal:8443/oauth',
        'https://10.0.0.5/oauth',
      ]) {
        const created = await create(t, tenant.adminKey, { [field]: url })
        expect(created[field as 'tokenUrl']).toBe(url)
      }
      for (const [url, fragment] of [
        ['http://idp.internal:9999/oauth', 'https'],
        ['https://idp.internal/oauth', 'private networks'],
        ['https://10.0.0.6/oauth', 'private'],
        ['http://127.0.0.2/oauth', 'https'],
        ['https://[::1]/oauth', 'loopback'],
        ['http://user:pw@127.0.0.1/oauth', 'credentials'],
        ['http://127.0.0.1/oauth#x', 'fragment'],
        ['http://public.example.com/oauth', 'https'],
      ] as const) {
        const before = await snapshot(t)
        const result = await t.gql(tenant.adminKey, CREATE, { input: validInput({ [field]: url }) })
        expectBadInput(result, field, fragment)
        expect(await snapshot(t)).toEqual(before)
      }
    },
  )

  it('still refuses reserved parameters on an allow-listed authorization URL', async () => {
    const result = await t.gql(tenant.adminKey, CREATE, {
      input: validInput({ authorizationUrl: 'http://127.0.0.1:9000/authorize?state=1' }),
    })
    expectBadInput(result, 'authorizationUrl', 'must not contain the parameter "state"')
  })

  it('lets an issuer use plain http only for an allow-listed host', async () => {
    const created = await create(t, tenant.adminKey, {
      issuer: 'http://127.0.0.1:9000',
      scope: 'email',
    })
    expect(created.issuer).toBe('http://127.0.0.1:9000')
    const result = await t.gql(tenant.adminKey, CREATE, {
      input: validInput({ issuer: 'http://issuer.example.com' }),
    })
    expectBadInput(result, 'issuer', 'https')
  })
})
