/**
 * Which hosts and addresses the service may call on a tenant's behalf (SSRF rules: a
 * tenant's URL must not reach loopback, private or other internal addresses, not even by DNS
 * rebinding). Pure: used both when an admin saves an integration (`checkOutboundUrl`) and by the
 * outbound client's connector at connect time (`addressKind`, `isAllowListed`).
 *
 * - Only public unicast addresses are reachable: IPv4 outside every special-purpose block of the
 *   IANA registry, IPv6 inside 2000::/3 and outside its special-purpose blocks.
 * - Translation and tunnelling prefixes (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) are
 *   refused outright: they reach an IPv4 host that no public provider publishes that way.
 * - `OUTBOUND_ALLOW_HOSTS` is the only exception, and the only way to use plain `http`.
 *
 * Addresses are accepted only in canonical form (dotted decimal, or RFC 4291 text for IPv6).
 * Other spellings (2130706433, 0x7f.1, 0177.0.0.1, 127.1) are refused by the classifier; in URLs
 * the WHATWG parser has already rewritten them to dotted decimal before any check runs.
 */

export type AddressKind =
  | 'public'
  | 'unspecified'
  | 'this-network'
  | 'loopback'
  | 'private'
  | 'carrier-grade-nat'
  | 'link-local'
  | 'unique-local'
  | 'site-local'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'documentation'
  | 'benchmarking'
  | 'ipv4-mapped'
  | 'ipv4-compatible'
  | 'nat64'
  | '6to4'
  | 'teredo'
  | 'invalid'

/** Words used in messages, e.g. "host 10.0.0.5 is a private address". */
const KIND_WORDS: { readonly [K in AddressKind]: string } = {
  public: 'a public address',
  unspecified: 'the unspecified address',
  'this-network': 'a "this network" address (0.0.0.0/8)',
  loopback: 'a loopback address',
  private: 'a private address',
  'carrier-grade-nat': 'a carrier-grade NAT address (100.64.0.0/10)',
  'link-local': 'a link-local address',
  'unique-local': 'a unique local IPv6 address (fc00::/7)',
  'site-local': 'a site-local IPv6 address',
  multicast: 'a multicast address',
  broadcast: 'the broadcast address',
  reserved: 'a reserved address',
  documentation: 'a documentation address',
  benchmarking: 'a benchmarking address',
  'ipv4-mapped': 'an IPv4-mapped IPv6 address',
  'ipv4-compatible': 'an IPv4-compatible IPv6 address',
  nat64: 'a NAT64 address',
  '6to4': 'a 6to4 address',
  teredo: 'a Teredo address',
  invalid: 'not a valid IP address',
}

export function describeAddressKind(kind: AddressKind): string {
  return KIND_WORDS[kind]
}

type Block<T> = readonly [base: T, prefix: number, kind: AddressKind]

// Order matters: the first matching block names the kind.
const IPV4_BLOCKS: readonly Block<string>[] = [
  ['0.0.0.0', 32, 'unspecified'],
  ['0.0.0.0', 8, 'this-network'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'carrier-grade-nat'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'], // includes the metadata service 169.254.169.254
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'], // IETF protocol assignments
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, 'reserved'], // former 6to4 relay anycast
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['255.255.255.255', 32, 'broadcast'],
  ['240.0.0.0', 4, 'reserved'],
]

const IPV6_BLOCKS: readonly Block<string>[] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['::ffff:0:0', 96, 'ipv4-mapped'],
  ['::', 96, 'ipv4-compatible'],
  ['64:ff9b::', 96, 'nat64'],
  ['64:ff9b:1::', 48, 'nat64'],
  ['100::', 64, 'reserved'], // discard-only
  ['2001::', 32, 'teredo'],
  ['2001:2::', 48, 'benchmarking'],
  ['2001::', 23, 'reserved'], // IETF protocol assignments
  ['2001:db8::', 32, 'documentation'],
  ['2002::', 16, '6to4'],
  ['3fff::', 20, 'documentation'],
  ['5f00::', 16, 'reserved'], // SRv6 SIDs
  ['fc00::', 7, 'unique-local'],
  ['fe80::', 10, 'link-local'], // includes fe80::a9fe:a9fe style metadata aliases
  ['fec0::', 10, 'site-local'],
  ['ff00::', 8, 'multicast'],
]

