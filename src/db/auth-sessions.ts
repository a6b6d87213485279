/**
 * Sign-in sessions. Every status change is a compare-and-set UPDATE built from the state
 * machine's table (core/auth-session.ts TRANSITIONS): `statusColumns` writes the new status (and,
 * for a final one, the completion time and no sealed verifier), `guarded` adds the `from` set
 * and the timing against the expiry as the WHERE clause. So concurrent requests (a replayed
 * callback, a cancel racing a sign-in) cannot both win, and no statement can finish a session in
 * its own way.
 */
import { sql, type ExpressionBuilder, type RawBuilder, type UpdateQueryBuilder } from 'kysely'
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
import {
  contactColumns,
  CONTACT_SNAPSHOT_COLUMNS,
  contactSnapshotOf,
  type ContactSnapshot,
  type ContactWrite,
} from './contacts.ts'
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
  /** When the row last changed: a released claim puts it back (releaseClaim). */
  readonly updatedAt: Date
  /** The confirmation code until the result page shows it (then only its hash is kept). */
  readonly confirmationCodeSealed: string | null
  readonly confirmationCodeHash: Uint8Array | null
}

/**
 * The columns an AuthSession is made of: what the reads and writes that answer with a session
 * alone (a poll, a cancel) select, leaving out the hashes and sealed values that only the link,
 * callback and result steps need. Fewer columns are fewer values to send and to parse (a bytea
 * arrives as hex text) on the most frequent statement, the poll.
 */
export const SESSION_COLUMNS = [
  'id',
  'tenant_id',
  'integration_id',
  'conversation_id',
  'contact_id',
  'redirect_route',
  'redirect_uri',
  'openid',
  'status',
  'created_at',
  'expires_at',
  'opened_at',
  'completed_at',
  'identity',
  'failure',
  'prompt',
  'max_age_seconds',
  'login_hint',
  'acr_values',
  'callback_issuer',
  'confirmation_attempts_left',
  'confirmation_shown_at',
  'contact_update',
] as const satisfies ReadonlyArray<keyof AuthSessionRow>

export type SessionRow = Pick<AuthSessionRow, (typeof SESSION_COLUMNS)[number]>

export function rowToAuthSession(row: SessionRow): AuthSession {
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
    updatedAt: row.updated_at,
    confirmationCodeSealed: row.confirmation_code_sealed,
    confirmationCodeHash: row.confirmation_code_hash,
  }
}

/**
 * `tenant_id = tenantId`, for statements that find their row by a unique key (id, link hash):
 * written as IS NOT DISTINCT FROM (the same for a NOT NULL column), which no index can serve, so
 * the planner cannot choose auth_sessions_tenant_conversation_idx for it. On a table PostgreSQL
 * has not analyzed yet (a new database, until autovacuum's first ANALYZE) it cannot tell that
 * most rows share a tenant and took that index as readily as the primary key; the generic plan a
 * connection then cached read every session of the tenant for each poll and each Continue
 * (measured: about 1,150 buffers and 0.6 to 1.1 ms per call at 1,100 sessions) until the next
 * ANALYZE replanned it. test/cluster/round-trips.test.ts holds every statement of a sign-in to
 * a few buffers on such a table.
 */
function ofTenant(tenantId: string) {
  return (eb: ExpressionBuilder<Database, 'auth_sessions'>) =>
    eb('tenant_id', 'is not distinct from', tenantId)
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
      ).returning(SESSION_COLUMNS),
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
        .returning(SESSION_COLUMNS),
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
    .select(SESSION_COLUMNS)
    .where('id', '=', a.id)
    .where(ofTenant(a.tenantId)),
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
    .select(SESSION_COLUMNS)
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
  const [row] = await selectByLinkHash(db, { linkHash })
  return row && rowToRecord(row)
}

