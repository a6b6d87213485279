import { describe, expect, it } from 'vitest'
import {
  publicBaseFor,
  REDIRECT_ROUTES,
  redirectUrlFor,
  redirectUrlsFor,
} from '../../src/core/redirect-urls.ts'

describe('redirect URLs', () => {
  it('are the three contract routes under PUBLIC_BASE_URL', () => {
    expect(redirectUrlsFor('http://localhost:4000', 'acme')).toEqual([
      'http://localhost:4000/idp/eu/oauth/callback',
      'http://localhost:4000/web/inbound/abc/oauth/redirect',
      'http://localhost:4000/web/inbound/abc/oauth/abcAuth2Redirect',
    ])
  })

  it('put the tenant slug wherever {tenant} appears', () => {
    expect(publicBaseFor('https://{tenant}.auth.example.com', 'acme')).toBe(
      'https://acme.auth.example.com',
    )
    expect(publicBaseFor('https://auth.example.com/{tenant}/', 'acme')).toBe(
      'https://auth.example.com/acme',
    )
    expect(redirectUrlFor('https://{tenant}.goquiq.com', 'globex', 'ABC_AUTH2')).toBe(
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
