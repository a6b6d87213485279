/**
 * The callback's two statements against the database (src/db/auth-sessions.ts): claimByState,
 * which finds the session of a `state` and claims its code exchange only when the database alone
 * can tell the callback is good, and authenticateWithContact, which ends the session and writes
 * its contact both or neither, and neither when the contact changed after it was read.
 */
import { createHash, randomBytes } from 'node:crypto'
import pg from 'pg'
import { sql, type Insertable } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Identity } from '../../src/core/identity.ts'
import * as sessions from '../../src/db/auth-sessions.ts'
import type { ContactWrite } from '../../src/db/contacts.ts'
import type { AuthSessionRow, Database } from '../../src/db/schema.ts'
import { seedTenantRow, sessionValues } from '../helpers/session-rows.ts'
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/test-db.ts'

const PATH = '/idp/eu/oauth/callback/0123456789abcdef'
const REDIRECT_URI = `https://acme.example.com${PATH}`
const NOW = new Date('2026-11-27T10:05:00.000Z')
const EXPIRES_AT = new Date('2026-11-27T10:10:00.000Z')
const EARLIER = new Date('2026-11-27T10:01:00.000Z')

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
  attributes: { sub: 'ada-1' },
}

const hex = (value: string) => createHash('sha256').update(value).digest('hex')
const hash = (value: string) => createHash('sha256').update(value).digest()

