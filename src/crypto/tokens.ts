import { hash, randomFillSync, timingSafeEqual } from 'node:crypto'

/**
 * Random bytes are drawn from the operating system's CSPRNG a few KiB at a time and handed out
 * once each, as Node's own randomUUID does: every randomBytes call sets up a job whose fixed cost
 * was most of the CPU of the half-dozen small values a sign-in draws (state, link token, binding
 * cookie, seal IVs). A refill takes a new buffer, so bytes already handed out as views are never
 * overwritten, and no byte is handed out twice.
 */
const POOL_BYTES = 4096
let pool = Buffer.alloc(0)
let offset = 0

/** `bytes` fresh random bytes (at most POOL_BYTES), as a view that is the caller's alone. */
export function randomBytesPooled(bytes: number): Buffer {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > POOL_BYTES) {
    throw new RangeError(`randomBytesPooled: 1 to ${POOL_BYTES} bytes, not ${bytes}`)
  }
  if (offset + bytes > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafeSlow(POOL_BYTES))
    offset = 0
  }
  const out = pool.subarray(offset, offset + bytes)
  offset += bytes
  return out
}

/** A random token of `bytes` bytes (default 32 = 256 bits), base64url: link tokens, state, cookies. */
export function randomToken(bytes = 32): string {
  return randomBytesPooled(bytes).toString('base64url')
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
