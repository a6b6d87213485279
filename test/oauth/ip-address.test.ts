/**
 * core/ip-address.ts: the address classifier shared by the connect-time guard and the admin URL
 * check. (Kept under test/oauth/ with the rest of the SSRF suite.)
 */
import { describe, expect, it } from 'vitest'
import {
  addressKind,
  checkOutboundUrl,
  isAllowListed,
  isPublicUnicast,
  normaliseAllowHosts,
  parseIPv6,
  type AddressKind,
} from '../../src/core/ip-address.ts'

describe('addressKind', () => {
  const table: [string, AddressKind][] = [
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'this-network'],
    ['10.0.0.5', 'private'],
    ['100.64.0.1', 'carrier-grade-nat'],
    ['100.127.255.255', 'carrier-grade-nat'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.0.0.8', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['192.88.99.1', 'reserved'],
    ['192.168.1.1', 'private'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['198.51.100.7', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'broadcast'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::ffff:127.0.0.1', 'ipv4-mapped'],
    ['::ffff:7f00:1', 'ipv4-mapped'],
    ['::ffff:8.8.8.8', 'ipv4-mapped'],
    ['::127.0.0.1', 'ipv4-compatible'],
    ['64:ff9b::7f00:1', 'nat64'],
    ['64:ff9b::808:808', 'nat64'],
    ['64:ff9b:1::1', 'nat64'],
    ['100::1', 'reserved'],
    ['2001::1', 'teredo'],
    ['2001:2::1', 'benchmarking'],
    ['2001:10::1', 'reserved'],
    ['2001:db8::1', 'documentation'],
    ['2002:7f00:1::1', '6to4'],
    ['3fff::1', 'documentation'],
    ['5f00::1', 'reserved'],
    ['fc00::1', 'unique-local'],
    ['fd00:ec2::254', 'unique-local'],
    ['fe80::1', 'link-local'],
    ['febf::1', 'link-local'],
    ['fec0::1', 'site-local'],
    ['ff02::1', 'multicast'],
    ['4000::1', 'reserved'],
    ['1::1', 'reserved'],
  ]
  it.each(table)('%s is %s', (ip, kind) => {
    expect(addressKind(ip)).toBe(kind)
    expect(isPublicUnicast(ip)).toBe(false)
  })

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '93.184.216.34',
    '100.63.255.255',
    '100.128.0.0',
    '172.32.0.1',
    '2606:4700::1111',
    '2001:4860:4860::8888',
    '2a00:1450:4001:80b::200e',
    '[2001:200::1]',
  ])('%s is public unicast', (ip) => {
    expect(addressKind(ip)).toBe('public')
    expect(isPublicUnicast(ip)).toBe(true)
  })

  // Only canonical text is accepted: other spellings are what URL parsing normalises, and
  // anything that reaches the classifier unnormalised is refused rather than guessed at.
  it.each([
    '2130706433',
    '0x7f000001',
    '0x7f.1',
    '0177.0.0.1',
    '127.1',
    '08.8.8.8',
    '8.8.8.08',
    '256.1.1.1',
    '1.2.3',
    '1.2.3.4.5',
    ' 8.8.8.8',
    'fe80::1%eth0',
    '::ffff:1.2.3',
    '1.2.3.4::',
    '2001:db8::1::1',
    '1:2:3:4:5:6:7:8:9',
    ':1::2',
    '1::2:',
    'example.com',
    '',
  ])('%j is not a valid address, so not public', (text) => {
    expect(addressKind(text)).toBe('invalid')
    expect(isPublicUnicast(text)).toBe(false)
  })

  it('parses the IPv6 text forms of RFC 4291', () => {
    expect(parseIPv6('::')).toBe(0n)
    expect(parseIPv6('::1')).toBe(1n)
    expect(parseIPv6('1::')).toBe(1n << 112n)
    expect(parseIPv6('0:0:0:0:0:0:0:1')).toBe(1n)
    expect(parseIPv6('::ffff:1.2.3.4')).toBe(0xffff01020304n)
    expect(parseIPv6('0:0:0:0:0:ffff:1.2.3.4')).toBe(0xffff01020304n)
    expect(parseIPv6('1:2:3:4:5:6:7::')).toBe(0x0001000200030004000500060007_0000n)
    expect(parseIPv6('FE80::ABCD')).toBe((0xfe80n << 112n) | 0xabcdn)
    expect(parseIPv6('1:2:3:4:5:6:7:8::')).toBeNull()
  })
})

describe('allow list', () => {
  it('normalises host, case, IPv4 spellings, IPv6 brackets and ports', () => {
    expect(
      normaliseAllowHosts([
        'IdP.Example.COM',
        '0x7f.1:8080',
        '[::1]',
        '::1',
        '[::1]:9000',
        'localhost.',
        'bad entry/',
        '',
      ]),
    ).toEqual([
      { host: 'idp.example.com', port: null },
      { host: '127.0.0.1', port: '8080' },
      { host: '[::1]', port: null },
      { host: '[::1]', port: null },
      { host: '[::1]', port: '9000' },
      { host: 'localhost', port: null },
    ])
  })

  it('matches with or without a port, default ports included', () => {
    const allow = normaliseAllowHosts(['idp.test', '127.0.0.1:80', '[::1]:8443'])
    expect(isAllowListed(new URL('https://IDP.test:444/x'), allow)).toBe(true)
    expect(isAllowListed(new URL('https://idp.test./x'), allow)).toBe(true)
    expect(isAllowListed(new URL('http://127.0.0.1/'), allow)).toBe(true)
    expect(isAllowListed(new URL('http://2130706433:80/'), allow)).toBe(true)
    expect(isAllowListed(new URL('https://127.0.0.1/'), allow)).toBe(false)
    expect(isAllowListed(new URL('https://[0::1]:8443/'), allow)).toBe(true)
    expect(isAllowListed(new URL('https://[::1]/'), allow)).toBe(false)
    expect(isAllowListed(new URL('https://sub.idp.test/'), allow)).toBe(false)
  })
})

