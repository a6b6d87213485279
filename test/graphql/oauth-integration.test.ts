import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listAuditEvents } from '../../src/db/audit.ts'
import {
  getIntegration,
  getIntegrationIncludingDeleted,
  openClientSecret,
} from '../../src/services/integrations.ts'
import { codes, createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'
import {
  apiKeyRowId,
  create,
  CREATE,
  DELETE,
  GET,
  insertSession,
  LIST,
  snapshot,
  UPDATE,
  validInput,
  type IntegrationView,
} from './integration-fixtures.ts'

let clock = new Date('2026-11-27T10:00:00.000Z')
const tick = () => {
  clock = new Date(clock.getTime() + 60_000)
  return clock
}

describe('OAuth integrations', () => {
  let t: TestApp
  let acme: SeededTenant
  let globex: SeededTenant

  beforeAll(async () => {
    t = await createTestApp({
      env: { PUBLIC_BASE_URL: 'https://{tenant}.auth.example.com' },
      now: () => clock,
    })
    acme = await t.seedTenant('acme')
    globex = await t.seedTenant('globex')
  })
  afterAll(() => t.close())

  describe('create', () => {
    it('stores every field, applies the defaults, and never returns the secret', async () => {
      const input = validInput({ name: '  Okta  ' })
      delete input.scope
      const result = await t.gql<{ createOAuthIntegration: { integration: IntegrationView } }>(
        acme.adminKey,
        CREATE,
        { input },
      )
      expect(result.errors).toBeUndefined()
      const created = result.data!.createOAuthIntegration.integration
      expect(created).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        name: 'Okta',
        clientId: input.clientId,
        scope: null,
        authorizationUrl: 'https://idp.example.com/oauth2/authorize',
        tokenUrl: 'https://idp.example.com/oauth2/token',
        whoAmIUrl: 'https://api.example.com/me',
        whoAmIMapping: '{userName: user.id, fullName: user.name, email: user.email}',
        tokenEndpointAuthMethod: 'CLIENT_SECRET_POST',
        pkce: true,
        issuer: null,
        splitFullName: true,
        overwriteContact: false,
        sessionTtlSeconds: 600,
        messageText: null,
        messageButtonLabel: null,
        hasClientSecret: true,
        redirectUrls: [
          expect.stringMatching(
            /^https:\/\/acme\.auth\.example\.com\/idp\/eu\/oauth\/callback\/[a-z0-9]{16}$/,
          ),
          expect.stringMatching(
            /^https:\/\/acme\.auth\.example\.com\/web\/inbound\/abc\/oauth\/redirect\/[a-z0-9]{16}$/,
          ),
          expect.stringMatching(
            /^https:\/\/acme\.auth\.example\.com\/web\/inbound\/abc\/oauth\/abcAuth2Redirect\/[a-z0-9]{16}$/,
          ),
        ],
        createdAt: clock.toISOString(),
        updatedAt: clock.toISOString(),
        sharedRedirectUrls: false,
        requireConfirmationCode: false,
        trustUnverifiedEmail: false,
        verificationTtlSeconds: null,
        warnings: [],
        discoveredAt: null,
      })
      // One key for the three URLs.
      const keys = new Set(created.redirectUrls.map((url) => url.slice(url.lastIndexOf('/') + 1)))
      expect(keys.size).toBe(1)
      expect(JSON.stringify(result)).not.toContain(String(input.clientSecret))
      const domain = await getIntegration(t.deps, acme.id, created.id)
      expect(await openClientSecret(t.deps, domain)).toBe(input.clientSecret)
    })

    it('takes every optional field', async () => {
      const created = await create(t, acme.adminKey, {
        // Not openid: an OpenID Connect integration reads its issuer's metadata (tested with a
        // real provider in test/flow).
        scope: '  email   profile  ',
        authorizationUrl: 'https://login.example.com/authorize?audience=api&prompt=login',
        tokenEndpointAuthMethod: 'CLIENT_SECRET_BASIC',
        pkce: false,
        issuer: 'https://login.example.com/',
        splitFullName: false,
        overwriteContact: true,
        sessionTtlSeconds: 3600,
        messageText: '  {business} would like to know who you are.\nPlease sign in.  ',
        messageButtonLabel: ' Sign in ',
        sharedRedirectUrls: true,
        requireConfirmationCode: true,
        trustUnverifiedEmail: true,
        verificationTtlSeconds: 86_400,
      })
      expect(created).toMatchObject({
        scope: 'email profile',
        authorizationUrl: 'https://login.example.com/authorize?audience=api&prompt=login',
        tokenEndpointAuthMethod: 'CLIENT_SECRET_BASIC',
        pkce: false,
        issuer: 'https://login.example.com/',
        splitFullName: false,
        overwriteContact: true,
        sessionTtlSeconds: 3600,
        messageText: '{business} would like to know who you are.\nPlease sign in.',
        messageButtonLabel: 'Sign in',
        sharedRedirectUrls: true,
        requireConfirmationCode: true,
        trustUnverifiedEmail: true,
        verificationTtlSeconds: 86_400,
        warnings: [expect.stringMatching(/^pkce is off/)],
        redirectUrls: [
          'https://acme.auth.example.com/idp/eu/oauth/callback',
          expect.any(String),
          expect.any(String),
        ],
      })
    })

    it('treats an explicit null like an absent optional field', async () => {
      const created = await create(t, acme.adminKey, {
        scope: null,
        whoAmIUrl: null,
        whoAmIMapping: null,
        pkce: null,
        sessionTtlSeconds: null,
        tokenEndpointAuthMethod: null,
      })
      expect(created).toMatchObject({
        scope: null,
        whoAmIUrl: null,
        whoAmIMapping: null,
        pkce: true,
        sessionTtlSeconds: 600,
        tokenEndpointAuthMethod: 'CLIENT_SECRET_POST',
      })
    })

    it('records who created it, without the secret', async () => {
      const input = validInput()
      const result = await t.gql<{ createOAuthIntegration: { integration: IntegrationView } }>(
        acme.adminKey,
        CREATE,
        { input },
      )
      const id = result.data!.createOAuthIntegration.integration.id
      const events = await listAuditEvents(t.deps.db, acme.id, { targetId: id })
      expect(events).toEqual([
        expect.objectContaining({
          action: 'oauth_integration.created',
          targetType: 'oauth_integration',
          targetId: id,
          actorKeyId: await apiKeyRowId(t, acme.adminKey),
          details: {
            name: input.name,
            clientId: input.clientId,
            tokenUrl: input.tokenUrl,
            issuer: null,
          },
        }),
      ])
      expect(JSON.stringify(events)).not.toContain(String(input.clientSecret))
    })
  })

  describe('read', () => {
    it('lists the tenant integrations by name, for ADMIN and AGENT keys', async () => {
      const tenant = await t.seedTenant()
      const b = await create(t, tenant.adminKey, { name: 'beta' })
      const a = await create(t, tenant.adminKey, { name: 'Alpha' })
      for (const key of [tenant.adminKey, tenant.agentKey]) {
        const list = await t.gql<{ oauthIntegrations: IntegrationView[] }>(key, LIST)
        expect(list.errors).toBeUndefined()
        expect(list.data!.oauthIntegrations.map((i) => i.id)).toEqual([a.id, b.id])
        const one = await t.gql<{ oauthIntegration: IntegrationView }>(key, GET, { id: a.id })
        expect(one.data!.oauthIntegration).toEqual(a)
      }
    })

    it('answers NOT_FOUND for an unknown or malformed id, never an SQL error', async () => {
      for (const id of [randomUUID(), 'abc', "1' or '1'='1", '', 'x'.repeat(5000)]) {
        const result = await t.gql(acme.agentKey, GET, { id })
        expect(codes(result)).toEqual(['NOT_FOUND'])
        expect(result.errors![0]!.message).toMatch(/^OAuth integration ".*" not found$/s)
        expect(result.errors![0]!.message.length).toBeLessThan(120)
      }
    })
  })

  describe('update', () => {
    it('changes the fields given, keeps the absent ones, and keeps the secret', async () => {
      const input = validInput({ messageText: 'Hello from {business}' })
      const before = await create(t, acme.adminKey, input)
      const at = tick()
      const result = await t.gql<{ updateOAuthIntegration: { integration: IntegrationView } }>(
        acme.adminKey,
        UPDATE,
        { input: { id: before.id, name: 'Renamed', sessionTtlSeconds: 120, pkce: false } },
      )
      expect(result.errors).toBeUndefined()
      expect(result.data!.updateOAuthIntegration.integration).toEqual({
        ...before,
        name: 'Renamed',
        sessionTtlSeconds: 120,
        pkce: false,
        warnings: [...before.warnings, expect.stringMatching(/^pkce is off/)],
        updatedAt: at.toISOString(),
      })
      const domain = await getIntegration(t.deps, acme.id, before.id)
      expect(await openClientSecret(t.deps, domain)).toBe(input.clientSecret)
    })

    it('clears optional fields sent as null and resets defaulted ones', async () => {
      const before = await create(t, acme.adminKey, {
        scope: 'email',
        issuer: 'https://idp.example.com',
        messageText: 'Hi',
        messageButtonLabel: 'Go',
        pkce: false,
        sessionTtlSeconds: 90,
      })
      const result = await t.gql<{ updateOAuthIntegration: { integration: IntegrationView } }>(
        acme.adminKey,
        UPDATE,
        {
          input: {
            id: before.id,
            scope: null,
            whoAmIUrl: null,
            whoAmIMapping: null,
            issuer: null,
            messageText: null,
            messageButtonLabel: null,
            pkce: null,
            sessionTtlSeconds: null,
          },
        },
      )
      expect(result.errors).toBeUndefined()
      expect(result.data!.updateOAuthIntegration.integration).toMatchObject({
        scope: null,
        whoAmIUrl: null,
        whoAmIMapping: null,
        issuer: null,
        messageText: null,
        messageButtonLabel: null,
        pkce: true,
        sessionTtlSeconds: 600,
        hasClientSecret: true,
      })
    })

    it('rotates the secret when one is sent, and audits only that it was rotated', async () => {
      const before = await create(t, acme.adminKey)
      const [sealedBefore] = await t.deps.db
        .selectFrom('oauth_integrations')
        .select('client_secret_sealed')
        .where('id', '=', before.id)
        .execute()
      const newSecret = 'rotated-secret-9d8f7g6h5j4k'
      const result = await t.gql(acme.adminKey, UPDATE, {
        input: { id: before.id, clientSecret: newSecret, tokenUrl: 'https://idp.example.com/t2' },
      })
      expect(result.errors).toBeUndefined()
      const domain = await getIntegration(t.deps, acme.id, before.id)
      expect(await openClientSecret(t.deps, domain)).toBe(newSecret)
      const [sealedAfter] = await t.deps.db
        .selectFrom('oauth_integrations')
        .select('client_secret_sealed')
        .where('id', '=', before.id)
        .execute()
      expect(sealedAfter!.client_secret_sealed).not.toBe(sealedBefore!.client_secret_sealed)

      const events = await listAuditEvents(t.deps.db, acme.id, { targetId: before.id })
      expect(events.map((e) => e.action)).toEqual([
        'oauth_integration.created',
        'oauth_integration.updated',
      ])
      expect(events[1]).toMatchObject({
        actorKeyId: await apiKeyRowId(t, acme.adminKey),
        details: {
          changes: {
            tokenUrl: {
              from: 'https://idp.example.com/oauth2/token',
              to: 'https://idp.example.com/t2',
            },
            clientSecret: 'rotated',
          },
        },
      })
      expect(JSON.stringify(events)).not.toContain(newSecret)
    })

    it('writes nothing (not even an audit record) when nothing changes', async () => {
      const before = await create(t, acme.adminKey)
      const snap = await snapshot(t)
      tick()
      const result = await t.gql<{ updateOAuthIntegration: { integration: IntegrationView } }>(
        acme.adminKey,
        UPDATE,
        { input: { id: before.id, name: before.name, scope: before.scope } },
      )
      expect(result.data!.updateOAuthIntegration.integration).toEqual(before)
      expect(await snapshot(t)).toEqual(snap)
    })

    it('lets an integration keep its own name in another case', async () => {
      const before = await create(t, acme.adminKey, { name: 'casey' })
      const result = await t.gql(acme.adminKey, UPDATE, { input: { id: before.id, name: 'CASEY' } })
      expect(result.errors).toBeUndefined()
    })
  })

  describe('delete', () => {
    it('hides the integration, cancels its open sessions and keeps completed ones readable', async () => {
      const integration = await create(t, acme.adminKey, { name: 'to delete' })
      const other = await create(t, acme.adminKey)
      const pending = await insertSession(t, acme.id, integration.id, 'PENDING')
      const opened = await insertSession(t, acme.id, integration.id, 'OPENED', {
        codeVerifierSealed: 'sealed-verifier',
      })
      const done = await insertSession(t, acme.id, integration.id, 'AUTHENTICATED')
      const failed = await insertSession(t, acme.id, integration.id, 'FAILED')
      // Past its expiry but not yet swept: it reads EXPIRED, and stays so.
      const lapsed = await insertSession(t, acme.id, integration.id, 'PENDING', {
        expiresAt: clock,
      })
      const unrelated = await insertSession(t, acme.id, other.id, 'PENDING')
      // Bots waiting on authSessionUpdated learn of the cancellation.
      const updates = t.deps.events.subscribe(pending)
      const updated = updates.next()
      const at = tick()

      const result = await t.gql(acme.adminKey, DELETE, { id: integration.id })
      expect(result.errors).toBeUndefined()
      expect(result.data).toEqual({ deleteOAuthIntegration: { id: integration.id } })

      const sessions = await t.deps.db
        .selectFrom('auth_sessions')
        .select(['id', 'status', 'completed_at', 'code_verifier_sealed'])
        .execute()
      const byId = new Map(sessions.map((s) => [s.id, s]))
      expect(byId.get(pending)).toMatchObject({ status: 'CANCELLED', completed_at: at })
      expect(byId.get(opened)).toMatchObject({
        status: 'CANCELLED',
        completed_at: at,
        code_verifier_sealed: null,
      })
      expect(byId.get(done)).toMatchObject({ status: 'AUTHENTICATED' })
      expect(byId.get(failed)).toMatchObject({ status: 'FAILED' })
      expect(byId.get(lapsed)).toMatchObject({ status: 'PENDING', completed_at: null })
      expect(byId.get(unrelated)).toMatchObject({ status: 'PENDING', completed_at: null })
      expect(await updated).toEqual({ done: false, value: pending })
      await updates.return?.()

      const list = await t.gql<{ oauthIntegrations: IntegrationView[] }>(acme.adminKey, LIST)
      expect(list.data!.oauthIntegrations.map((i) => i.id)).not.toContain(integration.id)
      expect(codes(await t.gql(acme.adminKey, GET, { id: integration.id }))).toEqual(['NOT_FOUND'])
      expect(codes(await t.gql(acme.adminKey, DELETE, { id: integration.id }))).toEqual([
        'NOT_FOUND',
      ])
      const update = await t.gql(acme.adminKey, UPDATE, {
        input: { id: integration.id, name: 'x' },
      })
      expect(codes(update)).toEqual(['NOT_FOUND'])

      // What the sessions that used it still show; the secret is gone with it.
      const kept = await getIntegrationIncludingDeleted(t.deps, acme.id, integration.id)
      expect(kept).toMatchObject({ id: integration.id, name: 'to delete', hasClientSecret: false })
      expect(await openClientSecret(t.deps, kept)).toBeNull()
      await expect(
        getIntegrationIncludingDeleted(t.deps, globex.id, integration.id),
      ).rejects.toThrow(/not found/)

      const events = await listAuditEvents(t.deps.db, acme.id, { targetId: integration.id })
      expect(events.at(-1)).toMatchObject({
        action: 'oauth_integration.deleted',
        actorKeyId: await apiKeyRowId(t, acme.adminKey),
        details: { name: 'to delete', cancelledSessions: 2 },
      })
    })

    it('frees the name and the client registration for new integrations', async () => {
      const first = await create(t, acme.adminKey, {
        name: 'reused',
        clientId: 'shared-after-delete',
      })
      await t.gql(acme.adminKey, DELETE, { id: first.id })
      const again = await create(t, acme.adminKey, { name: 'REUSED' })
      expect(again.name).toBe('REUSED')
      const elsewhere = await create(t, globex.adminKey, { clientId: 'shared-after-delete' })
      expect(elsewhere.clientId).toBe('shared-after-delete')
    })
  })

  describe('roles', () => {
    it('lets AGENT keys read but not create, update or delete (FORBIDDEN, nothing written)', async () => {
      const integration = await create(t, acme.adminKey)
      const snap = await snapshot(t)
      const attempts = [
        await t.gql(acme.agentKey, CREATE, { input: validInput() }),
        await t.gql(acme.agentKey, UPDATE, {
          input: { id: integration.id, name: 'agent was here' },
        }),
        await t.gql(acme.agentKey, DELETE, { id: integration.id }),
        // Roles are checked before input: bad input from an AGENT is still FORBIDDEN.
        await t.gql(acme.agentKey, CREATE, { input: validInput({ tokenUrl: 'http://10.0.0.1' }) }),
      ]
      for (const result of attempts) {
        expect(codes(result)).toEqual(['FORBIDDEN'])
        expect(result.errors![0]!.message).toMatch(/ADMIN key/)
      }
      expect(await snapshot(t)).toEqual(snap)
      expect((await t.gql(acme.agentKey, GET, { id: integration.id })).errors).toBeUndefined()
    })

    it('answers UNAUTHENTICATED to every field without a key', async () => {
      const integration = await create(t, acme.adminKey)
      const snap = await snapshot(t)
      for (const [query, variables] of [
        [LIST, {}],
        [GET, { id: integration.id }],
        [CREATE, { input: validInput() }],
        [UPDATE, { input: { id: integration.id, name: 'anonymous' } }],
        [DELETE, { id: integration.id }],
      ] as const) {
        expect(codes(await t.gql(null, query, variables))).toEqual(['UNAUTHENTICATED'])
      }
      expect(await snapshot(t)).toEqual(snap)
    })
  })

  describe('tenant isolation', () => {
    it('keeps another tenant from reading, changing or deleting an integration, or learning it exists', async () => {
      const mine = await create(t, acme.adminKey)
      const snap = await snapshot(t)
      const random = randomUUID()
      const notFound = (id: string) => `OAuth integration "${id}" not found`

      const list = await t.gql<{ oauthIntegrations: IntegrationView[] }>(globex.adminKey, LIST)
      expect(list.data!.oauthIntegrations.map((i) => i.id)).not.toContain(mine.id)

      for (const key of [globex.adminKey, globex.agentKey]) {
        for (const id of [mine.id, random]) {
          const get = await t.gql(key, GET, { id })
          expect(codes(get)).toEqual(['NOT_FOUND'])
          expect(get.errors![0]!.message).toBe(notFound(id))
          expect(get.data).toEqual({ oauthIntegration: null })
        }
      }
      for (const id of [mine.id, random]) {
        const update = await t.gql(globex.adminKey, UPDATE, {
          input: { id, name: 'taken over', clientSecret: 'attacker-secret' },
        })
        expect(codes(update)).toEqual(['NOT_FOUND'])
        expect(update.errors![0]!.message).toBe(notFound(id))
        const del = await t.gql(globex.adminKey, DELETE, { id })
        expect(codes(del)).toEqual(['NOT_FOUND'])
        expect(del.errors![0]!.message).toBe(notFound(id))
      }
      expect(await snapshot(t)).toEqual(snap)
      await expect(getIntegration(t.deps, globex.id, mine.id)).rejects.toThrow(notFound(mine.id))
    })

    it('allows the same name in two tenants', async () => {
      await create(t, acme.adminKey, { name: 'Shared name' })
      const other = await create(t, globex.adminKey, { name: 'shared NAME' })
      expect(other.redirectUrls[0]).toMatch(
        /^https:\/\/globex\.auth\.example\.com\/idp\/eu\/oauth\/callback\/[a-z0-9]{16}$/,
      )
    })
  })
})
