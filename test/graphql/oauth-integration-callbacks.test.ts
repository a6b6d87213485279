/**
 * Each integration has callback URLs of its own (the mix-up defence, RFC 9700 §4.4.2): the
 * three routes followed by its key. That replaces the earlier rule that kept one (authorization
 * host, client id) pair to one tenant, which let a tenant squat another's pair and told it the
 * pair existed. The bare routes serve integrations with sharedRedirectUrls only, which need an
 * issuer and per-tenant hosts. And the stored secret follows its token endpoint: an update that
 * moves the token endpoint must bring a new secret.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CALLBACK_KEY, REDIRECT_ROUTES } from '../../src/core/redirect-urls.ts'
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

const AUTHORIZE = 'https://idp.shared.example.com/oauth2/authorize'

function keyOf(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1)
}

describe('callback URLs of each integration', () => {
  let t: TestApp
  let acme: SeededTenant
  let globex: SeededTenant

  beforeAll(async () => {
    t = await createTestApp()
    acme = await t.seedTenant()
    globex = await t.seedTenant()
  })
  afterAll(() => t.close())

  it('are the three routes followed by a key of the integration, different for each', async () => {
    const one = await create(t, acme.adminKey)
    const two = await create(t, acme.adminKey)
    for (const integration of [one, two]) {
      const key = keyOf(integration.redirectUrls[0]!)
      expect(key).toMatch(CALLBACK_KEY)
      expect(integration.redirectUrls).toEqual(
        Object.values(REDIRECT_ROUTES).map((route) => `http://localhost:4000${route}/${key}`),
      )
    }
    expect(keyOf(one.redirectUrls[0]!)).not.toBe(keyOf(two.redirectUrls[0]!))
  })

  it('let two tenants register the same client at the same provider, telling neither of the other', async () => {
    const before = await snapshot(t)
    const input = { clientId: 'shared-client', authorizationUrl: AUTHORIZE }
    const first = await create(t, acme.adminKey, input)
    const second = await t.gql<{ createOAuthIntegration: { integration: IntegrationView } }>(
      globex.adminKey,
      CREATE,
      { input: validInput({ ...input, tokenUrl: 'https://attacker.example.net/token' }) },
    )
    expect(second.errors).toBeUndefined()
    const theirs = second.data!.createOAuthIntegration.integration
    expect(theirs.redirectUrls).not.toEqual(first.redirectUrls)
    expect(JSON.stringify(second)).not.toContain(acme.slug)
    expect((await snapshot(t)).integrations).toHaveLength(before.integrations.length + 2)
  })

  describe('sharedRedirectUrls', () => {
    it('needs an issuer and a host for each tenant, and names the field', async () => {
      const before = await snapshot(t)
      const result = await t.gql(acme.adminKey, CREATE, {
        input: validInput({ sharedRedirectUrls: true }),
      })
      const message = expectBadInput(result, 'sharedRedirectUrls', 'needs issuer')
      expect(message).toContain('needs a host for each tenant')
      expect(await snapshot(t)).toEqual(before)
      const withIssuer = await t.gql(acme.adminKey, CREATE, {
        input: validInput({
          sharedRedirectUrls: true,
          issuer: 'https://idp.example.com',
          scope: 'email',
        }),
      })
      expectBadInput(withIssuer, 'sharedRedirectUrls', 'needs a host for each tenant')
      expect(await snapshot(t)).toEqual(before)
    })

    it('refuses an update to turn it on where the rules do not hold', async () => {
      const own = await create(t, acme.adminKey)
      const before = await snapshot(t)
      const result = await t.gql(acme.adminKey, UPDATE, {
        input: { id: own.id, sharedRedirectUrls: true },
      })
      expectBadInput(result, 'sharedRedirectUrls', 'needs issuer')
      expect(await snapshot(t)).toEqual(before)
    })
  })
})

describe('sharedRedirectUrls with per-tenant hosts', () => {
  let t: TestApp
  let acme: SeededTenant
  beforeAll(async () => {
    t = await createTestApp({ env: { PUBLIC_BASE_URL: 'https://{tenant}.auth.example.com' } })
    acme = await t.seedTenant()
  })
  afterAll(() => t.close())

  it('lists the bare routes on the tenant host, which the integration then uses', async () => {
    const shared = await create(t, acme.adminKey, {
      sharedRedirectUrls: true,
      issuer: 'https://idp.example.com',
      scope: 'email',
    })
    expect(shared.sharedRedirectUrls).toBe(true)
    expect(shared.redirectUrls).toEqual(
      Object.values(REDIRECT_ROUTES).map(
        (route) => `https://${acme.slug}.auth.example.com${route}`,
      ),
    )
    const own = await t.gql<{ updateOAuthIntegration: { integration: IntegrationView } }>(
      acme.adminKey,
      UPDATE,
      { input: { id: shared.id, sharedRedirectUrls: false } },
    )
    expect(own.errors).toBeUndefined()
    expect(keyOf(own.data!.updateOAuthIntegration.integration.redirectUrls[0]!)).toMatch(
      CALLBACK_KEY,
    )
  })
})

describe('the secret follows its token endpoint', () => {
  let t: TestApp
  let acme: SeededTenant
  beforeAll(async () => {
    t = await createTestApp()
    acme = await t.seedTenant()
  })
  afterAll(() => t.close())

  async function sealedSecret(id: string): Promise<string | null> {
    const row = await t.deps.db
      .selectFrom('oauth_integrations')
      .select('client_secret_sealed')
      .where('id', '=', id)
      .executeTakeFirstOrThrow()
    return row.client_secret_sealed
  }

  it('refuses a new tokenUrl without a new clientSecret, naming clientSecret, writing nothing', async () => {
    const own = await create(t, acme.adminKey)
    const before = await snapshot(t)
    const result = await t.gql(acme.adminKey, UPDATE, {
      input: { id: own.id, tokenUrl: 'https://collector.example.net/token' },
    })
    const message = expectBadInput(
      result,
      'clientSecret',
      'is required when the token endpoint changes',
    )
    expect(message).toContain('https://collector.example.net/token')
    expect(await snapshot(t)).toEqual(before)
  })

  it('takes a new tokenUrl with a new clientSecret', async () => {
    const own = await create(t, acme.adminKey)
    const sealed = await sealedSecret(own.id)
    const result = await t.gql<{ updateOAuthIntegration: { integration: IntegrationView } }>(
      acme.adminKey,
      UPDATE,
      {
        input: {
          id: own.id,
          tokenUrl: 'https://idp2.example.com/token',
          clientSecret: 'a-new-secret-for-idp2',
        },
      },
    )
    expect(result.errors).toBeUndefined()
    expect(result.data!.updateOAuthIntegration.integration.tokenUrl).toBe(
      'https://idp2.example.com/token',
    )
    expect(await sealedSecret(own.id)).not.toBe(sealed)
  })

  it('keeps the stored secret when the token endpoint stays (another field changes)', async () => {
    const own = await create(t, acme.adminKey)
    const sealed = await sealedSecret(own.id)
    const result = await t.gql(acme.adminKey, UPDATE, {
      input: { id: own.id, scope: 'email', tokenUrl: own.tokenUrl },
    })
    expect(result.errors).toBeUndefined()
    expect(await sealedSecret(own.id)).toBe(sealed)
  })
})
