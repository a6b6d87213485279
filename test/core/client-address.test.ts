import { describe, expect, it } from 'vitest'
import {
  clientAddress,
  NO_TRUSTED_PROXIES,
  parseTrustedProxies,
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
