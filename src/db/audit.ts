/**
 * The audit trail of admin changes (audit_events). Details name what changed; they never hold a
 * secret's value (a new client secret is recorded as "rotated").
 */
import type { Db } from './database.ts'

export interface AuditEvent {
  readonly tenantId: string
  /** The api_keys row id of the key that made the change; null for the CLI or the system. */
  readonly actorKeyId: string | null
  /** `<target>.<verb>`, e.g. `oauth_integration.updated`. */
  readonly action: string
  readonly targetType: string
  readonly targetId: string
  readonly details: Record<string, unknown>
}

export interface StoredAuditEvent extends AuditEvent {
  readonly id: string
  readonly createdAt: Date
}

export async function insertAuditEvent(db: Db, event: AuditEvent, at: Date): Promise<void> {
  await db
    .insertInto('audit_events')
    .values({
      tenant_id: event.tenantId,
      actor_key_id: event.actorKeyId,
      action: event.action,
      target_type: event.targetType,
      target_id: event.targetId,
      details: JSON.stringify(event.details),
      created_at: at,
    })
    .execute()
}

/**
 * The record of `verb` done by an API key of the tenant (or the CLI, `apiKeyId` null) to one
 * row of `targetType`: the action is `<targetType>.<verb>`.
 */
export function auditChange(
  db: Db,
  actor: { readonly tenantId: string; readonly apiKeyId: string | null },
  targetType: string,
  verb: string,
  targetId: string,
  at: Date,
  details: Record<string, unknown>,
): Promise<void> {
  return insertAuditEvent(
    db,
    {
      tenantId: actor.tenantId,
      actorKeyId: actor.apiKeyId,
      action: `${targetType}.${verb}`,
      targetType,
      targetId,
      details,
    },
    at,
  )
}

/** A tenant's events, oldest first (index audit_events_tenant_created_idx). */
export async function listAuditEvents(
  db: Db,
  tenantId: string,
  filter: { targetId?: string } = {},
): Promise<StoredAuditEvent[]> {
  let query = db
    .selectFrom('audit_events')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .orderBy('created_at')
    .orderBy('id')
  if (filter.targetId !== undefined) query = query.where('target_id', '=', filter.targetId)
  const rows = await query.execute()
  return rows.map((row) => ({
    id: String(row.id),
    tenantId: row.tenant_id,
    actorKeyId: row.actor_key_id,
    action: row.action,
    targetType: row.target_type,
    targetId: row.target_id,
    details: row.details,
    createdAt: row.created_at,
  }))
}
