/**
 * The field table of core/integration.ts and the patch logic derived from it: every problem at
 * once, null clears or resets, absent keeps, values normalised once.
 */
import { describe, expect, it } from 'vitest'
import {
  applyPatch,
  changedFields,
  INTEGRATION_FIELD_NAMES,
  INTEGRATION_FIELDS,
  initialSettings,
  patchProblems,
  settingsProblems,
  type IntegrationSettings,
} from '../../src/core/integration.ts'

const context = { allowHosts: [], tenantHosts: false }

const settings: IntegrationSettings = {
  ...initialSettings(),
  name: 'Acme',
  clientId: 'client',
  authorizationUrl: 'https://idp.example.com/authorize',
  tokenUrl: 'https://idp.example.com/token',
  scope: 'openid email',
}

describe('the integration field table', () => {
  it('gives every field a column, a kind and a description, and a default to defaulted ones', () => {
    for (const field of INTEGRATION_FIELD_NAMES) {
      const spec = INTEGRATION_FIELDS[field]
      expect(spec.column, field).toMatch(/^[a-z_]+$/)
      expect(spec.description.length, field).toBeGreaterThan(20)
      expect(['required', 'optional', 'defaulted']).toContain(spec.kind)
      if (spec.kind === 'defaulted') expect('default' in spec, field).toBe(true)
    }
    expect(new Set(INTEGRATION_FIELD_NAMES.map((f) => INTEGRATION_FIELDS[f].column)).size).toBe(
      INTEGRATION_FIELD_NAMES.length,
    )
  })

  it('starts a new integration with the defaults and no optional values', () => {
    expect(initialSettings()).toMatchObject({
      pkce: true,
      splitFullName: true,
      overwriteContact: false,
      sessionTtlSeconds: 600,
      tokenEndpointAuthMethod: 'CLIENT_SECRET_POST',
      scope: null,
      issuer: null,
    })
  })
})

describe('patchProblems', () => {
  it('names every wrong field at once, in the table order', () => {
    const problems = patchProblems(
      {
        name: '  ',
        tokenUrl: 'http://idp.example.com/token',
        scope: 'a"b',
        sessionTtlSeconds: 5,
        messageText: 'Hello {nobody}',
        whoAmIMapping: 'foo[',
      },
      context,
      'update',
    )
    expect(problems.map((p) => p.field)).toEqual([
      'name',
      'scope',
      'tokenUrl',
      'whoAmIMapping',
      'sessionTtlSeconds',
      'messageText',
    ])
  })

  it('refuses null for a required field on update, and a missing one on create', () => {
    expect(patchProblems({ name: null, scope: null, pkce: null }, context, 'update')).toEqual([
      { field: 'name', message: 'must not be null (omit it to keep the current value)' },
    ])
    // The endpoints may come from the issuer's metadata: settingsProblems checks them after.
    expect(patchProblems({ name: 'x' }, context, 'create').map((p) => p.field)).toEqual([
      'clientId',
    ])
  })

  it('applies the allow-list of the context to provider URLs', () => {
    const url = { tokenUrl: 'http://127.0.0.1:8080/token' }
    expect(patchProblems(url, context, 'update')).toHaveLength(1)
    expect(patchProblems(url, { ...context, allowHosts: ['127.0.0.1:8080'] }, 'update')).toEqual([])
  })
})

describe('settingsProblems', () => {
  it('wants the endpoints unless an issuer can supply them, and shared URLs only with an issuer on tenant hosts', () => {
    const bare = { ...settings, authorizationUrl: '', tokenUrl: '' }
    expect(settingsProblems(bare, context).map((p) => p.field)).toEqual([
      'authorizationUrl',
      'tokenUrl',
    ])
    const shared = { ...settings, sharedRedirectUrls: true }
    expect(settingsProblems(shared, context).map((p) => p.message)).toEqual([
      expect.stringMatching(/^needs issuer/),
      expect.stringMatching(/^needs a host for each tenant/),
    ])
    expect(
      settingsProblems(
        { ...shared, issuer: 'https://idp.example.com' },
        { ...context, tenantHosts: true },
      ),
    ).toEqual([])
  })
})

describe('applyPatch', () => {
  it('keeps absent fields, normalises given ones, clears optional ones and resets defaults', () => {
    const after = applyPatch(
      { ...settings, pkce: false, issuer: 'https://idp.example.com' },
      {
        name: '  Acme 2 ',
        scope: ' openid   profile ',
        issuer: null,
        pkce: null,
        whoAmIMapping: ' {email: mail} ',
      },
    )
    expect(after).toEqual({
      ...settings,
      name: 'Acme 2',
      scope: 'openid profile',
      issuer: null,
      pkce: true,
      whoAmIMapping: '{email: mail}',
    })
    expect(changedFields(settings, after)).toEqual(['name', 'scope', 'whoAmIMapping'])
  })

  it('turns a blank scope into no scope', () => {
    expect(applyPatch(settings, { scope: '   ' }).scope).toBeNull()
  })
})