const V4 = IPV4_BLOCKS.map(([base, prefix, kind]) => [parseIPv4(base)!, prefix, kind] as const)
const V6 = IPV6_BLOCKS.map(([base, prefix, kind]) => [parseIPv6(base)!, prefix, kind] as const)
const GLOBAL_UNICAST_V6 = parseIPv6('2000::')!

/**
 * Classifies one address in canonical text form (brackets around IPv6 are accepted). Anything
 * that does not parse, or carries an IPv6 zone id, is `invalid`.
 */
export function addressKind(ip: string): AddressKind {
  const v4 = parseIPv4(ip)
  if (v4 !== null) {
    for (const [base, prefix, kind] of V4) {
      // `>>> 32` is `>>> 0` in JavaScript, so a /32 compares the whole address, as it should.
      if (v4 >>> (32 - prefix) === base >>> (32 - prefix)) return kind
    }
    return 'public'
  }
  const v6 = parseIPv6(ip)
  if (v6 !== null) {
    for (const [base, prefix, kind] of V6) {
      if (v6 >> BigInt(128 - prefix) === base >> BigInt(128 - prefix)) return kind
    }
    // Only 2000::/3 is allocated as global unicast; everything else is reserved by IANA.
    return v6 >> 125n === GLOBAL_UNICAST_V6 >> 125n ? 'public' : 'reserved'
  }
  return 'invalid'
}

/** True only for an address that a public provider may have: see the module comment. */
export function isPublicUnicast(ip: string): boolean {
  return addressKind(ip) === 'public'
}

/** Strict dotted-decimal IPv4 (no leading zeros, no short forms) as an unsigned 32-bit number. */
export function parseIPv4(text: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text)
  if (m === null) return null
  let value = 0
  for (let i = 1; i <= 4; i++) {
    const part = m[i]!
    if (part.length > 1 && part.startsWith('0')) return null
    const n = Number(part)
    if (n > 255) return null
    value = value * 256 + n
  }
  return value
}

/** RFC 4291 §2.2 text (optionally in brackets, no zone id) as a 128-bit integer. */
export function parseIPv6(text: string): bigint | null {
  let s = text
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1)
  if (s === '' || !/^[0-9a-fA-F:.]+$/.test(s)) return null
  const halves = s.split('::')
  if (halves.length > 2) return null
  const head = halves[0] === '' ? [] : halves[0]!.split(':')
  const tail = halves.length === 2 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : []
  const groups: number[] = []
  const all = [...head, ...tail]
  for (let i = 0; i < all.length; i++) {
    const part = all[i]!
    // An embedded IPv4 address may only end the text: `::ffff:1.2.3.4`, never `1.2.3.4::`.
    const last = i === all.length - 1 && (halves.length === 1 || tail.length > 0)
    if (last && part.includes('.')) {
      const v4 = parseIPv4(part)
      if (v4 === null) return null
      groups.push(v4 >>> 16, v4 & 0xffff)
    } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
      groups.push(parseInt(part, 16))
    } else {
      return null
    }
  }
  const headCount = groups.length - (tail.length === 0 ? 0 : countGroups(tail))
  if (halves.length === 2) {
    if (groups.length > 7) return null
    groups.splice(headCount, 0, ...new Array<number>(8 - groups.length).fill(0))
  } else if (groups.length !== 8) {
    return null
  }
  let value = 0n
  for (const g of groups) value = (value << 16n) | BigInt(g)
  return value
}

function countGroups(parts: readonly string[]): number {
  return parts.reduce((n, p) => n + (p.includes('.') ? 2 : 1), 0)
}

/** An `OUTBOUND_ALLOW_HOSTS` entry after normalisation; `port` null matches every port. */
export interface AllowedHost {
  readonly host: string
  readonly port: string | null
}

/**
 * Normalises allow-list entries: `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
 * The host goes through the WHATWG URL parser, so `LOCALHOST`, `0x7f.1` and `127.0.0.1` are one
 * entry, and a trailing dot is ignored. An entry without a port allows every port of that host;
 * with a port, only that port. Entries that do not parse are dropped (config rejects them first).
 */