describe('checkOutboundUrl', () => {
  const HINT = 'add it to OUTBOUND_ALLOW_HOSTS to allow it'
  const table: [string, string | null][] = [
    ['https://idp.example.com/oauth/token', null],
    ['https://idp.example.com:8443/token?tenant=1', null],
    ['https://xn--bcher-kva.example/token', null],
    ['not a url', 'must be an absolute https URL'],
    ['/relative/path', 'must be an absolute https URL'],
    ['ftp://idp.example.com/', 'must be an absolute https URL'],
    ['javascript:alert(1)', 'must be an absolute https URL'],
    [
      'http://idp.example.com/token',
      'must be an absolute https URL (plain http only for hosts in OUTBOUND_ALLOW_HOSTS)',
    ],
    ['https://user:pw@idp.example.com/', 'must not contain credentials'],
    ['https://user@idp.example.com/', 'must not contain credentials'],
    ['https://idp.example.com/token#frag', 'must not contain a fragment'],
    ['https://idp.example.com/token#', 'must not contain a fragment'],
    ['https://127.0.0.1/', `host 127.0.0.1 is a loopback address; ${HINT}`],
    ['https://2130706433/', `host 127.0.0.1 is a loopback address; ${HINT}`],
    ['https://0x7f000001/', `host 127.0.0.1 is a loopback address; ${HINT}`],
    ['https://0x7f.1/', `host 127.0.0.1 is a loopback address; ${HINT}`],
    ['https://0177.0.0.1/', `host 127.0.0.1 is a loopback address; ${HINT}`],
    ['https://017700000001/', `host 127.0.0.1 is a loopback address; ${HINT}`],
    ['https://127.1/', `host 127.0.0.1 is a loopback address; ${HINT}`],
    ['https://0/', `host 0.0.0.0 is the unspecified address; ${HINT}`],
    ['https://[::1]/', `host [::1] is a loopback address; ${HINT}`],
    ['https://[::ffff:127.0.0.1]/', `host [::ffff:7f00:1] is an IPv4-mapped IPv6 address; ${HINT}`],
    ['https://[64:ff9b::7f00:1]/', `host [64:ff9b::7f00:1] is a NAT64 address; ${HINT}`],
    ['https://10.0.0.5/', `host 10.0.0.5 is a private address; ${HINT}`],
    ['https://172.16.0.1/', `host 172.16.0.1 is a private address; ${HINT}`],
    ['https://192.168.1.1/', `host 192.168.1.1 is a private address; ${HINT}`],
    [
      'https://100.64.0.1/',
      `host 100.64.0.1 is a carrier-grade NAT address (100.64.0.0/10); ${HINT}`,
    ],
    [
      'https://169.254.169.254/latest/meta-data/',
      `host 169.254.169.254 is a link-local address; ${HINT}`,
    ],
    [
      'https://[fd00:ec2::254]/',
      `host [fd00:ec2::254] is a unique local IPv6 address (fc00::/7); ${HINT}`,
    ],
    ['https://[fe80::1]/', `host [fe80::1] is a link-local address; ${HINT}`],
    ['https://[fe80::1%25eth0]/', 'must be an absolute https URL'],
    [
      'https://93.184.216.34/',
      `host 93.184.216.34 is an IP address; use the provider's host name, or ${HINT}`,
    ],
    ['https://localhost/', `host localhost is a loopback name; ${HINT}`],
    ['https://LOCALHOST./', `host localhost. is a loopback name; ${HINT}`],
    ['https://api.localhost/', `host api.localhost is a loopback name; ${HINT}`],
    [
      'https://metadata.google.internal/',
      `host metadata.google.internal is a name used only inside private networks; ${HINT}`,
    ],
    [
      'https://printer.local/',
      `host printer.local is a name used only inside private networks; ${HINT}`,
    ],
    ['https://intranet/', `host intranet is not a fully qualified domain name; ${HINT}`],
  ]
  it.each(table)('%s → %s', (url, problem) => {
    expect(checkOutboundUrl(url, [])).toBe(problem)
  })

  it('lets allow-listed hosts be private and plain http, but keeps the other rules', () => {
    const allow = ['127.0.0.1', 'localhost:8080', 'idp.internal']
    expect(checkOutboundUrl('http://127.0.0.1:4000/token', allow)).toBeNull()
    expect(checkOutboundUrl('http://2130706433:4000/token', allow)).toBeNull()
    expect(checkOutboundUrl('http://localhost:8080/token', allow)).toBeNull()
    expect(checkOutboundUrl('https://idp.internal/token', allow)).toBeNull()
    expect(checkOutboundUrl('http://localhost:8081/token', allow)).toBe(
      'must be an absolute https URL (plain http only for hosts in OUTBOUND_ALLOW_HOSTS)',
    )
    expect(checkOutboundUrl('http://u:p@127.0.0.1/', allow)).toBe('must not contain credentials')
    expect(checkOutboundUrl('http://127.0.0.1/#x', allow)).toBe('must not contain a fragment')
  })
})
