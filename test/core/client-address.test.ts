import { describe, expect, it } from 'vitest'
import {
  clientAddress,
  NO_TRUSTED_PROXIES,
  parseTrustedProxies,
  requestHost,
  type TrustedProxies,
} from '../../src/core/client-address.ts'

function trusted(...entries: string[]): TrustedProxies {
  const parsed = parseTrustedProxies(entries)
  if ('error' in parsed) throw new Error(parsed.error)
  return parsed
}

describe('clientAddress', () => {
  it('is the peer when no proxy is trusted, whatever X-Forwarded-For says', () => {
    expect(clientAddress('203.0.113.5', '198.51.100.1', NO_TRUSTED_PROXIES)).toBe('203.0.113.5')
    expect(clientAddress('::ffff:203.0.113.5', null, NO_TRUSTED_PROXIES)).toBe('203.0.113.5')
    expect(clientAddress(null, '198.51.100.1', NO_TRUSTED_PROXIES)).toBeNull()
  })

  it('behind trusted proxies, is the rightmost address that is not one of them', () => {
    const proxies = trusted('10.0.0.0/8', '192.168.1.1', 'fd00::/8')
    expect(clientAddress('10.1.2.3', '198.51.100.7', proxies)).toBe('198.51.100.7')
    // The client wrote the left part itself: ignored.
    expect(clientAddress('10.1.2.3', '1.1.1.1, 198.51.100.7, 10.9.9.9', proxies)).toBe(
      '198.51.100.7',
    )
    expect(clientAddress('::ffff:192.168.1.1', '2001:db8::1', proxies)).toBe('2001:db8::1')
    expect(clientAddress('fd12::1', '[2001:db8::2]', proxies)).toBe('2001:db8::2')
    // A peer that is not trusted is the client, whatever it forwards.
    expect(clientAddress('192.168.1.2', '198.51.100.7', proxies)).toBe('192.168.1.2')
    // All hops trusted: the leftmost one.
    expect(clientAddress('10.0.0.1', '10.0.0.2', proxies)).toBe('10.0.0.2')
    // Garbage stops the walk at the last believable address.
    expect(clientAddress('10.0.0.1', 'evil, not-an-ip', proxies)).toBe('10.0.0.1')
    expect(clientAddress('10.0.0.1', null, proxies)).toBe('10.0.0.1')
  })

  it('refuses TRUST_PROXY entries that are not addresses or ranges', () => {
    expect(parseTrustedProxies(['10.0.0.0/33'])).toEqual({
      error: '"10.0.0.0/33" is not an IP address or CIDR range (e.g. 10.0.0.0/8, fd00::/8)',
    })
    expect('error' in parseTrustedProxies(['lb.internal'])).toBe(true)
    expect('error' in parseTrustedProxies(['10.0.0.1/8/8'])).toBe(true)
    expect('error' in parseTrustedProxies(['fd00::/129'])).toBe(true)
    expect(parseTrustedProxies([])).toEqual({ ranges: [] })
  })
})

describe('requestHost', () => {
  const proxies = trusted('10.0.0.0/8')

  it('is the request’s own host unless a trusted proxy forwarded one', () => {
    expect(requestHost('Acme.Auth.Example.com', '203.0.113.5', 'evil.example', proxies)).toBe(
      'acme.auth.example.com',
    )
    expect(requestHost('internal:4000', '10.1.2.3', 'acme.auth.example.com', proxies)).toBe(
      'acme.auth.example.com',
    )
    expect(requestHost('internal:4000', '10.1.2.3', null, proxies)).toBe('internal:4000')
    expect(requestHost('internal:4000', null, 'acme.auth.example.com', proxies)).toBe(
      'internal:4000',
    )
    expect(requestHost('internal:4000', '10.1.2.3', 'x.example', NO_TRUSTED_PROXIES)).toBe(
      'internal:4000',
    )
  })

  it('takes the nearest proxy’s value, with a port or as an IPv6 literal', () => {
    expect(requestHost('i', '10.1.2.3', 'client-wrote.example, acme.example:8443', proxies)).toBe(
      'acme.example:8443',
    )
    expect(requestHost('i', '10.1.2.3', '[2001:db8::1]:443', proxies)).toBe('[2001:db8::1]:443')
  })

  it('does not believe a forwarded value that is not a host', () => {
    for (const bad of [
      'acme.example/path',
      'user@acme.example',
      'a b',
      '',
      '-bad.example',
      'ex ample',
    ]) {
      expect(requestHost('internal:4000', '10.1.2.3', bad, proxies)).toBe('internal:4000')
    }
  })
})