const selectByLinkHash = prepared((db, a: { linkHash: Uint8Array }) =>
  db.selectFrom('auth_sessions').selectAll().where('link_hash', '=', a.linkHash),
)

/**
 * Binds a PENDING session to the browser that posted the link (first browser wins), or gives
 * the browser already bound a fresh state and verifier (it came back and pressed Continue
 * again) as long as no callback has claimed the code exchange.
 */
export async function bindSession(db: Db, b: Bind): Promise<AuthSession | undefined> {
  const [row] = await bind(db, b)
  return row && rowToAuthSession(row)
}

type Bind = {
  id: string
  bindingHash: Uint8Array
  stateHash: Uint8Array
  codeVerifierSealed: string | null
  /** Whether this authorization request is OpenID Connect (a nonce sent). */
  openid: boolean
  now: Date
}

/**
 * The bind, for both ways in: a PENDING session takes `newBindingHash`; an OPENED one only
 * while it is bound to `currentBindingHash` (and keeps it).
 */
function bindQuery(
  db: Db,
  b: Omit<Bind, 'bindingHash'> & {
    newBindingHash: Uint8Array
    currentBindingHash: Uint8Array | null
  },
) {
  const { from, timing } = TRANSITIONS.open
  if (timing !== 'before_expiry') throw new Error('bindSession assumes open happens before expiry')
  return db
    .updateTable('auth_sessions')
    .set({
      ...statusColumns('open', b.now),
      binding_hash: sql<Uint8Array>`case when status in (${sql.join(from)}) then ${b.newBindingHash} else binding_hash end`,
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
        eb.and([
          eb('status', '=', TRANSITIONS.open.to),
          eb('binding_hash', '=', b.currentBindingHash),
        ]),
      ]),
    )
}

const bind = prepared((db, b: Bind) =>
  bindQuery(db, {
    ...b,
    newBindingHash: b.bindingHash,
    currentBindingHash: b.bindingHash,
  }).returning(SESSION_COLUMNS),
)

/**
 * The bind of the link's POST in one statement, from the ids the continue page carried: the
 * session must be the one of `linkHash` and belong to that tenant and integration, so ids a
 * browser made up bind nothing (the caller then reads the link and binds as bindSession). A
 * PENDING session takes `newBindingHash`; an OPENED one only the browser that holds
 * `currentBindingHash` (the hash of its cookie for this session, or null).
 */
export async function bindSessionByLink(
  db: Db,
  b: Omit<Bind, 'bindingHash'> & {
    linkHash: Uint8Array
    tenantId: string
    integrationId: string
    newBindingHash: Uint8Array
    currentBindingHash: Uint8Array | null
  },
): Promise<Pick<SessionRecord, 'session' | 'bindingHash'> | undefined> {
  const [row] = await bindByLink(db, b)
  return row && { session: rowToAuthSession(row), bindingHash: row.binding_hash }
}

const bindByLink = prepared(
  (
    db,
    b: Omit<Bind, 'bindingHash'> & {
      linkHash: Uint8Array
      tenantId: string
      integrationId: string
      newBindingHash: Uint8Array
      currentBindingHash: Uint8Array | null
    },
  ) =>
    bindQuery(db, b)
      .where('link_hash', '=', b.linkHash)
      .where(ofTenant(b.tenantId))
      .where('integration_id', '=', b.integrationId)
      .returning([...SESSION_COLUMNS, 'binding_hash']),
)

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

/** What a callback's first statement found: the session of its `state`, claimed or not, and its contact. */
export interface StateClaim {
  readonly record: SessionRecord
  /** Whether this statement claimed the code exchange (see claimByState). */
  readonly claimed: boolean
  readonly contact: ContactSnapshot
}

