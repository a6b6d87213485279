import type { Db } from './database.ts'
import type { Role, TenantRow } from './schema.ts'

export async function insertTenant(
  db: Db,
  tenant: { slug: string; name: string },
): Promise<TenantRow | undefined> {
  // `on conflict do nothing` turns a duplicate slug into "no row" instead of an aborted transaction.
  return db
    .insertInto('tenants')
    .values(tenant)
    .onConflict((oc) => oc.column('slug').doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function findTenantBySlug(db: Db, slug: string): Promise<TenantRow | undefined> {
  return db.selectFrom('tenants').selectAll().where('slug', '=', slug).executeTakeFirst()
}

export async function findTenantById(db: Db, id: string): Promise<TenantRow | undefined> {
  return db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst()
}

export interface ApiKeyWithTenant {
  readonly id: string
  readonly tenantId: string
  readonly secretHash: Uint8Array
  readonly role: Role
  readonly revokedAt: Date | null
  readonly tenantSlug: string
  readonly tenantName: string
}

/** One round trip: the key row and its tenant, by the key's public id (unique index). */
export async function findApiKeyByKeyId(
  db: Db,
  keyId: string,
): Promise<ApiKeyWithTenant | undefined> {
  const row = await db
    .selectFrom('api_keys')
    .innerJoin('tenants', 'tenants.id', 'api_keys.tenant_id')
    .select([
      'api_keys.id',
      'api_keys.tenant_id',
      'api_keys.secret_hash',
      'api_keys.role',
      'api_keys.revoked_at',
      'tenants.slug',
      'tenants.name',
    ])
    .where('api_keys.key_id', '=', keyId)
    .executeTakeFirst()
  return (
    row && {
      id: row.id,
      tenantId: row.tenant_id,
      secretHash: row.secret_hash,
      role: row.role,
      revokedAt: row.revoked_at,
      tenantSlug: row.slug,
      tenantName: row.name,
    }
  )
}

export async function insertApiKey(
  db: Db,
  key: {
    tenantId: string
    keyId: string
    secretHash: Uint8Array
    role: Role
    label: string | null
  },
): Promise<{ id: string; createdAt: Date }> {
  const row = await db
    .insertInto('api_keys')
    .values({
      tenant_id: key.tenantId,
      key_id: key.keyId,
      secret_hash: key.secretHash,
      role: key.role,
      label: key.label,
    })
    .returning(['id', 'created_at'])
    .executeTakeFirstOrThrow()
  return { id: row.id, createdAt: row.created_at }
}

export async function revokeApiKey(
  db: Db,
  tenantId: string,
  keyId: string,
  now: Date,
): Promise<string | undefined> {
  const row = await db
    .updateTable('api_keys')
    .set({ revoked_at: now })
    .where('tenant_id', '=', tenantId)
    .where('key_id', '=', keyId)
    .where('revoked_at', 'is', null)
    .returning('id')
    .executeTakeFirst()
  return row?.id
}
