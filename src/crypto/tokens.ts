import { hash, randomBytes, timingSafeEqual } from 'node:crypto'

/** A random token of `bytes` bytes (default 32 = 256 bits), base64url: link tokens, state, cookies. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url')
}

/** What we store instead of a bearer value: its SHA-256. */
export function sha256(value: string): Buffer {
  // One-shot: a third of createHash().update().digest()'s cost on every authenticated request.
  return hash('sha256', value, 'buffer')
}

/** Constant-time comparison of two hashes (different lengths compare unequal). */
export function hashesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}
