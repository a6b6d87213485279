/**
 * Every statement that changes a session's status, against the database, for every status the
 * session may be in, before and after its expiry: it changes the row exactly when the state
 * machine's table (core/auth-session.ts TRANSITIONS) allows the event, writes the table's target
 * status, and a finished session always has its completion time and no sealed verifier. The
 * database's own CHECK constraint refuses rows that break that rule, and its migration cleared
 * the verifiers that older code left on cancelled rows.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { Migrator, sql, type Updateable } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrations } from '../../migrations/index.ts'
import {
  AUTH_SESSION_STATUSES,
  isTerminal,
  TRANSITIONS,
  type AuthSessionEvent,
  type AuthSessionStatus,
} from '../../src/core/auth-session.ts'
import type { Identity } from '../../src/core/identity.ts'
import * as sessions from '../../src/db/auth-sessions.ts'
import type { ContactWrite } from '../../src/db/contacts.ts'
import { migrateToLatest, type Db } from '../../src/db/database.ts'
import type { AuthSessionRow, Database } from '../../src/db/schema.ts'
import { seedTenantRow, sessionValues } from '../helpers/session-rows.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/test-db.ts'

const EXPIRES_AT = new Date('2026-11-27T10:10:00.000Z')
const BEFORE = new Date('2026-11-27T10:05:00.000Z')
const AFTER = new Date('2026-11-27T10:15:00.000Z')
const CREATED = new Date('2026-11-27T10:00:00.000Z')
const EARLIER = new Date('2026-11-27T10:01:00.000Z')

interface Way {
  readonly event: AuthSessionEvent
  /** Applies the statement to `row` at `now`; true when it says it changed the row. */
  readonly apply: (db: Db, row: AuthSessionRow, now: Date) => Promise<boolean>
}

/** Each production statement that moves a session from one status to another. */
const WAYS: Record<string, Way> = {
  'bindSession (open)': {
    event: 'open',
    apply: async (db, row, now) =>
      (await sessions.bindSession(db, {
        id: row.id,
        bindingHash: randomBytes(32),
        stateHash: randomBytes(32),
        codeVerifierSealed: 'v1.new-sealed-verifier',
        openid: false,
        now,
      })) !== undefined,
  },
  'endCallback, authenticated (authenticate)': {
    event: 'authenticate',
    apply: async (db, row, now) =>
      (await sessions.endCallback(
        db,
        row.id,
        { kind: 'authenticated', identity: IDENTITY, contactUpdate: 'FILLED' },
        null,
        now,
      )) !== undefined,
  },
  'endCallback, awaiting its code (await_confirmation)': {
    event: 'await_confirmation',
    apply: async (db, row, now) =>
      (await sessions.endCallback(
        db,
        row.id,
        {
          kind: 'awaiting_confirmation',
          identity: IDENTITY,
          confirmationCodeSealed: 'v1.sealed-code',
          attempts: 5,
        },
        null,
        now,
      )) !== undefined,
  },
  'endCallback, failed (fail)': {
    event: 'fail',
    apply: async (db, row, now) =>
      (await sessions.endCallback(
        db,
        row.id,
        { kind: 'failed', failure: { code: 'access_denied', message: 'declined' } },
        null,
        now,
      )) !== undefined,
  },
  'authenticateWithContact, a new contact (authenticate)': {
    event: 'authenticate',
    apply: async (db, row, now) =>
      (await sessions.authenticateWithContact(
        db,
        { id: row.id, columns: authenticatedColumns(now), now },
        { version: null, state: null },
        contactWrite(row, `new-${randomUUID()}`, now),
      )) !== undefined,
  },
  'authenticateWithContact, a contact as it was read (authenticate)': {
    event: 'authenticate',
    apply: async (db, row, now) => {
      const contactId = `seen-${randomUUID()}`
      await db
        .insertInto('contacts')
        .values({ tenant_id: row.tenant_id, contact_id: contactId })
        .execute()
      const { version } = await sql<{ version: string }>`select xmin::text as version
        from contacts where contact_id = ${contactId}`
        .execute(db)
        .then((r) => r.rows[0]!)
      return (
        (await sessions.authenticateWithContact(
          db,
          { id: row.id, columns: authenticatedColumns(now), now },
          { version, state: null },
          contactWrite(row, contactId, now),
        )) !== undefined
      )
    },
  },
  'confirmSession, the right code (confirm)': {
    event: 'confirm',
    apply: async (db, row, now) =>
      (await sessions.confirmSession(db, row.tenant_id, row.id, 'FILLED', now)) !== undefined,
  },
  'rejectConfirmation, no attempts left (reject_confirmation)': {
    event: 'reject_confirmation',
    apply: async (db, row, now) =>
      (await sessions.rejectConfirmation(
        db,
        row.tenant_id,
        row.id,
        { code: 'confirmation_failed', message: 'wrong codes' },
        now,
      )) !== undefined,
  },
  'cancelSession (cancel)': {
    event: 'cancel',
    apply: async (db, row, now) =>
      (await sessions.cancelSession(db, row.tenant_id, row.id, now)) !== undefined,
  },
  'cancelOpenSessionsOf, deleting the integration (cancel)': {
    event: 'cancel',
    apply: async (db, row, now) =>
      (await sessions.cancelOpenSessionsOf(db, row.tenant_id, row.integration_id, now)).includes(
        row.id,
      ),
  },
  'insertSessionSuperseding, a newer link (cancel)': {
    event: 'cancel',
    apply: async (db, row, now) => {
      const { superseded } = await sessions.insertSessionSuperseding(db, {
        id: randomUUID(),
        tenantId: row.tenant_id,
        integrationId: row.integration_id,
        conversationId: row.conversation_id,
        contactId: row.contact_id,
        redirectRoute: 'IDP',
        redirectUri: 'https://acme.example.com/idp/eu/oauth/callback/0123456789abcdef',
        linkHash: randomBytes(32),
        expiresAt: new Date(now.getTime() + 600_000),
        prompt: null,
        maxAgeSeconds: null,
        loginHint: null,
        acrValues: null,
        now,
      })
      return superseded.some((s) => s.id === row.id)
    },
  },
  'expireSessions, the sweeper (expire)': {
    event: 'expire',
    apply: async (db, row, now) =>
      (await sessions.expireSessions(db, now)).some((s) => s.id === row.id),
  },
}

