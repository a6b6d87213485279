/**
 * Who sent a request, for rate limits and audit records: the peer of the connection, or, when
 * that peer is one of our load balancers (TRUST_PROXY), the address it forwarded.
 *
 * TRUST_PROXY lists addresses and CIDR ranges rather than a hop count: a count trusts whatever
 * happens to stand in front of the service, a list only the proxies named. `X-Forwarded-For` is
 * read from the right (each proxy appends the address it saw): trusted proxies are skipped, and
 * the first address that is not one is the client. Anything to its left was written by the
 * client itself and is ignored, so a client cannot pick its own rate-limit bucket.
 */
import { parseIPv4, parseIPv6 } from './ip-address.ts'

interface Range {
  readonly v6: boolean
  readonly base: bigint
  readonly bits: number
}

export interface TrustedProxies {
  readonly ranges: readonly Range[]
}

export const NO_TRUSTED_PROXIES: TrustedProxies = { ranges: [] }

/** An address as a 128-bit number; IPv4 (also IPv4-mapped IPv6) in the v4 space. */
function numeric(text: string): { v6: boolean; value: bigint } | null {
  const v4 = parseIPv4(text)
  if (v4 !== null) return { v6: false, value: BigInt(v4) }
  const v6 = parseIPv6(text)
  if (v6 === null) return null
  if (v6 >> 32n === 0xffffn) return { v6: false, value: v6 & 0xffffffffn }
  return { v6: true, value: v6 }
}

/** Parses TRUST_PROXY entries; the error names the entry that is neither an address nor a range. */
export function parseTrustedProxies(
  entries: readonly string[],
): TrustedProxies | { error: string } {
  const ranges: Range[] = []
  for (const entry of entries) {
    const [address = '', prefix, extra] = entry.split('/')
    const parsed = numeric(address)
    const width = parsed?.v6 ? 128 : 32
    const bits = prefix === undefined ? width : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN
    if (parsed === null || extra !== undefined || !(bits >= 0 && bits <= width)) {
      return { error: `"${entry}" is not an IP address or CIDR range (e.g. 10.0.0.0/8, fd00::/8)` }
    }
    const shift = BigInt(width - bits)
    ranges.push({ v6: parsed.v6, base: (parsed.value >> shift) << shift, bits })
  }
  return { ranges }
}

export function isTrusted(address: string, trusted: TrustedProxies): boolean {
  const parsed = numeric(address)
  if (parsed === null) return false
  return trusted.ranges.some((range) => {
    if (range.v6 !== parsed.v6) return false
    const shift = BigInt((range.v6 ? 128 : 32) - range.bits)
    return (parsed.value >> shift) << shift === range.base
  })
}

/** `::ffff:10.0.0.1` (how node reports IPv4 peers on a dual-stack socket) as `10.0.0.1`. */
function canonical(address: string): string {
  const mapped = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i.exec(address)
  return mapped ? (mapped[1] as string) : address.toLowerCase()
}

/**
 * The client's address: `peer` itself unless it is a trusted proxy, else the rightmost untrusted
 * entry of `forwardedFor` (all `X-Forwarded-For` headers, in order). Null when there is no peer
 * (a request that did not come over a socket).
 */
export function clientAddress(
  peer: string | null | undefined,
  forwardedFor: string | null | undefined,
  trusted: TrustedProxies,
): string | null {
  if (!peer) return null
  let client = canonical(peer)
  if (!forwardedFor || !isTrusted(client, trusted)) return client
  const hops = forwardedFor.split(',')
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = canonical((hops[i] as string).trim().replace(/^\[(.*)\]$/, '$1'))
    // Something that is not an address cannot be believed, nor anything to its left.
    if (numeric(hop) === null) return client
    client = hop
    if (!isTrusted(hop, trusted)) return client
  }
  return client
}

const HOST =
  /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::\d{1,5})?$|^\[[0-9a-f:.]+\](?::\d{1,5})?$/

/**
 * The host the browser addressed: the request's own, unless its peer is a trusted proxy that
 * sent `X-Forwarded-Host` (the nearest proxy's value, the last one). A forwarded value that is
 * not a host name or address, with an optional port, is not believed.
 */
export function requestHost(
  own: string,
  peer: string | null | undefined,
  forwardedHost: string | null | undefined,
  trusted: TrustedProxies,
): string {
  const host = own.toLowerCase()
  if (!peer || !forwardedHost || !isTrusted(canonical(peer), trusted)) return host
  const forwarded = (forwardedHost.split(',').at(-1) ?? '').trim().toLowerCase()
  return HOST.test(forwarded) ? forwarded : host
}
