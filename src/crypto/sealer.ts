/**
 * Sealing of secrets at rest (client secrets, PKCE verifiers): AES-256-GCM with a random 96-bit
 * IV under a key derived by HKDF from ENCRYPTION_KEY. The associated data binds a ciphertext to
 * its tenant, table, row and column, so a value copied onto another row does not open. Each value
 * names the key that sealed it, so ENCRYPTION_KEY can rotate: new values use the current key and
 * ENCRYPTION_KEY_PREVIOUS still opens the old ones.
 *
 * Format: `v1.<keyId>.<iv>.<tag>.<ciphertext>` (base64url parts).
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
} from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { randomBytesPooled } from './tokens.ts'

export interface SealContext {
  readonly tenantId: string
  readonly table: string
  readonly rowId: string
  readonly column: string
}

export interface Sealer {
  readonly currentKeyId: string
  seal(plaintext: string, context: SealContext): string
  /** Throws SealError when the value is malformed, sealed under an unknown key, or tampered with. */
  open(sealed: string, context: SealContext): string
  /** True when the value was sealed under an older key and should be sealed again. */
  isStale(sealed: string): boolean
  /**
   * A keyed hash (HMAC-SHA256 under a key derived from the current key) of a short secret bound
   * to its place: what is stored of a value that must only be compared later, such as a
   * confirmation code whose few digits a plain hash would not hide.
   */
  digest(value: string, context: SealContext): Buffer
}

export class SealError extends Error {
  override readonly name = 'SealError'
}

interface Key {
  readonly id: string
  readonly bytes: Buffer
}

function deriveKey(secret: string): Key {
  const bytes = Buffer.from(
    hkdfSync('sha256', Buffer.from(secret, 'utf8'), 'end-user-oauth', 'seal v1', 32),
  )
  // The id is a short hash of the derived key: it identifies the key without revealing it.
  const id = createHash('sha256').update(bytes).digest('hex').slice(0, 12)
  return { id, bytes }
}

function aad(context: SealContext): Buffer {
  return Buffer.from(
    JSON.stringify([context.tenantId, context.table, context.rowId, context.column]),
    'utf8',
  )
}

export function createSealer(current: string, previous: readonly string[] = []): Sealer {
  const currentKey = deriveKey(current)
  const digestKey = Buffer.from(
    hkdfSync('sha256', Buffer.from(current, 'utf8'), 'end-user-oauth', 'digest v1', 32),
  )
  const keys = new Map<string, Key>([currentKey, ...previous.map(deriveKey)].map((k) => [k.id, k]))
  return {
    currentKeyId: currentKey.id,
    seal(plaintext, context) {
      const iv = randomBytesPooled(12)
      const cipher = createCipheriv('aes-256-gcm', currentKey.bytes, iv)
      cipher.setAAD(aad(context))
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
      const tag = cipher.getAuthTag()
      return ['v1', currentKey.id, iv, tag, ciphertext]
        .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
        .join('.')
    },
    open(sealed, context) {
      const parts = sealed.split('.')
      if (parts.length !== 5 || parts[0] !== 'v1') throw new SealError('sealed value is malformed')
      const [, keyId, iv, tag, ciphertext] = parts as [string, string, string, string, string]
      const key = keys.get(keyId)
      if (!key) throw new SealError(`sealed under an unknown key (${keyId})`)
      try {
        const decipher = createDecipheriv('aes-256-gcm', key.bytes, Buffer.from(iv, 'base64url'))
        decipher.setAAD(aad(context))
        decipher.setAuthTag(Buffer.from(tag, 'base64url'))
        return Buffer.concat([
          decipher.update(Buffer.from(ciphertext, 'base64url')),
          decipher.final(),
        ]).toString('utf8')
      } catch {
        throw new SealError('sealed value does not open here (wrong key, row or tampered)')
      }
    },
    isStale(sealed) {
      return sealed.split('.')[1] !== currentKey.id
    },
    digest(value, context) {
      return createHmac('sha256', digestKey)
        .update(aad(context))
        .update('\u0000')
        .update(value)
        .digest()
    },
  }
}

/**
 * Outside production, with no ENCRYPTION_KEY, a key is generated once into DATA_DIR so that
 * restarts can still open what was sealed. Returns the key and whether it was just created.
 */
export function loadOrCreateDevKey(dataDir: string): { key: string; created: boolean } {
  const file = path.join(dataDir, 'encryption.key')
  if (existsSync(file)) return { key: readFileSync(file, 'utf8').trim(), created: false }
  mkdirSync(dataDir, { recursive: true })
  const key = randomBytes(32).toString('base64')
  writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' })
  chmodSync(file, 0o600)
  return { key, created: true }
}
