import { describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { newCallbackKey } from '../../src/core/integration.ts'
import {
  CALLBACK_KEY,
  hasTenantHosts,
  parseCallbackPath,
  publicBaseFor,
  REDIRECT_ROUTES,
  redirectUrlFor,
  redirectUrlsFor,
} from '../../src/core/redirect-urls.ts'

describe('redirect URLs', () => {
  it('are the three contract routes under PUBLIC_BASE_URL, followed by the key', () => {
    expect(redirectUrlsFor('http://localhost:4000', 'acme', 'k0123456789abcde')).toEqual([
      'http://localhost:4000/idp/eu/oauth/callback/k0123456789abcde',
      'http://localhost:4000/web/inbound/abc/oauth/redirect/k0123456789abcde',
      'http://localhost:4000/web/inbound/abc/oauth/abcAuth2Redirect/k0123456789abcde',
    ])
  })

  it('are the bare routes without a key (shared callback URLs)', () => {
    expect(redirectUrlsFor('http://localhost:4000', 'acme', null)).toEqual([
      'http://localhost:4000/idp/eu/oauth/callback',
      'http://localhost:4000/web/inbound/abc/oauth/redirect',
      'http://localhost:4000/web/inbound/abc/oauth/abcAuth2Redirect',
    ])
  })

  it('parse a request path into its route and key, and nothing else', () => {
    expect(parseCallbackPath('/idp/eu/oauth/callback')).toEqual({ route: 'IDP', callbackKey: null })
    expect(parseCallbackPath('/web/inbound/abc/oauth/redirect/0123456789abcdef')).toEqual({
      route: 'ABC',
      callbackKey: '0123456789abcdef',
    })
    for (const path of [
      '/idp/eu/oauth/callback/',
      '/idp/eu/oauth/callback/SHORT',
      '/idp/eu/oauth/callback/0123456789ABCDEF',
      '/idp/eu/oauth/callback/0123456789abcdef/x',
      '/idp/eu/oauth/callbackx',
      '/other',
    ]) {
      expect(parseCallbackPath(path), path).toBeNull()
    }
  })

  it('make 16-character keys of lower-case letters and digits, all different', () => {
    const keys = new Set(Array.from({ length: 200 }, () => newCallbackKey(randomBytes)))
    expect(keys.size).toBe(200)
    for (const key of keys) expect(key).toMatch(CALLBACK_KEY)
  })

  it('say whether each tenant has a host of its own', () => {
    expect(hasTenantHosts('https://{tenant}.auth.example.com')).toBe(true)
    expect(hasTenantHosts('https://auth.example.com/{tenant}')).toBe(false)
    expect(hasTenantHosts('http://localhost:4000')).toBe(false)
  })

  it('put the tenant slug wherever {tenant} appears', () => {
    expect(publicBaseFor('https://{tenant}.auth.example.com', 'acme')).toBe(
      'https://acme.auth.example.com',
    )
    expect(publicBaseFor('https://auth.example.com/{tenant}/', 'acme')).toBe(
      'https://auth.example.com/acme',
    )
    expect(redirectUrlFor('https://{tenant}.goquiq.com', 'globex', 'ABC_AUTH2', null)).toBe(
      'https://globex.goquiq.com/web/inbound/abc/oauth/abcAuth2Redirect',
    )
  })

  it('keep the route paths of the contract', () => {
    expect(REDIRECT_ROUTES).toEqual({
      IDP: '/idp/eu/oauth/callback',
      ABC: '/web/inbound/abc/oauth/redirect',
      ABC_AUTH2: '/web/inbound/abc/oauth/abcAuth2Redirect',
    })
  })
})
