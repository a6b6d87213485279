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
  type ContactUpdate,
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
  /** The confirmation code until the result page shows it (then only its hash is kept). */
  readonly confirmationCodeSealed: string | null
  readonly confirmationCodeHash: Uint8Array | null
}

export function rowToAuthSession(row: AuthSessionRow): AuthSession {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    integrationId: row.integration_id,
    conversationId: row.conversation_id,
    contactId: row.contact_id,
    redirectRoute: row.redirect_route,
    redirectUri: row.redirect_uri,
    openid: row.openid,
    status: row.status,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    openedAt: row.opened_at,
    completedAt: row.completed_at,
    identity: (row.identity as Identity | null) ?? null,
    failure: (row.failure as AuthFailure | null) ?? null,
    stepUp: {
      prompt: row.prompt,
      maxAgeSeconds: row.max_age_seconds,
      loginHint: row.login_hint,
      acrValues: (row.acr_values as string[] | null) ?? null,
    },
    callbackIssuer: row.callback_issuer,
    confirmationAttemptsLeft: row.confirmation_attempts_left,
    confirmationShownAt: row.confirmation_shown_at,
    contactUpdate: row.contact_update,
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
    confirmationCodeSealed: row.confirmation_code_sealed,
    confirmationCodeHash: row.confirmation_code_hash,
  }
}

type SessionUpdate<O> = UpdateQueryBuilder<Database, 'auth_sessions', 'auth_sessions', O>

/**
 * The columns an event writes: its target status; past the code exchange (any status but
 * PENDING and OPENED) no sealed PKCE verifier, which has no use any more; and when the status is
 * final, the completion time (`completedAt`, by default `at`) and no confirmation code, sealed
 * or hashed. Every UPDATE that changes a status sets these and no others of them.
 */
export function statusColumns(
  event: AuthSessionEvent,
  at: Date,
  completedAt: Date | RawBuilder<Date> = at,
) {
  const to = TRANSITIONS[event].to
  if (to === 'PENDING' || to === 'OPENED') return { status: to, updated_at: at }
  if (!isTerminal(to)) return { status: to, updated_at: at, code_verifier_sealed: null }
  return {
    status: to,
    updated_at: at,
    completed_at: completedAt,
    code_verifier_sealed: null,
    confirmation_code_sealed: null,
    confirmation_code_hash: null,
  }
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
  readonly redirectUri: string
  readonly linkHash: Uint8Array
  readonly expiresAt: Date
  readonly prompt: string | null
  readonly maxAgeSeconds: number | null
  readonly loginHint: string | null
  /** JSON text of the acr_values list, or null. */
  readonly acrValues: string | null
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
          redirect_uri: s.redirectUri,
          status: 'PENDING',
          link_hash: s.linkHash,
          expires_at: s.expiresAt,
          prompt: s.prompt,
          max_age_seconds: s.maxAgeSeconds,
          login_hint: s.loginHint,
          acr_values: s.acrValues,
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
    /** Whether this authorization request is OpenID Connect (a nonce sent). */
    openid: boolean
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
      openid: b.openid,
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

/** How a callback ends its session. */
export type CallbackEnd =
  | {
      readonly kind: 'authenticated'
      readonly identity: Identity
      readonly contactUpdate: ContactUpdate
    }
  | {
      readonly kind: 'awaiting_confirmation'
      readonly identity: Identity
      readonly confirmationCodeSealed: string
      readonly attempts: number
    }
  | { readonly kind: 'failed'; readonly failure: AuthFailure }

const CALLBACK_EVENTS = {
  authenticated: 'authenticate',
  awaiting_confirmation: 'await_confirmation',
  failed: 'fail',
} as const satisfies Record<CallbackEnd['kind'], AuthSessionEvent>

/**
 * Ends the callback of an OPENED session: AUTHENTICATED, AWAITING_CONFIRMATION or FAILED, with
 * the `iss` the callback carried. Undefined if it was no longer OPENED (cancelled meanwhile).
 */
export async function endCallback(
  db: Db,
  id: string,
  end: CallbackEnd,
  callbackIssuer: string | null,
  now: Date,
): Promise<AuthSession | undefined> {
  const event = CALLBACK_EVENTS[end.kind]
  const row = await guarded(
    db
      .updateTable('auth_sessions')
      .set({
        ...statusColumns(event, now),
        callback_issuer: callbackIssuer,
        identity: end.kind === 'failed' ? null : JSON.stringify(end.identity),
        failure: end.kind === 'failed' ? JSON.stringify(end.failure) : null,
        contact_update: end.kind === 'authenticated' ? end.contactUpdate : null,
        confirmation_code_sealed:
          end.kind === 'awaiting_confirmation' ? end.confirmationCodeSealed : null,
        confirmation_attempts_left: end.kind === 'awaiting_confirmation' ? end.attempts : null,
      })
      .where('id', '=', id),
    event,
    now,
  )
    .returningAll()
    .executeTakeFirst()
  return row && rowToAuthSession(row)
}

/**
 * The result page shows the confirmation code, once: the sealed code gives way to its hash, and
 * the code is valid for `validMs` from now, never past the session's expiry (which is lowered to
 * it). Undefined when there was no code left to show (shown already, or the session moved on).
 */
export async function markConfirmationShown(
  db: Db,
  id: string,
  codeHash: Uint8Array,
  validMs: number,
  now: Date,
): Promise<AuthSession | undefined> {
  const until = new Date(now.getTime() + validMs)
  const row = await db
    .updateTable('auth_sessions')
    .set({
      confirmation_code_sealed: null,
      confirmation_code_hash: codeHash,
      confirmation_shown_at: now,
      expires_at: sql<Date>`least(expires_at, ${until})`,
      updated_at: now,
    })
    .where('id', '=', id)
    .where('status', '=', 'AWAITING_CONFIRMATION')
    .where('confirmation_code_sealed', 'is not', null)
    .where('expires_at', '>', now)
    .returningAll()
    .executeTakeFirst()
  return row && rowToAuthSession(row)
}

/** AWAITING_CONFIRMATION → AUTHENTICATED with what the contact got; undefined if not possible. */
export async function confirmSession(
  db: Db,
  tenantId: string,
  id: string,
  contactUpdate: ContactUpdate,
  now: Date,
): Promise<AuthSession | undefined> {
  const row = await guarded(
    db
      .updateTable('auth_sessions')
      .set({ ...statusColumns('confirm', now), contact_update: contactUpdate })
      .where('id', '=', id)
      .where('tenant_id', '=', tenantId),
    'confirm',
    now,
  )
    .returningAll()
    .executeTakeFirst()
  return row && rowToAuthSession(row)
}

/**
 * A wrong code: one attempt fewer, atomically (concurrent wrong codes each cost one). Returns
 * the attempts left, or undefined when the session is not waiting (any more) in time.
 */
export async function spendConfirmationAttempt(
  db: Db,
  tenantId: string,
  id: string,
  now: Date,
): Promise<number | undefined> {
  const row = await db
    .updateTable('auth_sessions')
    .set({
      confirmation_attempts_left: sql<number>`confirmation_attempts_left - 1`,
      updated_at: now,
    })
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .where('status', 'in', allowedFrom('reject_confirmation'))
    .where('confirmation_attempts_left', '>', 0)
    .where('expires_at', '>', now)
    .returning('confirmation_attempts_left')
    .executeTakeFirst()
  return row?.confirmation_attempts_left ?? undefined
}

/** AWAITING_CONFIRMATION → FAILED (no attempts left). */
export async function rejectConfirmation(
  db: Db,
  tenantId: string,
  id: string,
  failure: AuthFailure,
  now: Date,
): Promise<AuthSession | undefined> {
  const row = await guarded(
    db
      .updateTable('auth_sessions')
      .set({
        ...statusColumns('reject_confirmation', now),
        identity: null,
        failure: JSON.stringify(failure),
        contact_update: null,
      })
      .where('id', '=', id)
      .where('tenant_id', '=', tenantId),
    'reject_confirmation',
    now,
  )
    .returningAll()
    .executeTakeFirst()
  return row && rowToAuthSession(row)
}

/** The session with its hashes and sealed values, by id within a tenant. */
export async function findRecord(
  db: Db,
  tenantId: string,
  id: string,
): Promise<SessionRecord | undefined> {
  const row = await db
    .selectFrom('auth_sessions')
    .selectAll()
    .where('id', '=', id)
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst()
  return row && rowToRecord(row)
}

/** The session with its hashes and sealed values, by id alone (the end user's result page). */
export async function findRecordById(db: Db, id: string): Promise<SessionRecord | undefined> {
  const row = await db
    .selectFrom('auth_sessions')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirst()
  return row && rowToRecord(row)
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
 * at their expiry (as readers already see them; index auth_sessions_open_expiry_idx). A session
 * whose code exchange is under way is left to its callback (which may end after the expiry), or,
 * if the instance doing it died, to failAbandonedExchanges. Rows another sweeper has locked are
 * skipped, so sweepers on several instances share the work instead of waiting for each other.
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
          .where((w) => w.or([w('status', '!=', 'OPENED'), w('exchange_claimed_at', 'is', null)]))
          .limit(limit)
          .forUpdate()
          .skipLocked(),
      ),
    'expire',
    now,
  )
    .returningAll()
    .execute()
  return rows.map(rowToAuthSession)
}

