/**
 * The rate limits of a GraphQL request, checked before its body is read or parsed, on both paths:
 * src/http/graphql-direct.ts calls `graphqlRequestLimit` itself, and yoga's plugin below does for
 * every request it gets otherwise (a request the direct path handed over was counted already).
 *
 * With a valid key: RATE_LIMIT_KEY_PER_MINUTE for the key, then RATE_LIMIT_TENANT_PER_MINUTE for
 * its tenant. Without one (no key, or one that is malformed, unknown or revoked):
 * RATE_LIMIT_ANONYMOUS_PER_MINUTE per client address. While an address is over that limit, a key
 * it sends is looked up only if it is in the cache of verified keys, so guessed keys cost no
 * database reads.
 */
import { clientAddress } from '../core/client-address.ts'
import { RateLimitedError } from '../core/errors.ts'
import { addressBucket } from '../core/rate-limit.ts'
import { named, type NamedPlugin } from '../http/named-plugin.ts'
import { peerAddress } from '../http/request-info.ts'
import { textResponse } from '../http/response.ts'
import type { Deps } from '../services/deps.ts'
import { NO_RATE_LIMITS } from '../services/rate-limits.ts'
import { authenticateApiKey, cachedPrincipal } from '../services/tenants.ts'

/** Marks a request the direct path counted before handing it to yoga. */
export const COUNTED = Symbol('graphql request counted')

function limited(limit: number, what: string, retryAfter: number): RateLimitedError {
  return new RateLimitedError(
    `Rate limit of ${limit} GraphQL requests a minute ${what} exceeded; retry in ${retryAfter} s`,
    retryAfter,
  )
}

export async function graphqlRequestLimit(
  deps: Deps,
  authorization: string | null | undefined,
  address: string | null,
): Promise<RateLimitedError | null> {
  const limits = deps.rateLimits
  if (limits === NO_RATE_LIMITS) return null
  const config = deps.config.rateLimits
  const raw = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1]
  const bucket = addressBucket(address)
  const addressBlocked = limits.blocked('anonymous', bucket)
  const principal =
    raw === undefined
      ? null
      : addressBlocked === null
        ? await authenticateApiKey(deps, raw)
        : (cachedPrincipal(deps, raw) ?? null)
  if (principal === null) {
    const wait = addressBlocked ?? (await limits.take('anonymous', bucket))
    return wait === null
      ? null
      : limited(config.anonymousPerAddress, 'without a valid API key from this address', wait)
  }
  const key = await limits.take('key', principal.apiKeyId)
  if (key !== null) return limited(config.perKey, 'for this API key', key)
  const tenant = await limits.take('tenant', principal.tenantId)
  if (tenant !== null) return limited(config.perTenant, 'for this tenant', tenant)
  return null
}

/** The answer to a request over a limit: 429, Retry-After, and the error as GraphQL puts it. */
export function rateLimitedResponse(error: RateLimitedError): {
  status: 429
  headers: Record<string, string>
  body: string
} {
  return {
    status: 429,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'retry-after': String(error.retryAfter),
    },
    body: JSON.stringify({
      errors: [
        { message: error.message, extensions: { code: error.code, retryAfter: error.retryAfter } },
      ],
    }),
  }
}

/** yoga's side: every request to the GraphQL endpoint not counted by the direct path. */
export function useGraphQLRateLimits(deps: Deps, endpoint: string): NamedPlugin {
  return named('rate-limits', {
    async onRequest({ request, url, serverContext, endResponse }) {
      if (url.pathname !== endpoint) return
      if ((serverContext as Record<symbol, unknown> | undefined)?.[COUNTED]) return
      const address = clientAddress(
        peerAddress(serverContext),
        request.headers.get('x-forwarded-for'),
        deps.config.trustProxy,
      )
      const error = await graphqlRequestLimit(deps, request.headers.get('authorization'), address)
      if (error === null) return
      const answer = rateLimitedResponse(error)
      endResponse(textResponse(answer.status, answer.headers, answer.body))
    },
  })
}