export function normaliseAllowHosts(entries: readonly string[]): readonly AllowedHost[] {
  const out: AllowedHost[] = []
  for (const raw of entries) {
    const entry = raw.trim()
    let host: string
    let port: string | null = null
    const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(entry)
    const named = /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(entry)
    if (bracketed) {
      host = `[${bracketed[1]}]`
      port = bracketed[2] ?? null
    } else if (named) {
      host = named[1]!
      port = named[2] ?? null
    } else if (parseIPv6(entry) !== null) {
      host = `[${entry}]`
    } else {
      continue
    }
    const normal = normaliseHostname(host)
    if (normal !== null)
      out.push({ host: normal, port: port === null ? null : String(Number(port)) })
  }
  return out
}

function normaliseHostname(host: string): string | null {
  try {
    return stripTrailingDot(new URL(`http://${host}/`).hostname)
  } catch {
    return null
  }
}

function stripTrailingDot(hostname: string): string {
  return hostname.endsWith('.') ? hostname.slice(0, -1) : hostname
}

/** The port a URL really uses, defaults included. */
export function effectivePort(url: URL): string {
  if (url.port !== '') return url.port
  return url.protocol === 'http:' ? '80' : url.protocol === 'https:' ? '443' : ''
}

/** Whether the URL's host (and port, when the entry names one) is in the allow list. */
export function isAllowListed(url: URL, allowHosts: readonly AllowedHost[]): boolean {
  return isAllowListedHost(url.hostname, effectivePort(url), allowHosts)
}

/** Same, for a host already normalised by the URL parser (IPv6 in brackets) and its port. */
export function isAllowListedHost(
  hostname: string,
  port: string,
  allowHosts: readonly AllowedHost[],
): boolean {
  const host = stripTrailingDot(hostname)
  return allowHosts.some((a) => a.host === host && (a.port === null || a.port === port))
}

/** Names that only ever mean something inside a network (RFC 6761, RFC 6762, RFC 8375, ICANN). */
function localNameProblem(hostname: string): string | null {
  const name = stripTrailingDot(hostname)
  if (name === 'localhost' || name.endsWith('.localhost')) return 'a loopback name'
  if (/\.(local|internal|home\.arpa|localdomain)$/.test(name)) {
    return 'a name used only inside private networks'
  }
  if (!name.includes('.')) return 'not a fully qualified domain name'
  return null
}

/**
 * Checks an admin-configured URL (authorization, token or WhoAmI URL) before it is saved. Returns
 * a problem phrased to follow the field name ("must be an absolute https URL") or null.
 *
 * Host names are not resolved here (this module does no I/O): the outbound client resolves and
 * checks every address again at connect time. What this catches is everything visible in the
 * URL itself: scheme, credentials, fragment, IP literals in any spelling, and local-only names.
 * Authorization, token and WhoAmI URLs follow the same rules here (the rule on query parameters
 * an authorization URL must not carry lives with the other integration rules, in
 * core/integration-rules.ts). `allowVariable` is the variable the messages tell the admin to
 * extend (webhook URLs name WEBHOOK_ALLOW_HOSTS).
 */
export function checkOutboundUrl(
  raw: string,
  allowHosts: readonly string[],
  allowVariable = 'OUTBOUND_ALLOW_HOSTS',
): string | null {
  const ALLOW_HINT = `add it to ${allowVariable} to allow it`
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return 'must be an absolute https URL'
  }
  const allowed = isAllowListed(url, normaliseAllowHosts(allowHosts))
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && allowed)) {
    return url.protocol === 'http:'
      ? `must be an absolute https URL (plain http only for hosts in ${allowVariable})`
      : 'must be an absolute https URL'
  }
  if (url.username !== '' || url.password !== '') return 'must not contain credentials'
  // `new URL('https://a/#').hash` is empty, so look at the raw text: any '#' starts a fragment.
  if (raw.includes('#')) return 'must not contain a fragment'
  if (allowed) return null
  const host = url.hostname
  const literal = host.startsWith('[') || parseIPv4(host) !== null
  if (literal) {
    const kind = addressKind(host)
    if (kind !== 'public') return `host ${host} is ${describeAddressKind(kind)}; ${ALLOW_HINT}`
    return `host ${host} is an IP address; use the provider's host name, or ${ALLOW_HINT}`
  }
  const local = localNameProblem(host)
  if (local !== null) return `host ${host} is ${local}; ${ALLOW_HINT}`
  return null
}
