/**
 * Sign-in sessions. Every status change is a compare-and-set UPDATE built from the state
 * machine's table (core/auth-session.ts TRANSITIONS): `statusColumns` writes the new status (and,
 * for a final one, the completion time and no sealed verifier), `guarded` adds the `from` set
 * and the timing against the expiry as the WHERE clause. So concurrent requests (a replayed
 * callback, a cancel racing a sign-in) cannot both win, and no statement can finish a session in
 * its own way.
 */
import { sql, type RawBuilder, type UpdateQueryBuilder } from 'kysely'
import type { AuthFailure } from '../core/auth-failure.ts'
import {
  allowedFrom,
  isTerminal,
  TRANSITIONS,
  type AuthSession,
  type AuthSessionEvent,
} from '../core/auth-session.ts'
import type { Identity } from '../core/identity.ts'
import type { Db } from './database.ts'
import { prepared } from './prepared.ts'
import type { AuthSessionRow, Database } from './schema.ts'

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

type SessionUpdate<O> = UpdateQueryBuilder<Database, 'auth_sessions', 'auth_sessions', O>

/**
 * The columns an event writes: its target status and, when that status is final, the
 * completion time (`completedAt`, by default `at`) and no sealed PKCE verifier, which has no use
 * once a session is over. Every UPDATE that changes a status sets these and no others of them.
 */
export function statusColumns(
  event: AuthSessionEvent,
  at: Date,
  completedAt: Date | RawBuilder<Date> = at,
) {
  const to = TRANSITIONS[event].to
  if (!isTerminal(to)) return { status: to, updated_at: at }
  return { status: to, updated_at: at, completed_at: completedAt, code_verifier_sealed: null }
}

/** The compare-and-set guard of an event: its `from` set and its timing against the expiry. */
export function guarded<O>(
  query: SessionUpdate<O>,
  event: AuthSessionEvent,
  now: Date,
): SessionUpdate<O> {
  const { from, timing } = TRANSITIONS[event]
  const inFrom = query.where('status', 'in', from)
  if (timing === 'before_expiry') return inFrom.where('expires_at', '>', now)
  if (timing === 'from_expiry') return inFrom.where('expires_at', '<=', now)
  return inFrom
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
      guarded(
        qb
          .updateTable('auth_sessions')
          .set(statusColumns('cancel', s.now))
          .where('tenant_id', '=', s.tenantId)
          .where('conversation_id', '=', s.conversationId)
          .where('integration_id', '=', s.integrationId),
        'cancel',
        s.now,
      ).returningAll(),
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
  const { from, timing } = TRANSITIONS.open
  if (timing !== 'before_expiry') throw new Error('bindSession assumes open happens before expiry')
  const row = await db
    .updateTable('auth_sessions')
    .set({
      ...statusColumns('open', b.now),
      binding_hash: b.bindingHash,
      state_hash: b.stateHash,
      code_verifier_sealed: b.codeVerifierSealed,
      opened_at: sql<Date>`coalesce(opened_at, ${b.now})`,
    })
    .where('id', '=', b.id)
    .where('expires_at', '>', b.now)
    .where('exchange_claimed_at', 'is', null)
    .where((eb) =>
      eb.or([
        eb('status', 'in', from),
        eb.and([eb('status', '=', TRANSITIONS.open.to), eb('binding_hash', '=', b.bindingHash)]),
      ]),
    )
    .returningAll()
    .executeTakeFirst()
  return row && rowToAuthSession(row)
}

/**
 * The single-use guard of the callback: exactly one request may set exchange_claimed_at, and
 * only that one makes the token request. It is also where the callback's expiry is checked,
 * which is why authenticate and fail may happen after the expiry.
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
  const event = 'identity' in outcome ? 'authenticate' : 'fail'
  const row = await guarded(
    db
      .updateTable('auth_sessions')
      .set({
        ...statusColumns(event, now),
        identity: 'identity' in outcome ? JSON.stringify(outcome.identity) : null,
        failure: 'failure' in outcome ? JSON.stringify(outcome.failure) : null,
      })
      .where('id', '=', id),
    event,
    now,
  )
    .returningAll()
    .executeTakeFirst()
  return row && rowToAuthSession(row)
}

/** CANCELLED, if it is still open and in time; undefined otherwise. */
export async function cancelSession(
  db: Db,
  tenantId: string,
  id: string,
  now: Date,
): Promise<AuthSession | undefined> {
  const row = await guarded(
    db
      .updateTable('auth_sessions')
      .set(statusColumns('cancel', now))
      .where('id', '=', id)
      .where('tenant_id', '=', tenantId),
    'cancel',
    now,
  )
    .returningAll()
    .executeTakeFirst()
  return row && rowToAuthSession(row)
}

/**
 * Ends the sign-ins of an integration that are still open as CANCELLED (its deletion): finished
 * ones, and open ones past their expiry (they read EXPIRED already), stay as they are (index
 * auth_sessions_integration_status_idx). Returns their ids.
 */
export async function cancelOpenSessionsOf(
  db: Db,
  tenantId: string,
  integrationId: string,
  now: Date,
): Promise<string[]> {
  const rows = await guarded(
    db
      .updateTable('auth_sessions')
      .set(statusColumns('cancel', now))
      .where('tenant_id', '=', tenantId)
      .where('integration_id', '=', integrationId),
    'cancel',
    now,
  )
    .returning('id')
    .execute()
  return rows.map((r) => r.id)
}

/**
 * The sweeper: writes EXPIRED on open sessions past their expiry, a batch at a time, completed
 * at their expiry (as readers already see them; index auth_sessions_open_expiry_idx).
 */
export async function expireSessions(db: Db, now: Date, limit = 500): Promise<AuthSession[]> {
  const rows = await guarded(
    db
      .updateTable('auth_sessions')
      .set(statusColumns('expire', now, sql<Date>`expires_at`))
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('auth_sessions')
          .select('id')
          .where('status', 'in', allowedFrom('expire'))
          .where('expires_at', '<=', now)
          .limit(limit),
      ),
    'expire',
    now,
  )
    .returningAll()
    .execute()
  return rows.map(rowToAuthSession)
}