/**
 * The callback's first round trip: the session whose state hash this is, and in the same
 * statement the claim of its code exchange (the single-use guard, as claimExchange) when the
 * database alone can tell the callback is good: the session is OPENED, unclaimed and in time, the
 * request carries its binding cookie (`bindingHashes`: hex SHA-256 of every binding cookie the
 * request has) and came to the session's callback path. The caller still runs every check on
 * the record: where one refuses a claimed session it releases the claim (releaseClaim); where
 * all pass and nothing was claimed (a session of an earlier version without a stored
 * redirect_uri) it claims with claimExchange. Also the contact the sign-in will write, so that
 * the end of the callback can be one statement too (db/contacts.ts authenticateWithContact).
 */
export async function claimByState(
  db: Db,
  a: { stateHash: Uint8Array; bindingHashes: readonly string[]; callbackPath: string; now: Date },
): Promise<StateClaim | undefined> {
  const [row] = await claimByStateQuery(db, { ...a, bindingHashes: [...a.bindingHashes] })
  if (!row) return undefined
  const { claimed, ...session } = row
  return {
    record: rowToRecord(session),
    claimed: claimed === true,
    contact: contactSnapshotOf(row),
  }
}

const claimByStateQuery = prepared(
  (db, a: { stateHash: Uint8Array; bindingHashes: string[]; callbackPath: string; now: Date }) =>
    db
      .with('found', (qb) =>
        qb.selectFrom('auth_sessions').selectAll().where('state_hash', '=', a.stateHash),
      )
      .with('claimed', (qb) =>
        qb
          .updateTable('auth_sessions')
          .set({ exchange_claimed_at: a.now, updated_at: a.now })
          .where('state_hash', '=', a.stateHash)
          .where('status', 'in', allowedFrom('authenticate'))
          .where('exchange_claimed_at', 'is', null)
          .where('expires_at', '>', a.now)
          .where(sql<boolean>`encode(binding_hash, 'hex') = any(${a.bindingHashes}::text[])`)
          .where(
            sql<boolean>`right(redirect_uri, length(${a.callbackPath}::text)) = ${a.callbackPath}::text`,
          )
          .returning('id'),
      )
      .selectFrom('found')
      .leftJoin('claimed', 'claimed.id', 'found.id')
      .leftJoin('contacts as c', (join) =>
        join
          .onRef('c.tenant_id', '=', 'found.tenant_id')
          .onRef('c.contact_id', '=', 'found.contact_id'),
      )
      .selectAll('found')
      .select(sql<boolean>`claimed.id is not null`.as('claimed'))
      .select(CONTACT_SNAPSHOT_COLUMNS),
)

/**
 * Undoes a claim made by claimByState for a callback that its checks then refused: the exchange
 * is unclaimed and the row as it was, as long as nothing else changed it since.
 */
export async function releaseClaim(db: Db, record: SessionRecord, claimedAt: Date): Promise<void> {
  await db
    .updateTable('auth_sessions')
    .set({ exchange_claimed_at: null, updated_at: record.updatedAt })
    .where('id', '=', record.session.id)
    .where('exchange_claimed_at', '=', claimedAt)
    .where('status', 'in', allowedFrom('authenticate'))
    .execute()
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
      .set(callbackEndColumns(end, callbackIssuer, now))
      .where('id', '=', id),
    event,
    now,
  )
    .returning(SESSION_COLUMNS)
    .executeTakeFirst()
  return row && rowToAuthSession(row)
}

/** The columns a callback's end writes (its status columns and what the callback learnt). */
export function callbackEndColumns(end: CallbackEnd, callbackIssuer: string | null, now: Date) {
  return {
    ...statusColumns(CALLBACK_EVENTS[end.kind], now),
    callback_issuer: callbackIssuer,
    identity: end.kind === 'failed' ? null : JSON.stringify(end.identity),
    failure: end.kind === 'failed' ? JSON.stringify(end.failure) : null,
    contact_update: end.kind === 'authenticated' ? end.contactUpdate : null,
    confirmation_code_sealed:
      end.kind === 'awaiting_confirmation' ? end.confirmationCodeSealed : null,
    confirmation_attempts_left: end.kind === 'awaiting_confirmation' ? end.attempts : null,
  }
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
    .returning(SESSION_COLUMNS)
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
      .where(ofTenant(tenantId)),
    'confirm',
    now,
  )
    .returning(SESSION_COLUMNS)
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
    .where(ofTenant(tenantId))
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
      .where(ofTenant(tenantId)),
    'reject_confirmation',
    now,
  )
    .returning(SESSION_COLUMNS)
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
    .where(ofTenant(tenantId))
    .executeTakeFirst()
  return row && rowToRecord(row)
}

