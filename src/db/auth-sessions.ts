/**
 * Sign-in sessions. Every state change is a compare-and-set UPDATE whose WHERE clause repeats
 * the state machine's `allowedFrom` set (src/core/auth-session.ts), so concurrent requests (a
 * replayed callback, a cancel racing a sign-in) cannot both win.
 */
import { sql } from 'kysely'
import type { AuthFailure } from '../core/auth-failure.ts'
import { allowedFrom, type AuthSession } from '../core/auth-session.ts'
import type { Identity } from '../core/identity.ts'
import type { Db } from './database.ts'
import { prepared } from './prepared.ts'
import type { AuthSessionRow } from './schema.ts'

/** A session with the hashes and sealed values only the flow itself may look at. */
export interface SessionRecord {
  readonly session: AuthSession
  readonly linkHash: Uint8Array
  readonly bindingHash: Uint8Array | null
  readonly stateHash: Uint8Array | null
  readonly codeVerifierSealed: string | null
  readonly exchangeClaimedAt: Date | null
}

export function rowToAuthSession(row: AuthSessionRow): AuthSession {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    integrationId: row.integration_id,
    conversationId: row.conversation_id,
    contactId: row.contact_id,
    redirectRoute: row.redirect_route,
    status: row.status,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    openedAt: row.opened_at,
    completedAt: row.completed_at,
    identity: (row.identity as Identity | null) ?? null,
    failure: (row.failure as AuthFailure | null) ?? null,
  }
}

function rowToRecord(row: AuthSessionRow): SessionRecord {
  return {
    session: rowToAuthSession(row),
    linkHash: row.link_hash,
    bindingHash: row.binding_hash,
    stateHash: row.state_hash,
    codeVerifierSealed: row.code_verifier_sealed,
    exchangeClaimedAt: row.exchange_claimed_at,
  }
}

export interface NewSession {
  readonly id: string
  readonly tenantId: string
  readonly integrationId: string
  readonly conversationId: string
  readonly contactId: string
  readonly redirectRoute: AuthSession['redirectRoute']
  readonly linkHash: Uint8Array
  readonly expiresAt: Date
  readonly now: Date
}

/**
 * Inserts a PENDING session and cancels the open ones of the same conversation and integration
 * (a new link supersedes older ones). One statement (data-modifying CTEs): both changes or
 * neither, in one round trip instead of a transaction's four; compiled once (prepared.ts).
 */
export async function insertSessionSuperseding(
  db: Db,
  s: NewSession,
): Promise<{ session: AuthSession; superseded: AuthSession[] }> {
  const rows = await insertSuperseding(db, { ...s })
  const inserted = rows.find((row) => row.is_new)
  if (!inserted) throw new Error('inserting a session returned no row')
  return {
    session: rowToAuthSession(inserted),
    superseded: rows.filter((row) => !row.is_new).map(rowToAuthSession),
  }
}

const insertSuperseding = prepared((db, s: NewSession & Record<string, unknown>) =>
  db
    .with('superseded', (qb) =>
      qb
        .updateTable('auth_sessions')
        .set({
          status: 'CANCELLED',
          completed_at: s.now,
          updated_at: s.now,
          code_verifier_sealed: null,
        })
        .where('tenant_id', '=', s.tenantId)
        .where('conversation_id', '=', s.conversationId)
        .where('integration_id', '=', s.integrationId)
        .where('status', 'in', allowedFrom('cancel'))
        .where('expires_at', '>', s.now)
        .returningAll(),
    )
    .with('inserted', (qb) =>
      qb
        .insertInto('auth_sessions')
        .values({
          id: s.id,
          tenant_id: s.tenantId,
          integration_id: s.integrationId,
          conversation_id: s.conversationId,
          contact_id: s.contactId,
          redirect_route: s.redirectRoute,
          status: 'PENDING',
          link_hash: s.linkHash,
          expires_at: s.expiresAt,
          created_at: s.now,
          updated_at: s.now,
        })
        .returningAll(),
    )
    .selectFrom('inserted')
    .selectAll()
    .select(sql<boolean>`true`.as('is_new'))
    .unionAll((qb) =>
      qb
        .selectFrom('superseded')
        .selectAll()
        .select(sql<boolean>`false`.as('is_new')),
    ),
)

/** By id within a tenant (primary key). */
export async function findSession(
  db: Db,
  tenantId: string,
  id: string,
): Promise<AuthSession | undefined> {
  const [row] = await selectSession(db, { id, tenantId })
  return row && rowToAuthSession(row)
}

const selectSession = prepared((db, a: { id: string; tenantId: string }) =>
  db
    .selectFrom('auth_sessions')
    .selectAll()
    .where('id', '=', a.id)
    .where('tenant_id', '=', a.tenantId),
)