const IDENTITY: Identity = {
  subject: 'ada-1',
  issuer: null,
  emailVerified: null,
  authTime: null,
  acr: null,
  amr: null,
  email: 'ada@example.com',
  userName: 'ada',
  fullName: 'Ada Lovelace',
  firstName: 'Ada',
  lastName: 'Lovelace',
  attributes: { sub: 'ada' },
}

function authenticatedColumns(now: Date) {
  return sessions.callbackEndColumns(
    { kind: 'authenticated', identity: IDENTITY, contactUpdate: 'FILLED' },
    null,
    now,
  )
}

function contactWrite(row: AuthSessionRow, contactId: string, now: Date): ContactWrite {
  return {
    tenantId: row.tenant_id,
    contactId,
    plan: {
      outcome: 'FILLED',
      values: {
        email: IDENTITY.email,
        userName: IDENTITY.userName,
        fullName: IDENTITY.fullName,
        firstName: IDENTITY.firstName,
        lastName: IDENTITY.lastName,
      },
      verifiedSubject: IDENTITY.subject,
      verifiedIssuer: null,
      verifiedUntil: null,
    },
    integrationId: row.integration_id,
    sessionId: row.id,
    now,
  }
}

function inTime(event: AuthSessionEvent, now: Date): boolean {
  const { timing } = TRANSITIONS[event]
  if (timing === 'any_time') return true
  const expired = now >= EXPIRES_AT
  return timing === 'from_expiry' ? expired : !expired
}

