/**
 * Tenants and their API keys (used by the CLI and by GraphQL authentication).
 * Rules: slugs are host labels; keys carry >= 256 random bits, are shown once, stored only as
 * SHA-256 and compared in constant time; a revoked key is refused at once by the instance that
 * revoked it and, once the database's notification arrives, by every other one (services/cache.ts).
 */
import { randomBytes } from 'node:crypto'
import { formatApiKey, parseApiKey, slugProblem, type ApiKeyRole } from '../core/api-key.ts'
import { BadUserInputError, NotFoundError } from '../core/errors.ts'
import { hashesEqual, randomToken, sha256 } from '../crypto/tokens.ts'
import { insertAuditEvent } from '../db/audit.ts'
import * as tenants from '../db/tenants.ts'
import type { Invalidation } from '../runtime/events.ts'
import { InvalidatedCache } from './cache.ts'
import type { Deps } from './deps.ts'

export interface Tenant {
  readonly id: string
  readonly slug: string
  readonly name: string
}

export interface CreatedApiKey {
  readonly id: string
  readonly keyId: string
  readonly apiKey: string
  readonly role: ApiKeyRole
}

/** Who a request is, once its API key checked out. */
export interface Principal {
  readonly tenantId: string
  readonly tenantSlug: string
  readonly tenantName: string
  readonly role: ApiKeyRole
  /** The api_keys row id: audit records name it, never the key. */
  readonly apiKeyId: string
}

export async function createTenant(
  deps: Deps,
  input: { slug: string; name?: string | undefined },
): Promise<{ tenant: Tenant; apiKey: CreatedApiKey }> {
  const slug = input.slug.trim()
  const problem = slugProblem(slug)
  if (problem) throw new BadUserInputError(`slug: ${problem} (got "${slug}")`)
  const name = input.name?.trim() || slug
  if (name.length > 200) throw new BadUserInputError('name: must be at most 200 characters')
  return deps.db.transaction().execute(async (trx) => {
    const row = await tenants.insertTenant(trx, { slug, name })
    if (!row) throw new BadUserInputError(`slug: a tenant "${slug}" already exists`)
    const tenant = { id: row.id, slug: row.slug, name: row.name }
    const apiKey = await newKey({ ...deps, db: trx }, tenant.id, 'ADMIN', 'created with the tenant')
    await auditKey(trx, deps, tenant.id, null, 'created', apiKey.keyId, {
      role: 'ADMIN',
      label: 'created with the tenant',
    })
    return { tenant, apiKey }
  })
}

export async function createApiKey(
  deps: Deps,
  input: {
    slug: string
    role: ApiKeyRole
    label?: string | undefined
    /** The api_keys row id of the key that asked (GraphQL); null from the CLI. */
    actorKeyId?: string | null
  },
): Promise<CreatedApiKey> {
  const tenant = await tenants.findTenantBySlug(deps.db, input.slug)
  if (!tenant) throw NotFoundError.of('tenant', input.slug)
  return deps.db.transaction().execute(async (trx) => {
    const key = await newKey({ ...deps, db: trx }, tenant.id, input.role, input.label ?? null)
    await auditKey(trx, deps, tenant.id, input.actorKeyId ?? null, 'created', key.keyId, {
      role: key.role,
      label: input.label ?? null,
    })
    deps.logger.info({ tenantId: tenant.id, keyId: key.keyId, role: key.role }, 'API key created')
    return key
  })
}

export async function revokeApiKey(
  deps: Deps,
  input: { slug: string; keyId: string; actorKeyId?: string | null },
): Promise<void> {
  const tenant = await tenants.findTenantBySlug(deps.db, input.slug)
  if (!tenant) throw NotFoundError.of('tenant', input.slug)
  // Accept the whole key too, so an operator can paste what leaked.
  const keyId = parseApiKey(input.keyId)?.keyId ?? input.keyId
  const rowId = await deps.db.transaction().execute(async (trx) => {
    const revoked = await tenants.revokeApiKey(trx, tenant.id, keyId, deps.now())
    if (!revoked) throw NotFoundError.of('active API key', keyId)
    await auditKey(trx, deps, tenant.id, input.actorKeyId ?? null, 'revoked', keyId, {})
    return revoked
  })
  deps.logger.info({ tenantId: tenant.id, keyId }, 'API key revoked')
  // Other instances hear of it from the database; this one need not wait for that.
  deps.invalidation.changed('api_key', rowId)
}