/** Newest first; uses auth_sessions_tenant_conversation_idx. */
export async function listSessionsOfConversation(
  db: Db,
  tenantId: string,
  conversationId: string,
  limit: number,
): Promise<AuthSession[]> {
  const rows = await db
    .selectFrom('auth_sessions')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('conversation_id', '=', conversationId)
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .limit(limit)
    .execute()
  return rows.map(rowToAuthSession)
}

export async function findRecordByLinkHash(
  db: Db,
  linkHash: Uint8Array,
): Promise<SessionRecord | undefined> {
  const row = await db
    .selectFrom('auth_sessions')
    .selectAll()
    .where('link_hash', '=', linkHash)
    .executeTakeFirst()
  return row && rowToRecord(row)
}

export async function findRecordByStateHash(
  db: Db,
  stateHash: Uint8Array,
): Promise<SessionRecord | undefined> {
  const row = await db
    .selectFrom('auth_sessions')
    .selectAll()
    .where('state_hash', '=', stateHash)
    .executeTakeFirst()
  return row && rowToRecord(row)
}

/**
 * Binds a PENDING session to the browser that posted the link (first browser wins), or gives
 * the browser already bound a fresh state and verifier (it came back and pressed Continue
 * again) as long as no callback has claimed the code exchange.
 */
export async function bindSession(
  db: Db,
  b: {
    id: string
    bindingHash: Uint8Array
    stateHash: Uint8Array
    codeVerifierSealed: string | null
    now: Date
  },
): Promise<AuthSession | undefined> {
  const row = await db
    .updateTable('auth_sessions')
    .set({
      status: 'OPENED',
      binding_hash: b.bindingHash,
      state_hash: b.stateHash,
      code_verifier_sealed: b.codeVerifierSealed,
      opened_at: sql<Date>`coalesce(opened_at, ${b.now})`,
      updated_at: b.now,
    })
    .where('id', '=', b.id)
    .where('expires_at', '>', b.now)
    .where('exchange_claimed_at', 'is', null)
    .where((eb) =>
      eb.or([
        eb('status', 'in', allowedFrom('open')),
        eb.and([eb('status', '=', 'OPENED'), eb('binding_hash', '=', b.bindingHash)]),
      ]),
    )
    .returningAll()
    .executeTakeFirst()
  return row && rowToAuthSession(row)
}

/**
 * The single-use guard of the callback: exactly one request may set exchange_claimed_at, and
 * only that one makes the token request.
 */
export async function claimExchange(db: Db, id: string, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('auth_sessions')
    .set({ exchange_claimed_at: now, updated_at: now })
    .where('id', '=', id)
    .where('status', 'in', allowedFrom('authenticate'))
    .where('exchange_claimed_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

/** Ends an OPENED session as AUTHENTICATED or FAILED; undefined if it was no longer OPENED. */
export async function completeSession(
  db: Db,
  id: string,
  outcome: { identity: Identity } | { failure: AuthFailure },
  now: Date,
): Promise<AuthSession | undefined> {
  const authenticated = 'identity' in outcome
  const row = await db
    .updateTable('auth_sessions')
    .set({
      status: authenticated ? 'AUTHENTICATED' : 'FAILED',
      identity: authenticated ? JSON.stringify(outcome.identity) : null,
      failure: authenticated ? null : JSON.stringify(outcome.failure),
      completed_at: now,
      updated_at: now,
      // The verifier has done its job; nothing sealed stays behind.
      code_verifier_sealed: null,
    })
    .where('id', '=', id)
    .where('status', 'in', allowedFrom(authenticated ? 'authenticate' : 'fail'))
    .returningAll()
    .executeTakeFirst()
  return row && rowToAuthSession(row)
}

export async function cancelSession(
  db: Db,
  tenantId: string,
  id: string,
  now: Date,
): Promise<AuthSession | undefined> {
  const row = await db
    .updateTable('auth_sessions')
    .set({ status: 'CANCELLED', completed_at: now, updated_at: now, code_verifier_sealed: null })
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .where('status', 'in', allowedFrom('cancel'))
    .where('expires_at', '>', now)
    .returningAll()
    .executeTakeFirst()
  return row && rowToAuthSession(row)
}

/** The sweeper: writes EXPIRED on open sessions past their expiry, a batch at a time. */
export async function expireSessions(db: Db, now: Date, limit = 500): Promise<AuthSession[]> {
  const rows = await db
    .updateTable('auth_sessions')
    .set({
      status: 'EXPIRED',
      completed_at: sql<Date>`expires_at`,
      updated_at: now,
      code_verifier_sealed: null,
    })
    .where('id', 'in', (eb) =>
      eb
        .selectFrom('auth_sessions')
        .select('id')
        .where('status', 'in', allowedFrom('expire'))
        .where('expires_at', '<=', now)
        .limit(limit),
    )
    .where('status', 'in', allowedFrom('expire'))
    .returningAll()
    .execute()
  return rows.map(rowToAuthSession)
}
