/**
 * OAuth integrations: create, update, delete, list and get, always within one tenant.
 *
 * Rules (besides the field rules of core/integration-rules.ts):
 * - Another tenant's id, a deleted id, a random uuid and a malformed id are all "not found", with
 *   the same message, so ids of other tenants cannot be probed.
 * - A rejected request writes nothing: every check runs before the first write, and the writes
 *   (row, audit record, cancelled sessions) share one transaction.
 * - The client secret is write-only. It is sealed (AES-256-GCM) bound to tenant, table, row and
 *   column, so the row id is generated here before sealing. An update without a secret keeps it;
 *   with one, rotates it. It is never logged, audited or put in a message.
 * - Mix-up defence (RFC 9700 §4.4): one (authorization host, client id) pair
 *   belongs to one tenant. Writes of a pair are serialised by an advisory lock, so two tenants
 *   racing for the same pair cannot both win.
 * - Deleting is soft: the row stays (without its secret) for the sessions that used it, its open
 *   sessions are cancelled, and every rule about live integrations ignores it.
 * - Every create, change and delete leaves an audit record naming the API key that made it.
 */
import { randomUUID } from 'node:crypto'
import { BadUserInputError, NotFoundError } from '../core/errors.ts'
import {
  applyPatch,
  changedFields,
  initialSettings,
  patchProblems,
  settingsOf,
  type IntegrationCreate,
  type IntegrationPatch,
  type IntegrationSettings,
  type OAuthIntegration,
  type RuleContext,
} from '../core/integration.ts'
import {
  authorizationHostOf,
  clientSecretProblem,
  type FieldProblem,
} from '../core/integration-rules.ts'
import { redirectUrlsFor } from '../core/redirect-urls.ts'
import type { SealContext } from '../crypto/sealer.ts'
import { insertAuditEvent } from '../db/audit.ts'
import * as sessions from '../db/auth-sessions.ts'
import type { Db } from '../db/database.ts'
import * as integrations from '../db/integrations.ts'
import type { IntegrationUpdate } from '../db/schema.ts'
import { findTenantById } from '../db/tenants.ts'
import type { Deps } from './deps.ts'

export { rowToIntegration } from '../db/integrations.ts'

/** Who makes a change: the tenant of the API key, and the key (for the audit record). */
export interface Actor {
  readonly tenantId: string
  /** The api_keys row id; null for changes made outside the API (CLI, tests). */
  readonly apiKeyId: string | null
}

export type CreateIntegrationInput = IntegrationCreate & { readonly clientSecret: string }

export type UpdateIntegrationInput = IntegrationPatch & {
  readonly id: string
  /** A new secret rotates the stored one; absent keeps it. */
  readonly clientSecret?: string | null | undefined
}

const TARGET = 'oauth_integration'

export async function createIntegration(
  deps: Deps,
  actor: Actor,
  input: CreateIntegrationInput,
): Promise<OAuthIntegration> {
  const problems = patchProblems(input, ruleContext(deps), 'create')
  const secretProblem = clientSecretProblem(input.clientSecret)
  if (secretProblem) problems.push({ field: 'clientSecret', message: secretProblem })
  throwIfAny(problems)

  const settings = applyPatch(initialSettings(), input)
  const id = randomUUID()
  const now = deps.now()
  const row = await deps.db.transaction().execute(async (trx) => {
    await assertClientFree(trx, actor.tenantId, settings)
    await assertNameFree(trx, actor.tenantId, settings.name, null)
    const inserted = await saving(
      integrations.insertIntegration(trx, {
        id,
        tenant_id: actor.tenantId,
        ...integrations.settingsToColumns(settings),
        client_secret_sealed: deps.sealer.seal(
          input.clientSecret,
          secretContext(actor.tenantId, id),
        ),
        created_at: now,
        updated_at: now,
      }),
      settings.name,
    )
    await audit(trx, actor, 'created', id, now, {
      name: settings.name,
      clientId: settings.clientId,
      authorizationHost: authorizationHostOf(settings.authorizationUrl),
    })
    return inserted
  })
  deps.logger.info({ tenantId: actor.tenantId, integrationId: id }, 'integration created')
  return integrations.rowToIntegration(row)
}

