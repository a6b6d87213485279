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
 * - Each integration has callback URLs of its own (core/redirect-urls.ts): the mix-up defence of
 *   RFC 9700 §4.4.2, so tenants may share a provider's client id (no rule keeps one per tenant).
 * - With an issuer, its metadata is read when needed (see discoverIfNeeded) and kept.
 * - The secret follows its token endpoint: an update that changes tokenUrl (typed, or from the
 *   issuer's metadata) must carry a new clientSecret.
 * - Deleting is soft: the row stays (without its secret) for the sessions that used it, its open
 *   sessions are cancelled, and every rule about live integrations ignores it.
 * - Every create, change and delete leaves an audit record naming the API key that made it.
 */
import { recordSignInEnded } from '../observability/metrics.ts'
import { randomBytes, randomUUID } from 'node:crypto'
import { BadUserInputError, NotFoundError } from '../core/errors.ts'
import {
  applyPatch,
  changedFields,
  initialSettings,
  isOpenIdConnect,
  newCallbackKey,
  patchProblems,
  settingsOf,
  settingsProblems,
  settingsWarnings,
  type IntegrationCreate,
  type IntegrationField,
  type IntegrationPatch,
  type IntegrationSettings,
  type OAuthIntegration,
  type ProviderMetadata,
  type RuleContext,
} from '../core/integration.ts'
import {
  clientSecretProblem,
  providerUrlProblem,
  type FieldProblem,
} from '../core/integration-rules.ts'
import { hasTenantHosts, redirectUrlsFor } from '../core/redirect-urls.ts'
import type { SealContext } from '../crypto/sealer.ts'
import { auditChange } from '../db/audit.ts'
import * as sessions from '../db/auth-sessions.ts'
import type { Db } from '../db/database.ts'
import * as integrations from '../db/integrations.ts'
import type { IntegrationUpdate } from '../db/schema.ts'
import type { Invalidation } from '../runtime/events.ts'
import { InvalidatedCache } from './cache.ts'
import type { Deps } from './deps.ts'
import { tenantById } from './tenants.ts'

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
  const context = ruleContext(deps)
  const problems = patchProblems(input, context, 'create')
  const secretProblem = clientSecretProblem(input.clientSecret)
  if (secretProblem) problems.push({ field: 'clientSecret', message: secretProblem })
  throwIfAny(problems)

  const given = applyPatch(initialSettings(), input)
  const discovered = await discoverIfNeeded(deps, given, null, input)
  const settings = discovered.settings
  throwIfAny(settingsProblems(settings, context))
  const id = randomUUID()
  const now = deps.now()
  const row = await deps.db.transaction().execute(async (trx) => {
    await assertNameFree(trx, actor.tenantId, settings.name, null)
    const inserted = await saving(
      integrations.insertIntegration(trx, {
        id,
        tenant_id: actor.tenantId,
        ...integrations.settingsToColumns(settings),
        callback_key: newCallbackKey(randomBytes),
        provider_metadata: metadataColumn(discovered.metadata),
        metadata_fetched_at: discovered.metadata === null ? null : now,
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
      tokenUrl: settings.tokenUrl,
      issuer: settings.issuer,
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
  const context = ruleContext(deps)
  const problems = patchProblems(input, context, 'update')
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
  // One transaction with the row locked, the issuer's metadata read inside it when the change
  // needs it (an admin's rare write waits for it; concurrent changes of the row queue behind).
  const result = await deps.db.transaction().execute(async (trx) => {
    const current = await integrations.findIntegrationRow(trx, actor.tenantId, id, {
      forUpdate: true,
    })
    if (!current) throw notFound(input.id)
    const integration = integrations.rowToIntegration(current)
    const before = settingsOf(integration)
    const discovered = await discoverIfNeeded(deps, applyPatch(before, input), integration, input)
    const after = discovered.settings
    const rotated = input.clientSecret !== undefined && input.clientSecret !== null
    const afterProblems = settingsProblems(after, context)
    // The secret follows its token endpoint: a stored secret is never sent to another one.
    if (after.tokenUrl !== before.tokenUrl && !rotated) {
      afterProblems.push({
        field: 'clientSecret',
        message: `is required when the token endpoint changes (from ${before.tokenUrl} to ${after.tokenUrl}${input.tokenUrl === undefined ? ", as the issuer's metadata says" : ''}): the stored secret is only ever sent to the endpoint it was given for`,
      })
    }
    throwIfAny(afterProblems)
    const changed = changedFields(before, after)
    const metadataChanged = discovered.metadata !== integration.providerMetadata
    if (changed.length === 0 && !rotated && !metadataChanged) {
      return { row: current, changed, rotated, written: false }
    }
    if (changed.includes('name')) await assertNameFree(trx, actor.tenantId, after.name, id)
    const update: IntegrationUpdate = { ...integrations.settingsToColumns(after), updated_at: now }
    if (metadataChanged) {
      update.provider_metadata = metadataColumn(discovered.metadata)
      update.metadata_fetched_at = discovered.metadata === null ? null : now
    }
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
    return { row, changed, rotated, written: true }
  })
  // Written (fields, secret or only the issuer's metadata): other instances hear of it from the
  // database (a trigger); this instance's cache need not wait for that.
  if (result.written) deps.invalidation.changed('integration', result.row.id)
  if (result.changed.length > 0 || result.rotated) {
    const fields = result.rotated ? [...result.changed, 'clientSecret'] : result.changed
    deps.logger.info({ tenantId: actor.tenantId, integrationId: id, fields }, 'integration updated')
  }
  return integrations.rowToIntegration(result.row)
}

/** Endpoints the issuer's metadata may supply, with the metadata field that holds each. */
const DISCOVERED = {
  authorizationUrl: 'authorizationEndpoint',
  tokenUrl: 'tokenEndpoint',
  whoAmIUrl: 'userinfoEndpoint',
} as const satisfies Partial<Record<IntegrationField, keyof ProviderMetadata>>

/**
 * Reads the issuer's metadata when the settings need it: an endpoint is missing, the sign-ins
 * are OpenID Connect (the metadata names the keys ID tokens are checked with), or the issuer
 * changed from one that supplied the stored metadata. Fills what the admin did not give:
 * missing endpoints, and (on create, or when the issuer changed) the endpoints that came from
 * the previous metadata, including a default whoAmIUrl (the userinfo endpoint). Endpoints from
 * metadata pass the same URL rules as those an admin types. Throws BAD_USER_INPUT naming
 * `issuer` when the metadata is needed and cannot be read or is not acceptable.
 */
async function discoverIfNeeded(
  deps: Deps,
  settings: IntegrationSettings,
  current: OAuthIntegration | null,
  input: IntegrationPatch,
): Promise<{ settings: IntegrationSettings; metadata: ProviderMetadata | null }> {
  const issuer = settings.issuer
  const kept = current?.providerMetadata ?? null
  if (issuer === null) return { settings, metadata: null }
  const issuerChanged = current !== null && current.issuer !== issuer
  const missing = settings.authorizationUrl === '' || settings.tokenUrl === ''
  const needsKeys = isOpenIdConnect(settings) && (kept === null || issuerChanged)
  if (!missing && !needsKeys && !(issuerChanged && kept !== null)) {
    return { settings, metadata: issuerChanged ? null : kept }
  }
  const read = await deps.provider.discover(issuer)
  if (!read.ok) throw BadUserInputError.of([{ field: 'input.issuer', message: read.error }])
  const metadata = read.value
  const next: Record<string, unknown> = { ...settings }
  const problems: FieldProblem[] = []
  for (const [field, from] of Object.entries(DISCOVERED) as [
    keyof typeof DISCOVERED,
    keyof ProviderMetadata,
  ][]) {
    const value = metadata[from] as string | null
    const givenNow = input[field] !== undefined
    const wasDiscovered = kept !== null && current !== null && current[field] === kept[from]
    const empty = settings[field] === '' || (field === 'whoAmIUrl' && current === null)
    if (value === null || givenNow || !(empty || (issuerChanged && wasDiscovered))) continue
    const problem = providerUrlProblem(field, value, deps.config.outboundAllowHosts)
    if (problem) {
      problems.push({
        field: 'issuer',
        message: `its metadata names ${from} ${value}, which ${problem}`,
      })
    } else {
      next[field] = value
    }
  }
  if (isOpenIdConnect(settings) && metadata.jwksUri === null) {
    problems.push({
      field: 'issuer',
      message:
        'its metadata names no jwks_uri, so ID tokens could not be checked (openid is in scope)',
    })
  } else if (metadata.jwksUri !== null && isOpenIdConnect(settings)) {
    const problem = providerUrlProblem('tokenUrl', metadata.jwksUri, deps.config.outboundAllowHosts)
    if (problem) {
      problems.push({
        field: 'issuer',
        message: `its metadata names jwks_uri ${metadata.jwksUri}, which ${problem}`,
      })
    }
  }
  throwIfAny(problems)
  return { settings: next as IntegrationSettings, metadata }
}

function metadataColumn(metadata: ProviderMetadata | null): string | null {
  return metadata === null ? null : JSON.stringify(metadata)
}

/** What an admin should know about an integration that works: its settings' and metadata's. */
export function integrationWarnings(integration: OAuthIntegration): string[] {
  const warnings = settingsWarnings(integration)
  const methods = integration.providerMetadata?.codeChallengeMethods
  if (integration.pkce && methods != null && !methods.includes('S256')) {
    warnings.push(
      "the provider's metadata does not list S256 in code_challenge_methods_supported: it may ignore PKCE",
    )
  }
  return warnings
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
  // Only their ids come back: counted without a duration.
  for (let i = 0; i < cancelled.length; i++) recordSignInEnded({ status: 'CANCELLED' })
  deps.invalidation.changed('integration', checked)
  deps.logger.info(
    { tenantId: actor.tenantId, integrationId: checked, cancelledSessions: cancelled.length },
    'integration deleted',
  )
}

export async function listIntegrations(deps: Deps, tenantId: string): Promise<OAuthIntegration[]> {
  const rows = await integrations.listIntegrationRows(deps.db, tenantId)
  return rows.map(integrations.rowToIntegration)
}

/**
 * Integrations are read on every sign-in start, link page and callback, and change rarely: each
 * instance keeps the rows it read (sealed secret included: sealed, it is no secret) and drops one
 * when it changes here or on any instance (services/cache.ts). Keyed by tenant and id, so a row
 * is only ever found through its own tenant.
 */
export const INTEGRATION_CACHE_MS = 60_000
const MAX_CACHED_INTEGRATIONS = 10_000

interface CachedIntegration {
  readonly integration: OAuthIntegration
  readonly deleted: boolean
  readonly clientSecretSealed: string | null
}

export type IntegrationCache = InvalidatedCache<CachedIntegration>

export function createIntegrationCache(invalidation: Invalidation): IntegrationCache {
  return new InvalidatedCache<CachedIntegration>(invalidation, {
    topics: ['integration'],
    ttlMs: INTEGRATION_CACHE_MS,
    maxEntries: MAX_CACHED_INTEGRATIONS,
    affects: (cached, id) => cached.integration.id === id,
  })
}

/** The row of an integration of the tenant, live or deleted, from the cache or the database. */
async function cachedIntegration(
  deps: Deps,
  tenantId: string,
  id: string,
): Promise<CachedIntegration | undefined> {
  const checked = checkedId(id)
  const key = `${tenantId}:${checked}`
  const cache = deps.caches.integrations
  const hit = cache.get(key, Date.now())
  if (hit) return hit
  const generation = cache.generation()
  const row = await integrations.findIntegrationRow(deps.db, tenantId, checked, {
    includeDeleted: true,
  })
  if (!row) return undefined
  const entry: CachedIntegration = {
    integration: integrations.rowToIntegration(row),
    deleted: row.deleted_at !== null,
    clientSecretSealed: row.client_secret_sealed,
  }
  cache.set(key, entry, Date.now(), generation)
  return entry
}

/** A live integration of the tenant; NotFoundError otherwise (also for malformed ids). */
export async function getIntegration(
  deps: Deps,
  tenantId: string,
  id: string,
): Promise<OAuthIntegration> {
  const found = await cachedIntegration(deps, tenantId, id)
  if (!found || found.deleted) throw notFound(id)
  return found.integration
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
  const found = await cachedIntegration(deps, tenantId, id)
  if (!found) throw notFound(id)
  return found.integration
}

/**
 * Opens the integration's client secret, right before a token request. Null when none is stored
 * (or the integration was deleted). Throws SealError when the stored value does not open under
 * this tenant and row (copied from elsewhere, tampered, or sealed under a retired key).
 */
export async function openClientSecret(
  deps: Deps,
  integration: Pick<OAuthIntegration, 'id' | 'tenantId'>,
): Promise<string | null> {
  const found = await cachedIntegration(deps, integration.tenantId, integration.id)
  const sealed = found && !found.deleted ? found.clientSecretSealed : null
  if (sealed === null) return null
  return deps.sealer.open(sealed, secretContext(integration.tenantId, integration.id))
}

/**
 * The three callback URLs to allow-list at the provider for this integration: its own (the
 * routes followed by its callback key), or the tenant's bare routes with `sharedRedirectUrls`.
 * `knownSlug` saves the lookup when the caller already knows the tenant's slug (the API key's
 * principal does).
 */
export async function redirectUrlsOf(
  deps: Deps,
  integration: Pick<OAuthIntegration, 'tenantId' | 'callbackKey' | 'sharedRedirectUrls'>,
  knownSlug: string | null = null,
): Promise<string[]> {
  const slug = knownSlug ?? (await tenantById(deps, integration.tenantId))?.slug
  if (slug === undefined) {
    throw new Error(`tenant ${integration.tenantId} of an integration does not exist`)
  }
  return redirectUrlsFor(deps.config.publicBaseUrl, slug, callbackKeyOf(integration))
}

/** The key of the callback URLs an integration's new sign-ins use; null for the shared ones. */
export function callbackKeyOf(
  integration: Pick<OAuthIntegration, 'callbackKey' | 'sharedRedirectUrls'>,
): string | null {
  return integration.sharedRedirectUrls ? null : integration.callbackKey
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
  return {
    allowHosts: deps.config.outboundAllowHosts,
    tenantHosts: hasTenantHosts(deps.config.publicBaseUrl),
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

function audit(
  db: Db,
  actor: Actor,
  verb: 'created' | 'updated' | 'deleted',
  id: string,
  at: Date,
  details: Record<string, unknown>,
): Promise<void> {
  return auditChange(db, actor, TARGET, verb, id, at, details)
}
