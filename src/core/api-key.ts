/**
 * API key format: `euo_<keyId>_<secret>`. The prefix makes leaked keys recognisable (secret
 * scanners, logs); `keyId` (16 hex characters) finds the row; `secret` (32 random bytes,
 * base64url = 256 bits) is only ever stored as its SHA-256 and compared in constant time.
 */
export const API_KEY_PREFIX = 'euo_'

const API_KEY = /^euo_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/

export function formatApiKey(keyId: string, secret: string): string {
  return `${API_KEY_PREFIX}${keyId}_${secret}`
}

export function parseApiKey(raw: string): { keyId: string; secret: string } | null {
  const match = API_KEY.exec(raw)
  return match ? { keyId: match[1] as string, secret: match[2] as string } : null
}

/** A tenant slug is used as a DNS label in PUBLIC_BASE_URL: lower-case letters, digits, hyphens. */
export function slugProblem(slug: string): string | null {
  if (slug.length === 0) return 'must not be empty'
  if (slug.length > 63) return 'must be at most 63 characters (it is used as a host label)'
  if (!/^[a-z0-9-]+$/.test(slug)) return 'may contain only lower-case letters, digits and hyphens'
  if (slug.startsWith('-') || slug.endsWith('-')) return 'must not start or end with a hyphen'
  return null
}

export const ROLES = ['ADMIN', 'AGENT'] as const
export type ApiKeyRole = (typeof ROLES)[number]

export function isRole(value: string): value is ApiKeyRole {
  return (ROLES as readonly string[]).includes(value)
}