export async function updateIntegration(
  deps: Deps,
  actor: Actor,
  input: UpdateIntegrationInput,
): Promise<OAuthIntegration> {
  const problems = patchProblems(input, ruleContext(deps), 'update')
  if (input.clientSecret === null) {
    problems.push({
      field: 'clientSecret',
      message:
        'must not be null (omit it to keep the stored secret, or send a new one to rotate it)',
    })
  } else if (input.clientSecret !== undefined) {
    const secretProblem = clientSecretProblem(input.clientSecret)
    if (secretProblem) problems.push({ field: 'clientSecret', message: secretProblem })
  }
  const id = checkedId(input.id)
  throwIfAny(problems)

  const now = deps.now()
  const result = await deps.db.transaction().execute(async (trx) => {
    const current = await integrations.findIntegrationRow(trx, actor.tenantId, id, {
      forUpdate: true,
    })
    if (!current) throw notFound(input.id)
    const before = settingsOf(integrations.rowToIntegration(current))
    const after = applyPatch(before, input)
    const changed = changedFields(before, after)
    const rotated = input.clientSecret !== undefined && input.clientSecret !== null
    if (changed.length === 0 && !rotated) return { row: current, changed, rotated }

    if (changed.includes('clientId') || changed.includes('authorizationUrl')) {
      await assertClientFree(trx, actor.tenantId, after)
    }
    if (changed.includes('name')) await assertNameFree(trx, actor.tenantId, after.name, id)
    const update: IntegrationUpdate = { ...integrations.settingsToColumns(after), updated_at: now }
    if (rotated) {
      update.client_secret_sealed = deps.sealer.seal(
        input.clientSecret as string,
        secretContext(actor.tenantId, id),
      )
    }
    const row = await saving(
      integrations.updateIntegrationRow(trx, actor.tenantId, id, update),
      after.name,
    )
    if (!row) throw notFound(input.id)
    const changes: Record<string, unknown> = {}
    for (const key of changed) changes[key] = { from: before[key], to: after[key] }
    // Never the value, old or new: only that it changed.
    if (rotated) changes.clientSecret = 'rotated'
    await audit(trx, actor, 'updated', id, now, { changes })
    return { row, changed, rotated }
  })
  if (result.changed.length > 0 || result.rotated) {
    const fields = result.rotated ? [...result.changed, 'clientSecret'] : result.changed
    deps.logger.info({ tenantId: actor.tenantId, integrationId: id, fields }, 'integration updated')
  }
  return integrations.rowToIntegration(result.row)
}

/**
 * Deletes softly and ends the integration's sign-ins that have not completed (PENDING, OPENED
 * become CANCELLED), in one transaction. Completed sessions keep pointing at the row.
 */
export async function deleteIntegration(deps: Deps, actor: Actor, id: string): Promise<void> {
  const checked = checkedId(id)
  const now = deps.now()
  const cancelled = await deps.db.transaction().execute(async (trx) => {
    const current = await integrations.findIntegrationRow(trx, actor.tenantId, checked, {
      forUpdate: true,
    })
    if (!current) throw notFound(id)
    await integrations.softDeleteIntegration(trx, actor.tenantId, checked, now)
    const sessionIds = await sessions.cancelOpenSessionsOf(trx, actor.tenantId, checked, now)
    await audit(trx, actor, 'deleted', checked, now, {
      name: current.name,
      cancelledSessions: sessionIds.length,
    })
    return sessionIds
  })
  // After the commit, so that subscribers who read the session again see it CANCELLED.
  for (const sessionId of cancelled) deps.events.publish(sessionId)
  deps.logger.info(
    { tenantId: actor.tenantId, integrationId: checked, cancelledSessions: cancelled.length },
    'integration deleted',
  )
}

export async function listIntegrations(deps: Deps, tenantId: string): Promise<OAuthIntegration[]> {
  const rows = await integrations.listIntegrationRows(deps.db, tenantId)
  return rows.map(integrations.rowToIntegration)
}

/** A live integration of the tenant; NotFoundError otherwise (also for malformed ids). */
export async function getIntegration(
  deps: Deps,
  tenantId: string,
  id: string,
): Promise<OAuthIntegration> {
  const row = await integrations.findIntegrationRow(deps.db, tenantId, checkedId(id))
  if (!row) throw notFound(id)
  return integrations.rowToIntegration(row)
}

/**
 * An integration of the tenant, also a deleted one: a sign-in session shows the integration it
 * used after that was deleted. NotFoundError when the tenant never had it.
 */
