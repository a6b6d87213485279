/**
 * testWhoAmIMapping with a given payload: good and bad mappings and payloads come back as data
 * (`identity`, `errors`, `warnings`, `notes`), never as GraphQL errors; roles and tenant scoping
 * of integrationId; and the identity equals what the sign-in flow's mapping step makes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { normalizePastedMapping } from '../../src/core/whoami-mapping.ts'
import { mapWithSavedMapping } from '../../src/services/identity-mapping.ts'
import { codes, createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'
import { create, snapshot } from './integration-fixtures.ts'

const TEST = `mutation ($input: TestWhoAmIMappingInput!) {
  testWhoAmIMapping(input: $input) {
    identity {
      subject issuer email emailVerified userName fullName firstName lastName
      authTime acr amr attributes
    }
    errors { message }
    warnings { message }
    notes
    expression
  }
}`

interface Result {
  identity: {
    subject: string | null
    issuer: string | null
    emailVerified: boolean | null
    authTime: string | null
    acr: string | null
    amr: string[] | null
    email: string | null
    userName: string | null
    fullName: string | null
    firstName: string | null
    lastName: string | null
    attributes: Record<string, unknown>
  } | null
  errors: { message: string }[]
  warnings: { message: string }[]
  notes: string[]
  expression: string | null
}

/**
 * The product documentation's example WhoAmI answer, exactly as printed (its email was mangled by
 * the page it came from).
 */
const SEED_PAYLOAD = {
  user: { id: 'billy.bob', name: 'Billy Bob', email: '[email protected]', other: 'stuff' },
  roles: ['SomeRole', 'OtherRole'],
  other: 'stuff',
}
const CLEAN_PAYLOAD = {
  ...SEED_PAYLOAD,
  user: { ...SEED_PAYLOAD.user, email: 'billy.bob@example.com' },
}
/**
 * The documentation's example mapping exactly as printed: an escaped quote, and an unmatched " at
 * the end.
 */
const SEED_MAPPING = String.raw`{"userName\": user.id, \"fullName\": user.name, \"email\": user.email}"`
const CLEAN_MAPPING = '{"userName": user.id, "fullName": user.name, "email": user.email}'

