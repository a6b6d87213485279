import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { revokeApiKey } from '../../src/services/tenants.ts'
import { codes, createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'

const VIEWER = '{ viewer { role tenant { id slug name } } }'

describe('API key authentication', () => {
  let t: TestApp
  let acme: SeededTenant
  let globex: SeededTenant

  beforeAll(async () => {
    t = await createTestApp()
    acme = await t.seedTenant('acme')
    globex = await t.seedTenant('globex')
  })
  afterAll(() => t.close())

  it('identifies the tenant and role of a valid key', async () => {
    const admin = await t.gql(acme.adminKey, VIEWER)
    expect(admin.errors).toBeUndefined()
    expect(admin.data).toEqual({
      viewer: { role: 'ADMIN', tenant: { id: acme.id, slug: 'acme', name: 'acme' } },
    })
    const agent = await t.gql(globex.agentKey, VIEWER)
    expect(agent.data).toEqual({
      viewer: { role: 'AGENT', tenant: { id: globex.id, slug: 'globex', name: 'globex' } },
    })
  })

  it('refuses a request without a key with UNAUTHENTICATED', async () => {
    const result = await t.gql(null, VIEWER)
    expect(codes(result)).toEqual(['UNAUTHENTICATED'])
    expect(result.errors?.[0]?.message).toMatch(/Authorization: Bearer/)
    expect(result.data).toBeNull()
  })

  it.each([
    ['an unknown key of the right shape', 'euo_0000000000000000_' + 'A'.repeat(43)],
    ['a malformed key', 'not-a-key'],
    ['a known key id with a wrong secret', () => acme.adminKey.slice(0, 21) + 'B'.repeat(43)],
  ])('refuses %s with UNAUTHENTICATED', async (_name, key) => {
    const value = typeof key === 'function' ? key() : key
    const result = await t.gql(value, VIEWER)
    expect(codes(result)).toEqual(['UNAUTHENTICATED'])
  })

  it('refuses a key sent in another scheme than Bearer', async () => {
    const response = await t.fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${acme.adminKey}` },
      body: JSON.stringify({ query: VIEWER }),
    })
    const body = (await response.json()) as { errors: Array<{ extensions: { code: string } }> }
    expect(body.errors[0]?.extensions.code).toBe('UNAUTHENTICATED')
  })

  it('refuses a revoked key, and only that key', async () => {
    const extra = await t.gql<{ createApiKey: { apiKey: string; keyId: string } }>(
      acme.adminKey,
      'mutation { createApiKey(role: AGENT, label: "bot") { apiKey keyId role } }',
    )
    const created = extra.data!.createApiKey
    expect((await t.gql(created.apiKey, VIEWER)).data).toMatchObject({ viewer: { role: 'AGENT' } })
    await revokeApiKey(t.deps, { slug: 'acme', keyId: created.keyId })
    expect(codes(await t.gql(created.apiKey, VIEWER))).toEqual(['UNAUTHENTICATED'])
    expect((await t.gql(acme.agentKey, VIEWER)).errors).toBeUndefined()
  })

  it('lets only ADMIN keys manage keys, and revokes only within the own tenant', async () => {
    const byAgent = await t.gql(acme.agentKey, 'mutation { createApiKey(role: ADMIN) { apiKey } }')
    expect(codes(byAgent)).toEqual(['FORBIDDEN'])
    const other = await t.gql<{ createApiKey: { keyId: string } }>(
      globex.adminKey,
      'mutation { createApiKey(role: AGENT) { keyId } }',
    )
    const keyId = other.data!.createApiKey.keyId
    const cross = await t.gql(
      acme.adminKey,
      'mutation($k: String!) { revokeApiKey(keyId: $k) { keyId } }',
      { k: keyId },
    )
    expect(codes(cross)).toEqual(['NOT_FOUND'])
    const own = await t.gql(
      globex.adminKey,
      'mutation($k: String!) { revokeApiKey(keyId: $k) { keyId } }',
      { k: keyId },
    )
    expect(own.errors).toBeUndefined()
  })

  it('never writes an API key or an Authorization header to the logs', async () => {
    await t.gql(acme.adminKey, '{ viewer { nosuchfield } }')
    await t.gql(acme.adminKey, VIEWER)
    const all = t.logs.join('\n')
    for (const key of [acme.adminKey, acme.agentKey, globex.adminKey, globex.agentKey]) {
      expect(all).not.toContain(key)
      expect(all).not.toContain(key.slice(21))
    }
  })
})