describe('the callback statements', () => {
  let t: TestDatabase
  let tenantId: string

  beforeAll(async () => {
    t = await createTestDatabase()
    tenantId = await seedTenantRow(t.db, 'callbacks')
  })
  afterAll(async () => t?.close())

  /** An OPENED session bound to `cookie`, its state `state`, for a contact of its own. */
  async function opened(
    overrides: Partial<Insertable<Database['auth_sessions']>> = {},
  ): Promise<{ row: AuthSessionRow; state: string; cookie: string }> {
    const state = randomBytes(32).toString('base64url')
    const cookie = randomBytes(32).toString('base64url')
    const row = await t.db
      .insertInto('auth_sessions')
      .values(
        sessionValues(tenantId, {
          redirect_uri: REDIRECT_URI,
          status: 'OPENED',
          binding_hash: hash(cookie),
          state_hash: hash(state),
          code_verifier_sealed: 'v1.sealed-verifier',
          expires_at: EXPIRES_AT,
          opened_at: EARLIER,
          created_at: EARLIER,
          updated_at: EARLIER,
          ...overrides,
        }),
      )
      .returningAll()
      .executeTakeFirstOrThrow()
    return { row, state, cookie }
  }

  const rowOf = (id: string) =>
    t.db.selectFrom('auth_sessions').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
  const contactOf = (contactId: string) =>
    t.db
      .selectFrom('contacts')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('contact_id', '=', contactId)
      .executeTakeFirst()
  const versionOf = async (contactId: string) =>
    (
      await sql<{ v: string }>`select xmin::text as v from contacts
        where tenant_id = ${tenantId} and contact_id = ${contactId}`.execute(t.db)
    ).rows[0]!.v

  function claim(state: string, cookies: readonly string[], path = PATH, now = NOW) {
    return sessions.claimByState(t.db, {
      stateHash: hash(state),
      bindingHashes: cookies.map(hex),
      callbackPath: path,
      now,
    })
  }

  describe('claimByState', () => {
    it('finds and claims the session of a good callback', async () => {
      const { row, state, cookie } = await opened()
      const found = await claim(state, ['someone-elses-cookie', cookie])
      expect(found?.claimed).toBe(true)
      expect(found?.record.session.id).toBe(row.id)
      // The record is the row as it was before the claim: the checks read it.
      expect(found?.record.exchangeClaimedAt).toBeNull()
      expect(found?.contact).toEqual({ version: null, state: null })
      expect((await rowOf(row.id)).exchange_claimed_at).toEqual(NOW)
    })

    it('finds nothing for a state no session has', async () => {
      expect(await claim('no-such-state', [])).toBeUndefined()
    })

    const refusals: Array<
      [
        string,
        Partial<Insertable<Database['auth_sessions']>>,
        (s: { cookie: string }) => [string[], string, Date],
      ]
    > = [
      ['without the binding cookie', {}, () => [[], PATH, NOW]],
      ["with another browser's cookie", {}, () => [['another-cookie'], PATH, NOW]],
      ['on another callback path', {}, ({ cookie }) => [[cookie], '/idp/eu/oauth/callback', NOW]],
      ['after the expiry', {}, ({ cookie }) => [[cookie], PATH, EXPIRES_AT]],
      ['already claimed', { exchange_claimed_at: EARLIER }, ({ cookie }) => [[cookie], PATH, NOW]],
      [
        'a session of an earlier version (no redirect_uri)',
        { redirect_uri: null },
        ({ cookie }) => [[cookie], PATH, NOW],
      ],
    ]
    it.each(refusals)('finds but does not claim a session %s', async (_name, overrides, args) => {
      const s = await opened(overrides)
      const before = await rowOf(s.row.id)
      const [cookies, path, now] = args(s)
      const found = await claim(s.state, cookies, path, now)
      expect(found?.record.session.id).toBe(s.row.id)
      expect(found?.claimed).toBe(false)
      expect(await rowOf(s.row.id)).toEqual(before)
    })

    it('does not claim a session that is not OPENED', async () => {
      const s = await opened({
        status: 'FAILED',
        code_verifier_sealed: null,
        completed_at: EARLIER,
        failure: JSON.stringify({ code: 'x', message: 'y' }),
      })
      const found = await claim(s.state, [s.cookie])
      expect(found?.claimed).toBe(false)
      expect((await rowOf(s.row.id)).exchange_claimed_at).toBeNull()
    })

    it("reads the session's contact with its version", async () => {
      const s = await opened()
      await t.db
        .insertInto('contacts')
        .values({
          tenant_id: tenantId,
          contact_id: s.row.contact_id,
          email: 'ada@example.com',
          verified_subject: 'ada-1',
          verified_integration_id: s.row.integration_id,
          verified_at: EARLIER,
        })
        .execute()
      const found = await claim(s.state, [s.cookie])
      expect(found?.contact).toEqual({
        version: await versionOf(s.row.contact_id),
        state: {
          email: 'ada@example.com',
          userName: null,
          fullName: null,
          firstName: null,
          lastName: null,
          verifiedSubject: 'ada-1',
          verifiedIssuer: null,
          verifiedIntegrationId: s.row.integration_id,
          verifiedAt: EARLIER,
        },
      })
    })

    it('releaseClaim puts the row back as it was', async () => {
      const s = await opened()
      const before = await rowOf(s.row.id)
      const found = await claim(s.state, [s.cookie])
      expect(found?.claimed).toBe(true)
      await sessions.releaseClaim(t.db, found!.record, NOW)
      expect(await rowOf(s.row.id)).toEqual(before)
    })

    it('releaseClaim leaves a claim made by another callback alone', async () => {
      const s = await opened({ exchange_claimed_at: EARLIER })
      const found = await claim(s.state, [s.cookie])
      await sessions.releaseClaim(t.db, found!.record, NOW)
      expect((await rowOf(s.row.id)).exchange_claimed_at).toEqual(EARLIER)
    })
  })

  describe('authenticateWithContact', () => {
    function end(row: AuthSessionRow, version: string | null) {
      return sessions.authenticateWithContact(
        t.db,
        {
          id: row.id,
          columns: sessions.callbackEndColumns(
            { kind: 'authenticated', identity: IDENTITY, contactUpdate: 'FILLED' },
            null,
            NOW,
          ),
          now: NOW,
        },
        { version, state: null },
        write(row),
      )
    }
    function write(row: AuthSessionRow): ContactWrite {
      return {
        tenantId,
        contactId: row.contact_id,
        plan: {
          outcome: 'FILLED',
          values: {
            email: IDENTITY.email,
            userName: IDENTITY.userName,
            fullName: IDENTITY.fullName,
            firstName: IDENTITY.firstName,
            lastName: IDENTITY.lastName,
          },
          verifiedSubject: 'ada-1',
          verifiedIssuer: null,
          verifiedUntil: null,
        },
        integrationId: row.integration_id,
        sessionId: row.id,
        now: NOW,
      }
    }

    it('ends the session and creates its contact', async () => {
      const { row } = await opened()
      const ended = await end(row, null)
      expect(ended?.status).toBe('AUTHENTICATED')
      expect(ended?.contact_update).toBe('FILLED')
      expect(await contactOf(row.contact_id)).toMatchObject({
        email: 'ada@example.com',
        full_name: 'Ada Lovelace',
        verified_session_id: row.id,
        verified_subject: 'ada-1',
        verified_at: NOW,
      })
    })

    it('writes nothing when the contact was created after it was read', async () => {
      const { row } = await opened()
      await t.db
        .insertInto('contacts')
        .values({ tenant_id: tenantId, contact_id: row.contact_id, email: 'mallory@example.com' })
        .execute()
      const before = await contactOf(row.contact_id)
      expect(await end(row, null)).toBeUndefined()
      expect((await rowOf(row.id)).status).toBe('OPENED')
      expect(await contactOf(row.contact_id)).toEqual(before)
    })

    it('ends the session and updates its contact as it was read', async () => {
      const { row } = await opened()
      await t.db
        .insertInto('contacts')
        .values({ tenant_id: tenantId, contact_id: row.contact_id })
        .execute()
      const ended = await end(row, await versionOf(row.contact_id))
      expect(ended?.status).toBe('AUTHENTICATED')
      expect(await contactOf(row.contact_id)).toMatchObject({
        email: 'ada@example.com',
        verified_session_id: row.id,
      })
    })

    it('writes nothing when the contact changed after it was read', async () => {
      const { row } = await opened()
      await t.db
        .insertInto('contacts')
        .values({ tenant_id: tenantId, contact_id: row.contact_id })
        .execute()
      const version = await versionOf(row.contact_id)
      await t.db
        .updateTable('contacts')
        .set({ email: 'mallory@example.com' })
        .where('contact_id', '=', row.contact_id)
        .execute()
      const before = await contactOf(row.contact_id)
      expect(await end(row, version)).toBeUndefined()
      expect((await rowOf(row.id)).status).toBe('OPENED')
      expect(await contactOf(row.contact_id)).toEqual(before)
    })

    it('writes no contact when the session ended elsewhere', async () => {
      const { row } = await opened()
      await t.db
        .updateTable('auth_sessions')
        .set({ status: 'CANCELLED', completed_at: NOW, code_verifier_sealed: null })
        .where('id', '=', row.id)
        .execute()
      expect(await end(row, null)).toBeUndefined()
      expect(await contactOf(row.contact_id)).toBeUndefined()
    })

    // A second connection holds the contact's row lock: only PostgreSQL has a second connection.
    it.skipIf(!TEST_DATABASE_URL)(
      'waits for a concurrent change to the contact and then writes nothing (PostgreSQL only)',
      async () => {
        if (t.target.kind !== 'postgres') throw new Error('needs PostgreSQL')
        const { row } = await opened()
        await t.db
          .insertInto('contacts')
          .values({ tenant_id: tenantId, contact_id: row.contact_id })
          .execute()
        const version = await versionOf(row.contact_id)
        const other = new pg.Client({
          connectionString: t.target.url,
          options: `-c search_path=${t.target.schema}`,
        })
        await other.connect()
        try {
          await other.query('begin')
          await other.query(
            `update contacts set email = 'mallory@example.com' where contact_id = $1`,
            [row.contact_id],
          )
          const ending = end(row, version)
          // The statement waits on the row lock; let it get there before the other commits.
          await new Promise((resolve) => setTimeout(resolve, 200))
          await other.query('commit')
          expect(await ending).toBeUndefined()
        } finally {
          await other.end()
        }
        expect((await rowOf(row.id)).status).toBe('OPENED')
        expect((await contactOf(row.contact_id))?.email).toBe('mallory@example.com')
      },
    )
  })
})
