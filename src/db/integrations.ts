/**
 * oauth_integrations queries. Every query takes the tenant id and filters by it, so no tenant can
 * read or change another tenant's integrations; every query but
 * `findIntegrationRow(..., { includeDeleted: true })` ignores deleted rows.
 * `db` may be the root handle or a transaction: callers decide.
 */
import { sql } from 'kysely'
import {
  INTEGRATION_FIELD_NAMES,
  INTEGRATION_FIELDS,
  type IntegrationSettings,
  type OAuthIntegration,
  type ProviderMetadata,
} from '../core/integration.ts'
import type { Db } from './database.ts'
import { prepared } from './prepared.ts'
import type { IntegrationRow, IntegrationUpdate, NewIntegrationRow } from './schema.ts'

/** The unique index on (tenant_id, lower(name)) of live rows, named for error mapping. */
export const NAME_INDEX = 'oauth_integrations_tenant_name_idx'

/** An integration as the code sees it; the settings' columns come from INTEGRATION_FIELDS. */
export function rowToIntegration(row: IntegrationRow): OAuthIntegration {
  const settings: Record<string, unknown> = {}
  for (const field of INTEGRATION_FIELD_NAMES) {
    settings[field] = row[INTEGRATION_FIELDS[field].column as keyof IntegrationRow]
  }
  return {
    ...(settings as IntegrationSettings),
    id: row.id,
    tenantId: row.tenant_id,
    callbackKey: row.callback_key,
    providerMetadata: (row.provider_metadata as ProviderMetadata | null) ?? null,
    metadataFetchedAt: row.metadata_fetched_at,
    hasClientSecret: row.client_secret_sealed !== null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }
}

/** The columns of a row that hold its settings. */
export type SettingsColumns = Omit<
  NewIntegrationRow,
  | 'id'
  | 'tenant_id'
  | 'client_secret_sealed'
  | 'created_at'
  | 'updated_at'
  | 'deleted_at'
  | 'callback_key'
  | 'authorization_host'
  | 'provider_metadata'
  | 'metadata_fetched_at'
>

/** The columns that store `settings`. */
export function settingsToColumns(settings: IntegrationSettings): SettingsColumns {
  const columns: Record<string, unknown> = {}
  for (const field of INTEGRATION_FIELD_NAMES) {
    columns[INTEGRATION_FIELDS[field].column] = settings[field]
  }
  return columns as SettingsColumns
}

/**
 * One integration of a tenant. `forUpdate` locks the row until the transaction ends, so that a
 * concurrent update or delete waits and then sees this one's result.
 */
export async function findIntegrationRow(
  db: Db,
  tenantId: string,
  id: string,
  opts: { includeDeleted?: boolean; forUpdate?: boolean } = {},
): Promise<IntegrationRow | undefined> {
  if (!opts.forUpdate) {
    // Read on every sign-in start and callback: compiled once (prepared.ts).
    const [row] = await (opts.includeDeleted ? selectAnyIntegration : selectLiveIntegration)(db, {
      tenantId,
      id,
    })
    return row
  }
  return integrationQuery(db, tenantId, id, opts.includeDeleted ?? false)
    .forUpdate()
    .executeTakeFirst()
}

/** The one statement behind findIntegrationRow, with or without soft-deleted rows. */
function integrationQuery(db: Db, tenantId: string, id: string, includeDeleted: boolean) {
  const query = db
    .selectFrom('oauth_integrations')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
  return includeDeleted ? query : query.where('deleted_at', 'is', null)
}

const selectAnyIntegration = prepared((db, a: { tenantId: string; id: string }) =>
  integrationQuery(db, a.tenantId, a.id, true),
)
const selectLiveIntegration = prepared((db, a: { tenantId: string; id: string }) =>
  integrationQuery(db, a.tenantId, a.id, false),
)

/** A tenant's live integrations, by name ignoring case (index oauth_integrations_tenant_name_idx). */
export async function listIntegrationRows(db: Db, tenantId: string): Promise<IntegrationRow[]> {
  return db
    .selectFrom('oauth_integrations')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('deleted_at', 'is', null)
    .orderBy(sql`lower(name)`)
    .orderBy('id')
    .execute()
}

/** Whether another live integration of the tenant has this name, ignoring case. */
export async function nameTaken(
  db: Db,
  tenantId: string,
  name: string,
  exceptId: string | null,
): Promise<boolean> {
  let query = db
    .selectFrom('oauth_integrations')
    .select('id')
    .where('tenant_id', '=', tenantId)
    .where(sql<string>`lower(name)`, '=', sql<string>`lower(${name})`)
    .where('deleted_at', 'is', null)
  if (exceptId !== null) query = query.where('id', '<>', exceptId)
  return (await query.executeTakeFirst()) !== undefined
}

export async function insertIntegration(db: Db, row: NewIntegrationRow): Promise<IntegrationRow> {
  return db.insertInto('oauth_integrations').values(row).returningAll().executeTakeFirstOrThrow()
}

export async function updateIntegrationRow(
  db: Db,
  tenantId: string,
  id: string,
  patch: IntegrationUpdate,
): Promise<IntegrationRow | undefined> {
  return db
    .updateTable('oauth_integrations')
    .set(patch)
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .returningAll()
    .executeTakeFirst()
}

/**
 * Marks the integration deleted and drops its sealed secret, which nothing may use any more. The
 * row stays so that completed sessions can still show their integration.
 */
export async function softDeleteIntegration(
  db: Db,
  tenantId: string,
  id: string,
  at: Date,
): Promise<boolean> {
  const result = await db
    .updateTable('oauth_integrations')
    .set({ deleted_at: at, client_secret_sealed: null })
    .where('tenant_id', '=', tenantId)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}