/** The audit record of a key's creation or revocation: its public id, never the key. */
async function auditKey(
  db: Deps['db'],
  deps: Deps,
  tenantId: string,
  actorKeyId: string | null,
  verb: 'created' | 'revoked',
  keyId: string,
  details: Record<string, unknown>,
): Promise<void> {
  await insertAuditEvent(
    db,
    {
      tenantId,
      actorKeyId,
      action: `api_key.${verb}`,
      targetType: 'api_key',
      targetId: keyId,
      details,
    },
    deps.now(),
  )
}

async function newKey(
  deps: Deps,
  tenantId: string,
  role: ApiKeyRole,
  label: string | null,
): Promise<CreatedApiKey> {
  const keyId = randomBytes(8).toString('hex')
  const secret = randomToken(32)
  const row = await tenants.insertApiKey(deps.db, {
    tenantId,
    keyId,
    secretHash: sha256(secret),
    role,
    label,
  })
  return { id: row.id, keyId, apiKey: formatApiKey(keyId, secret), role }
}

/**
 * Verified keys are cached so that polling bots cost one hash, not one query. Entries are dropped
 * when their key or tenant changes on any instance (services/cache.ts); the TTL only bounds what
 * a lost notification could cost.
 */
export const API_KEY_CACHE_MS = 60_000
const MAX_CACHE_ENTRIES = 10_000

export type ApiKeyCache = InvalidatedCache<Principal>

export function createApiKeyCache(invalidation: Invalidation): ApiKeyCache {
  return new InvalidatedCache<Principal>(invalidation, {
    topics: ['api_key', 'tenant'],
    ttlMs: API_KEY_CACHE_MS,
    maxEntries: MAX_CACHE_ENTRIES,
    affects: (principal, id) => principal.apiKeyId === id || principal.tenantId === id,
  })
}

/**
 * Tenants by id, for the end user's pages and the callback (name and slug): read on every link
 * page, callback and result page, changed almost never. Dropped when the row changes on any
 * instance, like the keys above.
 */
export type TenantCache = InvalidatedCache<Tenant>

export function createTenantCache(invalidation: Invalidation): TenantCache {
  return new InvalidatedCache<Tenant>(invalidation, {
    topics: ['tenant'],
    ttlMs: API_KEY_CACHE_MS,
    maxEntries: MAX_CACHE_ENTRIES,
    affects: (tenant, id) => tenant.id === id,
  })
}

/** The tenant with this id, or undefined when there is none. */
export async function tenantById(deps: Deps, id: string): Promise<Tenant | undefined> {
  const cache = deps.caches.tenants
  const hit = cache.get(id, Date.now())
  if (hit) return hit
  const generation = cache.generation()
  const row = await tenants.findTenantById(deps.db, id)
  if (!row) return undefined
  const tenant = { id: row.id, slug: row.slug, name: row.name }
  cache.set(id, tenant, Date.now(), generation)
  return tenant
}

/** Returns who the key belongs to, or null for a malformed, unknown or revoked key. */
export async function authenticateApiKey(deps: Deps, raw: string): Promise<Principal | null> {
  const parsed = parseApiKey(raw)
  if (!parsed) return null
  const hash = sha256(parsed.secret)
  const cacheKey = hash.toString('base64')
  const cache = deps.caches.apiKeys
  const cached = cache.get(cacheKey, Date.now())
  if (cached) return cached
  const generation = cache.generation()
  const row = await tenants.findApiKeyByKeyId(deps.db, parsed.keyId)
  const principal =
    row && row.revokedAt === null && hashesEqual(row.secretHash, hash)
      ? {
          tenantId: row.tenantId,
          tenantSlug: row.tenantSlug,
          tenantName: row.tenantName,
          role: row.role,
          apiKeyId: row.id,
        }
      : null
  // Only good keys are cached: caching misses would let random keys fill the map.
  if (principal) cache.set(cacheKey, principal, Date.now(), generation)
  return principal
}

/**
 * The principal of a key this instance has verified and still trusts (its cache of verified
 * keys), with no database read; undefined otherwise. For an address over its limit, which gets
 * no lookups.
 */
export function cachedPrincipal(deps: Deps, raw: string): Principal | undefined {
  const parsed = parseApiKey(raw)
  if (!parsed) return undefined
  return deps.caches.apiKeys.get(sha256(parsed.secret).toString('base64'), Date.now())
}