describe('session status changes against the database', () => {
  let t: TestDatabase
  let tenantId: string

  beforeAll(async () => {
    t = await createTestDatabase()
    tenantId = await seedTenantRow(t.db, 'transitions')
  })
  afterAll(async () => t?.close())

  /** A session in `status`, with the columns a real one in that status has. */
  async function sessionIn(status: AuthSessionStatus): Promise<AuthSessionRow> {
    const opened = status !== 'PENDING'
    return t.db
      .insertInto('auth_sessions')
      .values(
        sessionValues(tenantId, {
          contact_id: 'contact',
          status,
          binding_hash: opened ? randomBytes(32) : null,
          state_hash: opened ? randomBytes(32) : null,
          code_verifier_sealed: status === 'OPENED' ? 'v1.sealed-verifier' : null,
          identity:
            status === 'AUTHENTICATED' || status === 'AWAITING_CONFIRMATION'
              ? JSON.stringify(IDENTITY)
              : null,
          confirmation_code_sealed: status === 'AWAITING_CONFIRMATION' ? 'v1.sealed-code' : null,
          confirmation_attempts_left: status === 'AWAITING_CONFIRMATION' ? 5 : null,
          failure: status === 'FAILED' ? JSON.stringify({ code: 'x', message: 'y' }) : null,
          expires_at: EXPIRES_AT,
          opened_at: opened ? EARLIER : null,
          completed_at: isTerminal(status) ? EARLIER : null,
          created_at: CREATED,
          updated_at: EARLIER,
        }),
      )
      .returningAll()
      .executeTakeFirstOrThrow()
  }

  const cases = Object.entries(WAYS).flatMap(([name, way]) =>
    AUTH_SESSION_STATUSES.flatMap((status) =>
      [
        ['before', BEFORE],
        ['after', AFTER],
      ].map(([when, now]) => [name, status, when as string, now as Date, way] as const),
    ),
  )

  it('covers every statement, status and side of the expiry', () => {
    expect(cases).toHaveLength(Object.keys(WAYS).length * AUTH_SESSION_STATUSES.length * 2)
    const events = new Set(Object.values(WAYS).map((w) => w.event))
    expect([...events].sort()).toEqual(Object.keys(TRANSITIONS).sort())
  })

  it.each(cases)('%s on a %s session, %s the expiry', async (_name, status, _when, now, way) => {
    const before = await sessionIn(status)
    const changed = await way.apply(t.db, before, now)
    const after = await t.db
      .selectFrom('auth_sessions')
      .selectAll()
      .where('id', '=', before.id)
      .executeTakeFirstOrThrow()
    const { from, to } = TRANSITIONS[way.event]
    const allowed = from.includes(status) && inTime(way.event, now)
    expect(changed).toBe(allowed)
    if (!allowed) {
      expect(after).toEqual(before)
      return
    }
    expect(after.status).toBe(to)
    expect(after.updated_at).toEqual(now)
    if (to !== 'OPENED') expect(after.code_verifier_sealed).toBeNull()
    if (isTerminal(to)) {
      expect(after.completed_at).toEqual(way.event === 'expire' ? EXPIRES_AT : now)
      expect(after.confirmation_code_sealed).toBeNull()
      expect(after.confirmation_code_hash).toBeNull()
    } else {
      expect(after.completed_at).toBeNull()
    }
  })

  describe('the CHECK constraint', () => {
    const violations: Array<[string, AuthSessionStatus, Updateable<Database['auth_sessions']>]> = [
      ['a finished session with a sealed verifier', 'CANCELLED', { code_verifier_sealed: 'v1.x' }],
      ['a finished session without a completion time', 'EXPIRED', { completed_at: null }],
      ['an open session with a completion time', 'OPENED', { completed_at: EARLIER }],
      [
        'a finished session with a confirmation code',
        'AUTHENTICATED',
        { confirmation_code_hash: Buffer.from('x') },
      ],
      [
        'a session waiting for its code with a verifier',
        'AWAITING_CONFIRMATION',
        { code_verifier_sealed: 'v1.x' },
      ],
      [
        'a session waiting for its code without one',
        'AWAITING_CONFIRMATION',
        { confirmation_code_sealed: null },
      ],
      [
        'a session before the exchange with a code',
        'PENDING',
        { confirmation_code_sealed: 'v1.x' },
      ],
    ]
    it.each(violations)('refuses %s', async (_name, status, change) => {
      const row = await sessionIn(status)
      const error = await t.db
        .updateTable('auth_sessions')
        .set(change)
        .where('id', '=', row.id)
        .execute()
        .then(
          () => null,
          (e: { code?: string; constraint?: string }) => e,
        )
      expect(error).toMatchObject({ code: '23514', constraint: 'auth_sessions_finished_check' })
    })
  })
})

describe('the migration that adds the CHECK constraint', () => {
  let t: TestDatabase
  afterAll(async () => t?.close())

  it('first clears the verifiers that cancelled rows kept', async () => {
    t = await createTestDatabase({ migrate: false })
    const schema = (await sql<{ s: string }>`select current_schema() as s`.execute(t.db)).rows[0]!.s
    const migrator = new Migrator({
      db: t.db,
      provider: { getMigrations: async () => migrations },
      migrationTableSchema: schema,
    })
    const { error } = await migrator.migrateTo('2026_11_27_0010_session_expiry_idx')
    expect(error).toBeUndefined()
    const tenant = await t.db
      .insertInto('tenants')
      .values({ slug: 'old', name: 'Old' })
      .returning('id')
      .executeTakeFirstOrThrow()
    const row = (status: AuthSessionStatus, verifier: string | null, completed: Date | null) => ({
      id: randomUUID(),
      tenant_id: tenant.id,
      integration_id: randomUUID(),
      conversation_id: 'c',
      contact_id: 'c',
      redirect_route: 'IDP' as const,
      status,
      link_hash: randomBytes(32),
      code_verifier_sealed: verifier,
      expires_at: EXPIRES_AT,
      completed_at: completed,
    })
    // As the supersede statement wrote them for a while: CANCELLED, verifier kept.
    const kept = row('CANCELLED', 'v1.left-behind', EARLIER)
    const open = row('OPENED', 'v1.in-use', null)
    await t.db.insertInto('auth_sessions').values([kept, open]).execute()

    await migrateToLatest(t.db)
    const after = await t.db
      .selectFrom('auth_sessions')
      .select(['id', 'status', 'code_verifier_sealed', 'completed_at'])
      .orderBy('status')
      .execute()
    expect(after).toEqual([
      { id: kept.id, status: 'CANCELLED', code_verifier_sealed: null, completed_at: EARLIER },
      { id: open.id, status: 'OPENED', code_verifier_sealed: 'v1.in-use', completed_at: null },
    ])
  })
})