/**
 * FAILED with `failure` for sessions whose code exchange was claimed before `claimedBefore` and
 * that are still OPENED: the instance that claimed them stopped before it could end them (index
 * auth_sessions_claimed_idx). A callback still under way past that time finds its session ended.
 */
export async function failAbandonedExchanges(
  db: Db,
  claimedBefore: Date,
  failure: AuthFailure,
  now: Date,
  limit = 500,
): Promise<AuthSession[]> {
  const rows = await guarded(
    db
      .updateTable('auth_sessions')
      .set({ ...statusColumns('fail', now), failure: JSON.stringify(failure), identity: null })
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('auth_sessions')
          .select('id')
          .where('status', '=', 'OPENED')
          .where('exchange_claimed_at', 'is not', null)
          .where('exchange_claimed_at', '<=', claimedBefore)
          .limit(limit)
          .forUpdate()
          .skipLocked(),
      ),
    'fail',
    now,
  )
    .returningAll()
    .execute()
  return rows.map(rowToAuthSession)
}

/**
 * Retention: deletes up to `limit` finished sessions (with their identity) completed before
 * `before`, oldest first (index auth_sessions_finished_idx). One short statement per batch, rows
 * locked by another instance's batch skipped: the table is never locked, open sessions never
 * touched. Returns how many were deleted.
 */
export async function deleteFinishedSessions(db: Db, before: Date, limit = 1000): Promise<number> {
  const result = await db
    .deleteFrom('auth_sessions')
    .where('id', 'in', (eb) =>
      eb
        .selectFrom('auth_sessions')
        .select('id')
        .where('completed_at', 'is not', null)
        .where('completed_at', '<', before)
        .orderBy('completed_at')
        .limit(limit)
        .forUpdate()
        .skipLocked(),
    )
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}