describe('testWhoAmIMapping', () => {
  let t: TestApp
  let tenant: SeededTenant
  let other: SeededTenant

  beforeAll(async () => {
    t = await createTestApp()
    tenant = await t.seedTenant()
    other = await t.seedTenant()
  })
  afterAll(async () => {
    await t?.close()
  })

  async function run(input: Record<string, unknown>, key: string | null = tenant.agentKey) {
    const result = await t.gql<{ testWhoAmIMapping: Result }>(key, TEST, { input })
    expect(result.errors).toBeUndefined()
    return result.data!.testWhoAmIMapping
  }

  /** The result carries exactly one error, matching `pattern`. */
  async function failsWith(input: Record<string, unknown>, pattern: RegExp) {
    const result = await run(input)
    expect(result.identity).toBeNull()
    expect(result.errors).toHaveLength(1)
    expect(result.errors[0]!.message).toMatch(pattern)
    return result
  }

  describe('the documentation example', () => {
    it('maps the mapping exactly as printed, says what it repaired, and warns about the mangled email', async () => {
      const result = await run({ mapping: SEED_MAPPING, payload: SEED_PAYLOAD })
      expect(result.errors).toEqual([])
      expect(result.identity).toEqual({
        subject: null,
        issuer: null,
        emailVerified: null,
        authTime: null,
        acr: null,
        amr: null,
        email: null,
        userName: 'billy.bob',
        fullName: 'Billy Bob',
        firstName: 'Billy',
        lastName: 'Bob',
        attributes: { userName: 'billy.bob', fullName: 'Billy Bob', email: '[email protected]' },
      })
      expect(result.notes).toEqual([
        'replaced escaped quotes \\" with "',
        'removed an unmatched " at the end',
      ])
      expect(result.expression).toBe(CLEAN_MAPPING)
      expect(result.warnings).toEqual([
        {
          message:
            'email is not an email address, so it is not used as one (it stays in attributes)',
        },
        // The documentation's mapping gives no subject, which the tester says.
        { message: expect.stringMatching(/^subject: none \(map one/) },
      ])
      // The warning does not quote the value.
      expect(JSON.stringify(result.warnings)).not.toContain('protected')
    })

    it('maps the clean form with no notes, and a warning only about the missing subject', async () => {
      const result = await run({ mapping: CLEAN_MAPPING, payload: CLEAN_PAYLOAD })
      expect(result).toEqual({
        identity: {
          subject: null,
          issuer: null,
          emailVerified: null,
          authTime: null,
          acr: null,
          amr: null,
          email: 'billy.bob@example.com',
          userName: 'billy.bob',
          fullName: 'Billy Bob',
          firstName: 'Billy',
          lastName: 'Bob',
          attributes: {
            userName: 'billy.bob',
            fullName: 'Billy Bob',
            email: 'billy.bob@example.com',
          },
        },
        errors: [],
        warnings: [{ message: expect.stringMatching(/^subject: none/) }],
        notes: [],
        expression: CLEAN_MAPPING,
      })
    })

    it('maps the documented form without quoted keys the same way', async () => {
      const result = await run({
        mapping: '{userName: user.id, fullName: user.name, email: user.email}',
        payload: CLEAN_PAYLOAD,
      })
      expect(result.identity?.email).toBe('billy.bob@example.com')
      expect(result.identity?.lastName).toBe('Bob')
    })

    it('unwraps a mapping pasted as a JSON string, and says so', async () => {
      const result = await run({
        mapping: JSON.stringify('{"userName": user.id, "email": user.email}'),
        payload: CLEAN_PAYLOAD,
      })
      expect(result.errors).toEqual([])
      expect(result.notes).toEqual(['removed the double quotes around it'])
      expect(result.expression).toBe('{"userName": user.id, "email": user.email}')
      expect(result.identity).toMatchObject({
        userName: 'billy.bob',
        email: 'billy.bob@example.com',
      })
    })

    it('repairs typographic quotes and a Markdown fence', async () => {
      const result = await run({
        mapping: '```\n{“userName”: user.id}\n```',
        payload: CLEAN_PAYLOAD,
      })
      expect(result.errors).toEqual([])
      expect(result.notes).toEqual([
        'removed the Markdown code fence around it',
        'replaced typographic double quotes with "',
      ])
      expect(result.identity?.userName).toBe('billy.bob')
    })
  })

  describe('bad mappings', () => {
    it('gives the position of a syntax error', async () => {
      const result = await failsWith(
        { mapping: '{userName: user.id,, email: user.email}', payload: CLEAN_PAYLOAD },
        /^mapping: syntax error at position 19: unexpected "," \(expected a key name\)$/,
      )
      expect(result.notes).toEqual([])
      expect(result.expression).toBe('{userName: user.id,, email: user.email}')
    })

    it('gives the position where an unfinished expression ends', async () => {
      await failsWith(
        { mapping: '{userName: user.id', payload: CLEAN_PAYLOAD },
        /^mapping: syntax error at position 18: the expression ends too early/,
      )
    })

    it('names an unknown function and suggests a known one', async () => {
      await failsWith(
        { mapping: '{userName: nope(user.id)}', payload: CLEAN_PAYLOAD },
        /^mapping: uses an unknown function nope\(\)/,
      )
    })

    it('says what a mapping produced when it is not an object: a string, null, an array', async () => {
      await failsWith(
        { mapping: 'user.id', payload: CLEAN_PAYLOAD },
        /^mapping: result must be a JSON object, got a string/,
      )
      await failsWith(
        { mapping: 'nothing.here', payload: CLEAN_PAYLOAD },
        /^mapping: result must be a JSON object, got null \(it selected nothing/,
      )
      await failsWith(
        { mapping: 'roles', payload: CLEAN_PAYLOAD },
        /^mapping: result must be a JSON object, got an array/,
      )
    })

    it('refuses a mapping longer than the saved limit', async () => {
      const long = `{userName: user.id, ${Array.from({ length: 300 }, (_, i) => `f${i}: other`).join(', ')}}`
      await failsWith(
        { mapping: long, payload: CLEAN_PAYLOAD },
        /^mapping: is longer than 2048 characters$/,
      )
    })

    it('never quotes payload values in its messages', async () => {
      const secretish = 'Personal-Data-9f8e7d'
      const result = await run({
        mapping: '{userName: user.id, email: user.id}',
        payload: { user: { id: [secretish] } },
      })
      expect(JSON.stringify([result.errors, result.warnings, result.notes])).not.toContain(
        secretish,
      )
      expect(result.warnings.map((w) => w.message)).toEqual([
        'email must be a string, got an array; not used',
        'userName must be a string or a number, got an array; not used',
        expect.stringMatching(/^subject: none/),
      ])
    })
  })

  describe('payloads', () => {
    it('without a mapping uses the payload as it is', async () => {
      const payload = { email: 'Ann@Example.COM', fullName: 'Lovelace, Ada', tier: 'gold' }
      for (const mapping of [undefined, null]) {
        const result = await run(mapping === undefined ? { payload } : { mapping, payload })
        expect(result.errors).toEqual([])
        expect(result.expression).toBeNull()
        expect(result.identity).toEqual({
          subject: null,
          issuer: null,
          emailVerified: null,
          authTime: null,
          acr: null,
          amr: null,
          email: 'Ann@example.com',
          userName: null,
          fullName: 'Lovelace, Ada',
          firstName: 'Ada',
          lastName: 'Lovelace',
          attributes: payload,
        })
      }
      const empty = await run({ mapping: '  ', payload })
      expect(empty.notes).toEqual(['the mapping is empty, so the payload is used as it is'])
      expect(empty.identity?.attributes).toEqual(payload)
    })

    it('follows splitFullName', async () => {
      const payload = { fullName: 'Billy Bob' }
      const off = await run({ payload, splitFullName: false })
      expect(off.identity).toMatchObject({ fullName: 'Billy Bob', firstName: null, lastName: null })
      const on = await run({ payload, splitFullName: true })
      expect(on.identity).toMatchObject({ firstName: 'Billy', lastName: 'Bob' })
    })

    it('refuses a payload that is not an object, as no WhoAmI answer can be one', async () => {
      await failsWith({ payload: [1, 2] }, /^payload: must be a JSON object.*got an array$/)
      await failsWith(
        { mapping: '{userName: [0].id}', payload: [{ id: 'x' }] },
        /^payload: must be a JSON object.*got an array$/,
      )
      await failsWith({ payload: 'billy' }, /^payload: must be a JSON object.*got a string$/)
      await failsWith({ payload: 42 }, /^payload: must be a JSON object.*got a number$/)
      await failsWith({ payload: true }, /^payload: must be a JSON object.*got a boolean$/)
    })

    it('parses a payload pasted as a JSON string, and says so', async () => {
      const result = await run({ mapping: CLEAN_MAPPING, payload: JSON.stringify(CLEAN_PAYLOAD) })
      expect(result.errors).toEqual([])
      expect(result.notes).toEqual(['parsed the payload string as JSON'])
      expect(result.identity?.email).toBe('billy.bob@example.com')
      const broken = await failsWith(
        { payload: '{"user": ' },
        /^payload: the string is not valid JSON/,
      )
      expect(broken.notes).toEqual([])
    })

    it('refuses a payload nested too deeply, given as a JSON variable', async () => {
      const deep = (levels: number) => {
        let value: unknown = 'x'
        for (let i = 0; i < levels - 1; i++) value = { a: value }
        return { a: value }
      }
      // 64 levels pass, 65 do not; 100,000 are refused as quickly.
      const fits = await run({ payload: deep(64) })
      expect(fits.errors).toEqual([])
      await failsWith({ payload: deep(65) }, /^payload: is nested deeper than 64 levels$/)
      // Too deep for JSON.stringify here: the request body is written by hand.
      const levels = 100_000
      const response = await t.fetch('/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tenant.agentKey}` },
        body: `{"query":${JSON.stringify(TEST)},"variables":{"input":{"payload":${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}}}}`,
      })
      const body = (await response.json()) as { data: { testWhoAmIMapping: Result } }
      expect(body.data.testWhoAmIMapping.errors).toEqual([
        { message: 'payload: is nested deeper than 64 levels' },
      ])
      await failsWith(
        { payload: JSON.stringify(deep(65)) },
        /^payload: the string is nested deeper than 64 levels/,
      )
    })

    it('refuses a payload larger than 1 MiB, given as a JSON variable', async () => {
      const big = { user: { id: 'u', bio: 'b'.repeat(1024 * 1024) } }
      await failsWith(
        { mapping: '{userName: user.id}', payload: big },
        /^payload: is larger than 1 MiB$/,
      )
      // Just over 1 MiB in many small values (and within the 1.25 MiB request body limit).
      const many = { items: Array.from({ length: 100_000 }, (_, i) => ({ i })) }
      await failsWith({ payload: many }, /^payload: is larger than 1 MiB$/)
    })

    it('asks for a payload when there is none, and refuses a payload with an access token', async () => {
      await failsWith({ mapping: CLEAN_MAPPING }, /^payload: required/)
      await failsWith({ mapping: CLEAN_MAPPING, payload: null }, /^payload: required/)
      await failsWith(
        { payload: CLEAN_PAYLOAD, accessToken: 'a-token' },
        /^input: give either payload .* or accessToken .*, not both$/,
      )
      const result = await failsWith(
        { accessToken: 'token-without-integration-1234' },
        /^accessToken: needs integrationId/,
      )
      expect(JSON.stringify(result)).not.toContain('token-without-integration-1234')
    })
  })

  describe('roles and tenants', () => {
    it('needs a key: UNAUTHENTICATED without one', async () => {
      const result = await t.gql(null, TEST, { input: { payload: CLEAN_PAYLOAD } })
      expect(codes(result)).toEqual(['UNAUTHENTICATED'])
      expect(result.data).toBeNull()
      const wrong = await t.gql('not-a-key', TEST, { input: { payload: CLEAN_PAYLOAD } })
      expect(codes(wrong)).toEqual(['UNAUTHENTICATED'])
    })

    it('allows AGENT and ADMIN keys', async () => {
      for (const key of [tenant.agentKey, tenant.adminKey]) {
        const result = await run({ mapping: CLEAN_MAPPING, payload: CLEAN_PAYLOAD }, key)
        expect(result.identity?.userName).toBe('billy.bob')
      }
    })

    it("uses an integration's saved mapping and splitFullName when mapping is left out", async () => {
      const integration = await create(t, tenant.adminKey, {
        whoAmIMapping: '{userName: user.id, fullName: user.name}',
        splitFullName: false,
      })
      const saved = await run({ integrationId: integration.id, payload: CLEAN_PAYLOAD })
      expect(saved.errors).toEqual([])
      expect(saved.expression).toBe('{userName: user.id, fullName: user.name}')
      expect(saved.identity).toEqual({
        subject: null,
        issuer: null,
        emailVerified: null,
        authTime: null,
        acr: null,
        amr: null,
        email: null,
        userName: 'billy.bob',
        fullName: 'Billy Bob',
        firstName: null,
        lastName: null,
        attributes: { userName: 'billy.bob', fullName: 'Billy Bob' },
      })
      // splitFullName and mapping given: they win over the integration's.
      const previewed = await run({
        integrationId: integration.id,
        payload: CLEAN_PAYLOAD,
        splitFullName: true,
        mapping: '{fullName: user.name, tier: `"gold"`}',
      })
      expect(previewed.identity).toMatchObject({ firstName: 'Billy', lastName: 'Bob' })
      expect(previewed.identity?.attributes).toEqual({ fullName: 'Billy Bob', tier: 'gold' })
      // mapping: null means no mapping, not the saved one.
      const none = await run({
        integrationId: integration.id,
        payload: { userName: 'n' },
        mapping: null,
      })
      expect(none.identity?.attributes).toEqual({ userName: 'n' })

      const noMapping = await create(t, tenant.adminKey, { whoAmIMapping: null })
      const raw = await run({ integrationId: noMapping.id, payload: { fullName: 'Ada Lovelace' } })
      expect(raw.expression).toBeNull()
      expect(raw.identity).toMatchObject({ fullName: 'Ada Lovelace', lastName: 'Lovelace' })
    })

    it("gives NOT_FOUND for another tenant's integration, a deleted one and a malformed id", async () => {
      const theirs = await create(t, other.adminKey)
      for (const id of [theirs.id, '00000000-0000-4000-8000-000000000000', 'not-an-id']) {
        const result = await t.gql(tenant.agentKey, TEST, {
          input: { integrationId: id, payload: CLEAN_PAYLOAD },
        })
        expect(codes(result)).toEqual(['NOT_FOUND'])
        expect(result.data).toBeNull()
      }
      // The owner can use it.
      const own = await run({ integrationId: theirs.id, payload: CLEAN_PAYLOAD }, other.agentKey)
      expect(own.identity?.userName).toBe('billy.bob')
    })

    it('writes nothing', async () => {
      const before = await snapshot(t)
      await run({ mapping: SEED_MAPPING, payload: SEED_PAYLOAD })
      await run({ mapping: 'user.[', payload: SEED_PAYLOAD })
      expect(await snapshot(t)).toEqual(before)
    })
  })

  describe('the same identity as a sign-in', () => {
    const cases: Array<[string, string | null, unknown, boolean]> = [
      ['the documentation example', CLEAN_MAPPING, SEED_PAYLOAD, true],
      ['no mapping', null, { fullName: 'Lovelace, Ada', email: 'ADA@EXAMPLE.ORG' }, true],
      ['no split', null, { fullName: 'Ada Lovelace' }, false],
      [
        'text to clean',
        '{userName: id, fullName: n, email: e, x: x}',
        { id: 4711, n: '  Ada\u200b\n Lovelace\u0000 ', e: 'ada@EXAMPLE.org', x: 'a\u0000b\ud800' },
        true,
      ],
      ['a failing mapping', 'user.id', SEED_PAYLOAD, true],
    ]
    it.each(cases)('%s', async (_name, mapping, payload, splitFullName) => {
      const tester = await run({ mapping, payload, splitFullName })
      // What complete-sign-in.ts runs for an integration with this mapping and setting.
      const flow = mapWithSavedMapping(mapping, payload, { splitFullName })
      expect(flow.ok).toBe(true)
      if (!flow.ok) return
      expect(tester.identity).toEqual(
        flow.outcome.identity === null ? null : JSON.parse(JSON.stringify(flow.outcome.identity)),
      )
      expect(tester.errors).toEqual(flow.outcome.errors)
      expect(tester.warnings).toEqual(flow.outcome.warnings)
      if (mapping !== null) expect(normalizePastedMapping(mapping).expression).toBe(mapping)
    })
  })
})