export async function getIntegrationIncludingDeleted(
  deps: Deps,
  tenantId: string,
  id: string,
): Promise<OAuthIntegration> {
  const row = await integrations.findIntegrationRow(deps.db, tenantId, checkedId(id), {
    includeDeleted: true,
  })
  if (!row) throw notFound(id)
  return integrations.rowToIntegration(row)
}

/**
 * Reads and opens the integration's client secret, right before a token request. Null when none
 * is stored (or the integration was deleted). Throws SealError when the stored value does not open
 * under this tenant and row (copied from elsewhere, tampered, or sealed under a retired key).
 */
export async function openClientSecret(
  deps: Deps,
  integration: Pick<OAuthIntegration, 'id' | 'tenantId'>,
): Promise<string | null> {
  const sealed = await integrations.findSealedClientSecret(
    deps.db,
    integration.tenantId,
    integration.id,
  )
  if (sealed === null) return null
  return deps.sealer.open(sealed, secretContext(integration.tenantId, integration.id))
}

/**
 * The three callback URLs a tenant allow-lists at its providers. `knownSlug` saves the lookup when
 * the caller already knows the tenant's slug (the API key's principal does).
 */
export async function redirectUrlsOf(
  deps: Deps,
  tenantId: string,
  knownSlug: string | null = null,
): Promise<string[]> {
  const slug = knownSlug ?? (await findTenantById(deps.db, tenantId))?.slug
  if (slug === undefined) throw new Error(`tenant ${tenantId} of an integration does not exist`)
  return redirectUrlsFor(deps.config.publicBaseUrl, slug)
}

// ---------------------------------------------------------------------------------------------

function secretContext(tenantId: string, rowId: string): SealContext {
  return { tenantId, table: 'oauth_integrations', rowId, column: 'client_secret_sealed' }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Ids are uuids in the database: anything else cannot exist, and must not reach SQL. */
function checkedId(id: string): string {
  if (!UUID.test(id)) throw notFound(id)
  return id.toLowerCase()
}

function notFound(id: string): NotFoundError {
  const shown = id.length > 64 ? `${id.slice(0, 64)}…` : id
  return NotFoundError.of('OAuth integration', shown)
}

function throwIfAny(problems: readonly FieldProblem[]): void {
  if (problems.length > 0) {
    throw BadUserInputError.of(
      problems.map((p) => ({ field: `input.${p.field}`, message: p.message })),
    )
  }
}

function ruleContext(deps: Deps): RuleContext {
  return { allowHosts: deps.config.outboundAllowHosts }
}

async function assertClientFree(db: Db, tenantId: string, s: IntegrationSettings): Promise<void> {
  const host = authorizationHostOf(s.authorizationUrl)
  await integrations.lockClientRegistration(db, host, s.clientId)
  if (await integrations.clientRegisteredElsewhere(db, tenantId, host, s.clientId)) {
    throw new BadUserInputError(
      `input.clientId: client id "${s.clientId}" at authorization host ${host} ` +
        `(input.authorizationUrl) is registered by another tenant; one OAuth client may serve ` +
        `only one tenant, as a defence against mix-up attacks (RFC 9700 §4.4). Register a ` +
        `client of your own with the provider`,
    )
  }
}

function nameTakenError(name: string): BadUserInputError {
  return new BadUserInputError(
    `input.name: an integration named "${name}" already exists in this tenant (names are compared ignoring case)`,
  )
}

async function assertNameFree(
  db: Db,
  tenantId: string,
  name: string,
  exceptId: string | null,
): Promise<void> {
  if (await integrations.nameTaken(db, tenantId, name, exceptId)) throw nameTakenError(name)
}

/** A concurrent write of the same name loses at the unique index: the same message as above. */
async function saving<T>(write: Promise<T>, name: string): Promise<T> {
  try {
    return await write
  } catch (error) {
    const e = error as { code?: unknown; constraint?: unknown } | null
    if (e?.code === '23505' && e.constraint === integrations.NAME_INDEX) throw nameTakenError(name)
    throw error
  }
}

async function audit(
  db: Db,
  actor: Actor,
  verb: 'created' | 'updated' | 'deleted',
  id: string,
  at: Date,
  details: Record<string, unknown>,
): Promise<void> {
  await insertAuditEvent(
    db,
    {
      tenantId: actor.tenantId,
      actorKeyId: actor.apiKeyId,
      action: `${TARGET}.${verb}`,
      targetType: TARGET,
      targetId: id,
      details,
    },
    at,
  )
}
