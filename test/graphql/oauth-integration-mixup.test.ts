/**
 * Mix-up defence (RFC 9700 §4.4): one (authorization host, client id) pair
 * belongs to one tenant, on create and on update, also when two tenants race for it.
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
} from './integration-fixtures.ts'

const AUTHORIZE = 'https://idp.shared.example.com/oauth2/authorize'

describe('one OAuth client per tenant', () => {
  let t: TestApp
  let honest: SeededTenant
  let attacker: SeededTenant

  beforeAll(async () => {
    t = await createTestApp()
    honest = await t.seedTenant()
    attacker = await t.seedTenant()
    await create(t, honest.adminKey, { clientId: 'abc', authorizationUrl: AUTHORIZE })
  })
  afterAll(() => t.close())

  it.each([
    ['the same URL', AUTHORIZE],
    ['another path and extra parameters', 'https://idp.shared.example.com/authorize?prompt=login'],
    ['the host in upper case', 'https://IDP.Shared.Example.com/oauth2/authorize'],
    ['a trailing dot', 'https://idp.shared.example.com./oauth2/authorize'],
    ['another port', 'https://idp.shared.example.com:8443/oauth2/authorize'],
  ])(
    "refuses another tenant's integration with the same client id at %s",
    async (_label, authorizationUrl) => {
      const before = await snapshot(t)
      const result = await t.gql(attacker.adminKey, CREATE, {
        input: validInput({
          clientId: 'abc',
          authorizationUrl,
          tokenUrl: 'https://attacker.example.net/token',
        }),
      })
      const message = expectBadInput(result, 'clientId', 'another tenant')
      expect(message).toContain('input.authorizationUrl')
      expect(message).toContain('idp.shared.example.com')
      expect(message).toContain('RFC 9700')
      expect(await snapshot(t)).toEqual(before)
    },
  )

  it('refuses an update that moves an integration onto the pair', async () => {
    const own = await create(t, attacker.adminKey, {
      clientId: 'abc',
      authorizationUrl: 'https://idp.attacker.example.net/authorize',
    })
    const other = await create(t, attacker.adminKey, {
      clientId: 'xyz',
      authorizationUrl: AUTHORIZE,
    })
    const before = await snapshot(t)
    const byHost = await t.gql(attacker.adminKey, UPDATE, {
      input: { id: own.id, authorizationUrl: AUTHORIZE },
    })
    expectBadInput(byHost, 'clientId', 'another tenant')
    const byClient = await t.gql(attacker.adminKey, UPDATE, {
      input: { id: other.id, clientId: 'abc' },
    })
    expectBadInput(byClient, 'clientId', 'another tenant')
    expect(await snapshot(t)).toEqual(before)
  })

  it('allows the same client id at another host, another client id, and the same tenant twice', async () => {
    await create(t, attacker.adminKey, {
      clientId: 'abc',
      authorizationUrl: 'https://login.other.example.com/authorize',
    })
    await create(t, attacker.adminKey, { clientId: 'ABC', authorizationUrl: AUTHORIZE })
    const second = await create(t, honest.adminKey, {
      clientId: 'abc',
      authorizationUrl: AUTHORIZE,
    })
    // Updating other fields of an integration that holds the pair is fine.
    const renamed = await t.gql(honest.adminKey, UPDATE, {
      input: { id: second.id, name: 'Again' },
    })
    expect(renamed.errors).toBeUndefined()
  })

  it('lets exactly one of two tenants racing for a new pair win', async () => {
    for (let round = 0; round < 5; round++) {
      const clientId = `raced-${round}`
      const tenants = [honest, attacker, honest, attacker]
      const results = await Promise.all(
        tenants.map((tenant) =>
          t.gql(tenant.adminKey, CREATE, {
            input: validInput({ clientId, authorizationUrl: 'https://race.example.com/authorize' }),
          }),
        ),
      )
      const winners = results.flatMap((r, i) => (r.errors === undefined ? [tenants[i]!.id] : []))
      expect(winners.length).toBeGreaterThanOrEqual(1)
      // Every integration holding the pair belongs to one tenant.
      expect(new Set(winners).size).toBe(1)
      for (const lost of results.filter((r) => r.errors !== undefined)) {
        expectBadInput(lost, 'clientId', 'another tenant')
      }
      const rows = await t.deps.db
        .selectFrom('oauth_integrations')
        .select('tenant_id')
        .where('client_id', '=', clientId)
        .execute()
      expect(new Set(rows.map((r) => r.tenant_id)).size).toBe(1)
    }
  })
})
