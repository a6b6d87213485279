/** core/auth-failure.ts: the failure codes and the log redaction the provider adapter relies on. */
import { describe, expect, it } from 'vitest'
import {
  AUTH_FAILURE_CODES,
  authFailure,
  redact,
  safeErrorCode,
} from '../../src/core/auth-failure.ts'

describe('failure codes', () => {
  it('documents every code, including the ones the issue names', () => {
    for (const code of [
      'access_denied',
      'invalid_grant',
      'provider_error',
      'provider_timeout',
      'invalid_provider_response',
      'whoami_failed',
      'mapping_failed',
    ]) {
      expect(AUTH_FAILURE_CODES).toHaveProperty(code)
    }
    for (const description of Object.values(AUTH_FAILURE_CODES))
      expect(description.length).toBeGreaterThan(20)
  })

  it('keeps what is stored apart from what is logged', () => {
    expect(authFailure('invalid_grant', 'token request: ...', 'raw detail')).toEqual({
      failure: { code: 'invalid_grant', message: 'token request: ...' },
      detail: 'raw detail',
    })
  })

  it('quotes only plain OAuth error codes', () => {
    expect(safeErrorCode('invalid_grant')).toBe('invalid_grant')
    expect(safeErrorCode('<b>')).toBeNull()
    expect(safeErrorCode('a b')).toBeNull()
    expect(safeErrorCode('x'.repeat(65))).toBeNull()
    expect(safeErrorCode(42)).toBeNull()
  })
})

describe('redact', () => {
  it('removes secret fields from JSON, form and query text, and authorization values', () => {
    expect(redact('{"access_token":"abc\\"def","token_type":"bearer","refresh_token": "r1"}')).toBe(
      '{"access_token":"[redacted]","token_type":"bearer","refresh_token": "[redacted]"}',
    )
    expect(redact('code=abc&state=xyz&redirect_uri=https%3A%2F%2Fa')).toBe(
      'code=[redacted]&state=[redacted]&redirect_uri=https%3A%2F%2Fa',
    )
    expect(redact('GET /cb?code=abc&x=1')).toBe('GET /cb?code=[redacted]&x=1')
    expect(redact('authorization: Bearer eyJhbGciOi.x.y, Basic dXNlcjpwdw==')).toBe(
      'authorization: Bearer [redacted], Basic [redacted]',
    )
  })

  it('removes the call’s own secrets wherever they appear', () => {
    expect(
      redact('<p>your token is s3cr3t-value!</p>', {
        secrets: ['s3cr3t-value', null, undefined, ''],
      }),
    ).toBe('<p>your token is [redacted]!</p>')
  })

  it('redacts a secret value cut off by truncation', () => {
    const long = `{"access_token":"${'a'.repeat(40_000)}`
    expect(redact(long)).toBe('{"access_token":"[redacted]"')
  })

  it('escapes control and bidi characters and truncates', () => {
    expect(redact('a\u0000b\nc\u202ed\u001b[31m')).toBe('a\\u0000b\\u000ac\\u202ed\\u001b[31m')
    expect(redact('x'.repeat(600))).toBe(`${'x'.repeat(500)}… (600 chars)`)
    expect(redact('y'.repeat(50), { maxLength: 10 })).toBe(`${'y'.repeat(10)}… (50 chars)`)
  })
})