/** The session with its hashes and sealed values, by id alone (the end user's result page). */
export async function findRecordById(db: Db, id: string): Promise<SessionRecord | undefined> {
  const [row] = await selectById(db, { id })
  return row && rowToRecord(row)
}

const selectById = prepared((db, a: { id: string }) =>
  db.selectFrom('auth_sessions').selectAll().where('id', '=', a.id),
)

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
      .where(ofTenant(tenantId)),
    'cancel',
    now,
  )
    .returning(SESSION_COLUMNS)
    .executeTakeFirst()
  return row && rowToAuthSession(row)
}

/**
 * Ends the sign-ins of an integration that are still open as CANCELLED (its deletion): finished
 * ones, and open ones past their expiry (they read EXPIRED already), stay as they are (index
 * auth_sessions_integration_open_idx, which holds open sessions only). Returns their ids.
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
    .returning(SESSION_COLUMNS)
    .execute()
  return rows.map(rowToAuthSession)
}

/**
 * FAILED with `failure` for sessions whose code exchange was claimed before `claimedBefore` and
 * that are still OPENED: the instance that claimed them stopped before it could end them. It
 * reads the OPENED sessions through auth_sessions_opened_idx: an index of the claimed ones
 * would make every claim write index entries (migration 0022). A callback still under way past
 * that time finds its session ended.
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
    .returning(SESSION_COLUMNS)
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

/**
 * The end of a callback in one statement: the session AUTHENTICATED (`end`, guarded by the state
 * machine) and its contact written as planned from `snapshot`, both or neither. Where the contact
 * existed, the session is only written while the row is still the version the plan was made from
 * (the row is locked for the statement); where it did not, the contact is inserted, and one
 * created meanwhile by a concurrent sign-in makes the statement fail on the primary key. Either
 * way nothing is written and `undefined` comes back (so it does when the session ended
 * elsewhere): the caller then takes the locked path (applyIdentityToContact in a transaction).
 */
export async function authenticateWithContact(
  db: Db,
  session: {
    readonly id: string
    readonly columns: ReturnType<typeof callbackEndColumns>
    readonly now: Date
  },
  snapshot: ContactSnapshot,
  write: ContactWrite,
): Promise<SessionRow | undefined> {
  const args: EndArgs = {
    id: session.id,
    now: session.now,
    tenantId: write.tenantId,
    contactId: write.contactId,
    ...prefixed(session.columns, 's_'),
    ...prefixed(contactColumns(write), 'c_'),
  }
  if (snapshot.version !== null) {
    const [row] = await authenticateUpdatingContact(db, { ...args, version: snapshot.version })
    return row
  }
  try {
    const [row] = await authenticateInsertingContact(db, args)
    return row
  } catch (error) {
    if (isUniqueViolation(error)) return undefined
    throw error
  }
}

type Prefixed<T, P extends string> = { [K in keyof T & string as `${P}${K}`]: T[K] }

function prefixed<T extends object, P extends string>(values: T, prefix: P): Prefixed<T, P> {
  return Object.fromEntries(
    Object.entries(values).map(([key, value]) => [`${prefix}${key}`, value]),
  ) as Prefixed<T, P>
}

