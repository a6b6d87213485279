import { describe, expect, it } from 'vitest'
import { BadUserInputError } from '../../src/core/errors.ts'
import {
  authorizationHostOf,
  clientSecretProblem,
  issuerProblem,
  messageTextProblem,
  nameProblem,
  normaliseScope,
  providerUrlProblem,
  reservedParamProblem,
  scopeProblem,
  sessionTtlProblem,
} from '../../src/core/integration-rules.ts'

describe('integration rules', () => {
  it('normalises scopes and checks RFC 6749 §3.3 scope tokens', () => {
    expect(normaliseScope('  openid   profile ')).toBe('openid profile')
    expect(normaliseScope('   ')).toBeNull()
    expect(scopeProblem('openid https://graph.example.com/.default offline_access')).toBeNull()
    expect(scopeProblem('openid\u000bprofile')).toMatch(/control characters/)
    expect(scopeProblem('a"b')).toMatch(/invalid scope token "a"b"/)
  })

  it('refuses every parameter the flow sets, in any case, and keeps the others', () => {
    expect(reservedParamProblem('https://idp.example.com/a?audience=x&prompt=login')).toBeNull()
    expect(reservedParamProblem('https://idp.example.com/a?code_challenge_foo=1')).toMatch(
      /"code_challenge_foo"/,
    )
    expect(reservedParamProblem('https://idp.example.com/a?Redirect_URI=x')).toMatch(
      /"Redirect_URI"/,
    )
    expect(reservedParamProblem('https://idp.example.com/a?scope=x')).toMatch(/input\.scope/)
  })

  it('applies the outbound rules per URL field', () => {
    expect(providerUrlProblem('tokenUrl', 'https://idp.example.com/t?state=1', [])).toBeNull()
    expect(providerUrlProblem('authorizationUrl', 'https://idp.example.com/a?state=1', [])).toMatch(
      /"state"/,
    )
    expect(providerUrlProblem('whoAmIUrl', 'http://127.0.0.1:8080/me', ['127.0.0.1'])).toBeNull()
    expect(providerUrlProblem('whoAmIUrl', 'http://127.0.0.1:8080/me', [])).toMatch(/https/)
  })

  it('checks issuers as RFC 8414 identifiers', () => {
    expect(issuerProblem('https://login.example.com/tenant-1/v2.0', [])).toBeNull()
    expect(issuerProblem('https://login.example.com/?x', [])).toMatch(/query/)
    expect(issuerProblem('http://127.0.0.1:9000', ['127.0.0.1'])).toBeNull()
    expect(issuerProblem('http://127.0.0.1:9000', [])).toMatch(/https/)
  })

  it('allows {business} and nothing else as a placeholder', () => {
    expect(messageTextProblem('{business} asks you to sign in.\nThanks!')).toBeNull()
    expect(messageTextProblem('Hi {business}, {link}')).toMatch(/unknown placeholder \{link\}/)
    expect(messageTextProblem('JSON like { "a": 1 } is fine')).toBeNull()
  })

  it('never repeats a secret in a problem', () => {
    const secret = `${'x'.repeat(2048)}tail\u0000`
    expect(clientSecretProblem(secret)).not.toContain('x'.repeat(10))
    expect(clientSecretProblem('abc\u0001def')).not.toContain('abc')
  })

  it('bounds names and session lifetimes', () => {
    expect(nameProblem(`  ${'n'.repeat(100)}  `)).toBeNull()
    expect(nameProblem('n'.repeat(101))).toMatch(/at most 100/)
    expect(sessionTtlProblem(60)).toBeNull()
    expect(sessionTtlProblem(3600)).toBeNull()
    expect(sessionTtlProblem(60.5)).toMatch(/whole number/)
  })

  it('compares authorization hosts by lower-case host name', () => {
    expect(authorizationHostOf('https://IDP.Example.com.:8443/authorize')).toBe('idp.example.com')
  })
})

describe('BadUserInputError.of', () => {
  it('names every field in the message, joined by "; ", and keeps them apart in fields', () => {
    const problems = [
      { field: 'input.name', message: 'must not be empty' },
      { field: 'input.tokenUrl', message: 'must be an absolute https URL; see the docs' },
    ]
    const error = BadUserInputError.of(problems)
    expect(error.message).toBe(
      'input.name: must not be empty; input.tokenUrl: must be an absolute https URL; see the docs',
    )
    expect(error.fields).toEqual(problems)
    expect(error.code).toBe('BAD_USER_INPUT')
  })
})
