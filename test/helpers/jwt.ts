/**
 * Signing keys and JWTs for the tests' hostile providers, with node:crypto only: RS256 and
 * ES256 keys with their public JWKs (what a JWKS endpoint serves) and private JWKs (what
 * oidc-provider takes), HS256 with a shared secret, and `alg: none`. The code under test never
 * uses this: it verifies through oauth4webapi.
 */
import { createHmac, generateKeyPairSync, sign, type JsonWebKey, type KeyObject } from 'node:crypto'

export interface SigningKey {
  readonly kid: string
  readonly alg: 'RS256' | 'ES256'
  readonly privateKey: KeyObject
  /** For a JWKS endpoint: kty, n/e or crv/x/y, kid, alg, use. */
  readonly publicJwk: JsonWebKey
  /** For oidc-provider's `jwks` setting. */
  readonly privateJwk: JsonWebKey
}

export function generateSigningKey(
  kid: string,
  alg: SigningKey['alg'] = 'RS256',
  options: { modulusLength?: number } = {},
): SigningKey {
  const { privateKey, publicKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: options.modulusLength ?? 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const meta = { kid, alg, use: 'sig' }
  return {
    kid,
    alg,
    privateKey,
    publicJwk: { ...publicKey.export({ format: 'jwk' }), ...meta },
    privateJwk: { ...privateKey.export({ format: 'jwk' }), ...meta },
  }
}

export type Signer =
  | { readonly key: SigningKey }
  | { readonly hmacSecret: string; readonly alg?: 'HS256' | 'HS384' | 'HS512' }
  | { readonly none: true }

const b64u = (value: string | Buffer) => Buffer.from(value).toString('base64url')

/** A compact JWS; `header` is merged over what the signer implies (alg, kid, typ). */
export function signJwt(
  payload: Record<string, unknown>,
  signer: Signer,
  header: Record<string, unknown> = {},
): string {
  const alg = 'key' in signer ? signer.key.alg : 'none' in signer ? 'none' : (signer.alg ?? 'HS256')
  const fullHeader = {
    alg,
    typ: 'JWT',
    ...('key' in signer && { kid: signer.key.kid }),
    ...header,
  }
  const input = `${b64u(JSON.stringify(fullHeader))}.${b64u(JSON.stringify(payload))}`
  let signature = ''
  if ('key' in signer) {
    signature = b64u(
      sign('sha256', Buffer.from(input), {
        key: signer.key.privateKey,
        ...(signer.key.alg === 'ES256' && { dsaEncoding: 'ieee-p1363' as const }),
      }),
    )
  } else if ('hmacSecret' in signer) {
    const hash = `sha${(signer.alg ?? 'HS256').slice(2)}`
    signature = createHmac(hash, signer.hmacSecret).update(input).digest('base64url')
  }
  return `${input}.${signature}`
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000)