function unprefixed<T extends Record<string, unknown>, P extends string>(
  args: T,
  prefix: P,
): { [K in keyof T & string as K extends `${P}${infer R}` ? R : never]: T[K] } {
  return Object.fromEntries(
    Object.entries(args)
      .filter(([key]) => key.startsWith(prefix))
      .map(([key, value]) => [key.slice(prefix.length), value]),
  ) as never
}

type EndArgs = {
  id: string
  now: Date
  tenantId: string
  contactId: string
} & Prefixed<ReturnType<typeof callbackEndColumns>, 's_'> &
  Prefixed<ReturnType<typeof contactColumns>, 'c_'>

const authenticateUpdatingContact = prepared((db, a: EndArgs & { version: string }) =>
  db
    .with('ended', (qb) =>
      guarded(
        qb
          .updateTable('auth_sessions')
          .set(unprefixed(a, 's_'))
          .where('id', '=', a.id)
          .where((eb) =>
            eb.exists(
              eb
                .selectFrom('contacts')
                .select('contact_id')
                .where('tenant_id', '=', a.tenantId)
                .where('contact_id', '=', a.contactId)
                .where(sql<string>`xmin::text`, '=', a.version)
                .forUpdate(),
            ),
          ),
        'authenticate',
        a.now,
      ).returning(SESSION_COLUMNS),
    )
    .with('written', (qb) =>
      qb
        .updateTable('contacts')
        .set(unprefixed(a, 'c_'))
        .where('tenant_id', '=', a.tenantId)
        .where('contact_id', '=', a.contactId)
        .where((eb) => eb.exists(eb.selectFrom('ended').select('ended.id')))
        .returning('contact_id'),
    )
    .selectFrom('ended')
    .selectAll(),
)

const authenticateInsertingContact = prepared((db, a: EndArgs) => {
  const c = unprefixed(a, 'c_')
  return db
    .with('ended', (qb) =>
      guarded(
        qb.updateTable('auth_sessions').set(unprefixed(a, 's_')).where('id', '=', a.id),
        'authenticate',
        a.now,
      ).returning(SESSION_COLUMNS),
    )
    .with('written', (qb) =>
      qb
        .insertInto('contacts')
        .columns([
          'tenant_id',
          'contact_id',
          'email',
          'user_name',
          'full_name',
          'first_name',
          'last_name',
          'verified_session_id',
          'verified_integration_id',
          'verified_subject',
          'verified_issuer',
          'verified_at',
          'verified_until',
          'created_at',
          'updated_at',
        ])
        .expression((eb) =>
          eb
            .selectFrom('ended')
            .select([
              sql<string>`${a.tenantId}::uuid`.as('tenant_id'),
              sql<string>`${a.contactId}::text`.as('contact_id'),
              sql<string | null>`${c.email}::text`.as('email'),
              sql<string | null>`${c.user_name}::text`.as('user_name'),
              sql<string | null>`${c.full_name}::text`.as('full_name'),
              sql<string | null>`${c.first_name}::text`.as('first_name'),
              sql<string | null>`${c.last_name}::text`.as('last_name'),
              sql<string>`${c.verified_session_id}::uuid`.as('verified_session_id'),
              sql<string>`${c.verified_integration_id}::uuid`.as('verified_integration_id'),
              sql<string | null>`${c.verified_subject}::text`.as('verified_subject'),
              sql<string | null>`${c.verified_issuer}::text`.as('verified_issuer'),
              sql<Date>`${c.verified_at}::timestamptz`.as('verified_at'),
              sql<Date | null>`${c.verified_until}::timestamptz`.as('verified_until'),
              sql<Date>`${c.updated_at}::timestamptz`.as('created_at'),
              sql<Date>`${c.updated_at}::timestamptz`.as('updated_at'),
            ]),
        )
        .returning('contact_id'),
    )
    .selectFrom('ended')
    .selectAll()
})

function isUniqueViolation(error: unknown): boolean {
  return (
    typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23505'
  )
}
