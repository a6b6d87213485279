/**
 * A key sees its own tenant only, for every query and mutation of the sign-in: another tenant's
 * integration, session, conversation and contact look exactly like ones that do not exist, and
 * trying changes nothing for that tenant. Then roles (no key: UNAUTHENTICATED) and the input
 * rules of startEndUserAuth (BAD_USER_INPUT naming the field; never a masked "Unexpected error.").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CANCEL,
  CONTACT,
  contact as contactOf,
  createFlowApp,
  poll as pollSession,
  POLL,
  seedProviderIntegration,
  SESSIONS,
  signIn as signInAt,
  start as startSignIn,
  START,
  type Cancelled,
  type Listed,
  type StartInput,
  type StartedSignIn,
} from '../helpers/flow.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import { codes, type GqlResult, type SeededTenant, type TestApp } from '../helpers/test-app.ts'

describe('tenant isolation, roles and input rules of the sign-in', () => {
  let t: TestApp
  let provider: TestProvider
  let acme: SeededTenant
  let globex: SeededTenant
  const integrationOf: Record<string, string> = {}
  /** globex's own: a PENDING session, a conversation only globex used, a filled contact. */
  let globexPending: StartedSignIn['session']
  const globexConversation = 'globex-only-conversation'
  const globexContact = 'globex-only-contact'

  beforeAll(async () => {
    t = await createFlowApp()
    provider = await startTestProvider({
      accounts: {
        anna: { email: 'anna@acme.example', name: 'Anna Acme' },
        gus: { email: 'gus@globex.example', name: 'Gus Globex' },
      },
    })
    acme = await t.seedTenant('iso-acme')
    globex = await t.seedTenant('iso-globex')
    for (const tenant of [acme, globex]) {
      // One OAuth client per tenant: the service refuses a client shared across tenants (mix-up).
      const created = await seedProviderIntegration(
        t,
        tenant,
        provider,
        { clientId: tenant.slug, clientSecret: 'iso-secret-0123456789' },
        {
          name: 'oidc',
          whoAmIMapping: '{userName: sub, fullName: name, email: email}',
          issuer: provider.issuer,
        },
      )
      integrationOf[tenant.slug] = created.id
    }
    // globex: one finished sign-in (fills its contact), then an open one on the same conversation.
    await signIn(globex, globexConversation, 'gus', globexContact)
    globexPending = (
      await start(globex, { conversationId: globexConversation, contactId: globexContact })
    ).session
  })
  afterAll(async () => {
    await t?.close()
    await provider?.close()
  })

  async function start(tenant: SeededTenant, input: Omit<StartInput, 'integrationId'>) {
    return startSignIn(t, tenant.agentKey, { integrationId: integrationOf[tenant.slug]!, ...input })
  }

  async function signIn(
    tenant: SeededTenant,
    conversationId: string,
    account: string,
    contactId?: string,
  ) {
    const { started, result } = await signInAt(
      t,
      tenant.agentKey,
      {
        integrationId: integrationOf[tenant.slug]!,
        conversationId,
        ...(contactId ? { contactId } : {}),
      },
      account,
    )
    expect(result.status).toBe(200)
    await result.body?.cancel()
    return started.session.id
  }

  async function poll(tenant: SeededTenant, id: string) {
    return pollSession(t, tenant.agentKey, id)
  }

  async function list(tenant: SeededTenant, conversationId: string) {
    const listed = await t.gql<Listed>(tenant.agentKey, SESSIONS, { conversationId })
    expect(listed.errors).toBeUndefined()
    return listed.data!.authSessions
  }

  async function contact(tenant: SeededTenant, contactId: string) {
    return contactOf(t, tenant.agentKey, contactId)
  }

  /** Everything globex can see of its own sign-ins, to compare before and after. */
  async function globexView() {
    return {
      pending: await poll(globex, globexPending.id),
      sessions: await list(globex, globexConversation),
      contact: await contact(globex, globexContact),
    }
  }

  async function rowCounts() {
    const count = async (table: 'auth_sessions' | 'contacts') =>
      Number(
        (
          await t.database.db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      )
    return { sessions: await count('auth_sessions'), contacts: await count('contacts') }
  }

  function expectError(result: GqlResult<unknown>, code: string) {
    expect(codes(result)).toEqual([code])
    // A non-null root field nulls `data`; a nullable one (authSession, contact) is itself null.
    expect(Object.values(result.data ?? {}).every((value) => value === null)).toBe(true)
    expect(result.errors![0]!.message).not.toBe('Unexpected error.')
  }

  it('has set up globex: a finished sign-in with a filled contact, and a PENDING one', async () => {
    const view = await globexView()
    expect(view.pending).toMatchObject({
      status: 'PENDING',
      conversationId: globexConversation,
      contactId: globexContact,
    })
    expect(view.sessions.map((s) => s.status)).toEqual(['PENDING', 'AUTHENTICATED'])
    expect(view.contact).toMatchObject({
      contactId: globexContact,
      email: 'gus@globex.example',
      userName: 'gus',
    })
  })

  describe("another tenant's things look like missing ones, and stay as they were", () => {
    it("startEndUserAuth with another tenant's integrationId: NOT_FOUND, nothing written", async () => {
      const before = { view: await globexView(), rows: await rowCounts() }
      for (const conversationId of [globexConversation, 'acme-new-conversation']) {
        const result = await t.gql(acme.agentKey, START, {
          input: {
            integrationId: integrationOf[globex.slug],
            conversationId,
            contactId: globexContact,
          },
        })
        expectError(result, 'NOT_FOUND')
        const unknown = await t.gql(acme.agentKey, START, {
          input: { integrationId: crypto.randomUUID(), conversationId, contactId: globexContact },
        })
        expectError(unknown, 'NOT_FOUND')
        // Only the id differs between the two messages.
        expect(result.errors![0]!.message.replace(integrationOf[globex.slug]!, 'ID')).toBe(
          unknown.errors![0]!.message.replace(/[0-9a-f-]{36}/, 'ID'),
        )
      }
      expect(await globexView()).toEqual(before.view)
      expect(await rowCounts()).toEqual(before.rows)
      expect(await list(acme, globexConversation)).toEqual([])
    })

    it("cancelEndUserAuth of another tenant's session: NOT_FOUND, and it stays PENDING", async () => {
      const before = await globexView()
      expectError(await t.gql(acme.agentKey, CANCEL, { id: globexPending.id }), 'NOT_FOUND')
      expectError(await t.gql(acme.adminKey, CANCEL, { id: globexPending.id }), 'NOT_FOUND')
      expectError(await t.gql(acme.agentKey, CANCEL, { id: crypto.randomUUID() }), 'NOT_FOUND')
      expectError(await t.gql(acme.agentKey, CANCEL, { id: 'not-a-uuid' }), 'NOT_FOUND')
      expect(await globexView()).toEqual(before)
    })

    it("authSession of another tenant's session: null, exactly like a random uuid", async () => {
      const theirs = await t.gql(acme.agentKey, POLL, { id: globexPending.id })
      const random = await t.gql(acme.agentKey, POLL, { id: crypto.randomUUID() })
      const malformed = await t.gql(acme.agentKey, POLL, { id: 'not-a-uuid' })
      for (const result of [theirs, random, malformed]) {
        expect(result.errors).toBeUndefined()
        expect(result.data).toEqual({ authSession: null })
      }
      expect(await t.gql(acme.adminKey, POLL, { id: globexPending.id })).toMatchObject({
        data: { authSession: null },
      })
      expect((await poll(globex, globexPending.id))?.status).toBe('PENDING')
    })

    it('authSessions of a conversation only the other tenant used: []', async () => {
      expect(await list(acme, globexConversation)).toEqual([])
      expect(await list(acme, 'a-conversation-nobody-used')).toEqual([])
      expect((await list(globex, globexConversation)).length).toBe(2)
    })

    it("contact of the other tenant's contact: null", async () => {
      expect(await contact(acme, globexContact)).toBeNull()
      expect(await contact(acme, 'a-contact-nobody-has')).toBeNull()
      expect(await contact(globex, globexContact)).toMatchObject({ email: 'gus@globex.example' })
    })

    it('the same conversation and contact ids in two tenants stay apart', async () => {
      const before = await globexView()
      // acme starts on globex's conversation and contact ids: globex's open session is not superseded.
      const own = await start(acme, {
        conversationId: globexConversation,
        contactId: globexContact,
      })
      expect(own.session.status).toBe('PENDING')
      expect(await globexView()).toEqual(before)
      expect((await list(acme, globexConversation)).map((s) => s.id)).toEqual([own.session.id])

      // acme's finished sign-in fills acme's contact of that id, not globex's.
      const id = await signIn(acme, globexConversation, 'anna', globexContact)
      expect((await poll(acme, own.session.id))?.status).toBe('CANCELLED') // superseded within acme
      expect(await poll(acme, id)).toMatchObject({
        status: 'AUTHENTICATED',
        identity: { email: 'anna@acme.example' },
      })
      expect(await contact(acme, globexContact)).toMatchObject({
        email: 'anna@acme.example',
        userName: 'anna',
      })
      expect(await globexView()).toEqual(before)
      expect(await poll(globex, id)).toBeNull()
    })
  })

  describe('roles', () => {
    const operations: Array<[string, string, () => Record<string, unknown>]> = [
      [
        'startEndUserAuth',
        START,
        () => ({
          input: { integrationId: integrationOf[acme.slug], conversationId: 'no-key-conversation' },
        }),
      ],
      ['cancelEndUserAuth', CANCEL, () => ({ id: globexPending.id })],
      ['authSession', POLL, () => ({ id: globexPending.id })],
      ['authSessions', SESSIONS, () => ({ conversationId: globexConversation })],
      ['contact', CONTACT, () => ({ contactId: globexContact })],
    ]

    it.each(operations)(
      '%s without a key (or with an unknown one): UNAUTHENTICATED, nothing written',
      async (_name, query, variables) => {
        const before = { view: await globexView(), rows: await rowCounts() }
        for (const key of [null, 'euo_0000000000000000_' + 'A'.repeat(43), 'not-a-key']) {
          const result = await t.gql(key, query, variables())
          expectError(result, 'UNAUTHENTICATED')
          expect(JSON.stringify(result)).not.toContain('gus')
        }
        expect(await globexView()).toEqual(before.view)
        expect(await rowCounts()).toEqual(before.rows)
        expect(await list(acme, 'no-key-conversation')).toEqual([])
      },
    )

    it.each([
      ['AGENT', () => acme.agentKey],
      ['ADMIN', () => acme.adminKey],
    ])('an %s key starts, reads, lists and cancels', async (role, key) => {
      const conversationId = `role-${role}`
      const { session } = await startSignIn(t, key(), {
        integrationId: integrationOf[acme.slug]!,
        conversationId,
      })
      expect(session).toMatchObject({
        status: 'PENDING',
        conversationId,
        contactId: conversationId,
      })

      const read = await pollSession(t, key(), session.id)
      expect(read).toMatchObject({ id: session.id, status: 'PENDING' })
      const listed = await t.gql<Listed>(key(), SESSIONS, { conversationId })
      expect(listed.data!.authSessions.map((s) => s.id)).toEqual([session.id])
      const noContactYet = await t.gql(key(), CONTACT, { contactId: conversationId })
      expect(noContactYet).toMatchObject({ data: { contact: null } })

      const cancelled = await t.gql<Cancelled>(key(), CANCEL, { id: session.id })
      expect(cancelled.errors).toBeUndefined()
      expect(cancelled.data!.cancelEndUserAuth.session).toEqual({
        id: session.id,
        status: 'CANCELLED',
      })
      // Cancelling again changes nothing and says what it is.
      const again = await t.gql<Cancelled>(key(), CANCEL, { id: session.id })
      expect(again.data!.cancelEndUserAuth.session.status).toBe('CANCELLED')
    })

    it("an AGENT key reads its tenant's filled contact", async () => {
      expect(await contact(globex, globexContact)).toMatchObject({
        contactId: globexContact,
        userName: 'gus',
      })
    })
  })

  describe('input rules of startEndUserAuth', () => {
    const cases: Array<[string, string, string]> = [
      ['an empty conversationId', 'conversationId', ''],
      ['a whitespace conversationId', 'conversationId', ' \u00a0  '],
      ['a 257-character conversationId', 'conversationId', 'c'.repeat(257)],
      ['a conversationId with a NUL', 'conversationId', 'conv\u0000x'],
      ['a conversationId with a newline', 'conversationId', 'conv\nx'],
      ['a conversationId with an escape', 'conversationId', 'conv\u001b[31mx'],
      ['a conversationId with DEL', 'conversationId', 'conv\u007f'],
      ['an empty contactId', 'contactId', '   '],
      ['a 257-character contactId', 'contactId', 'k'.repeat(257)],
      ['a contactId with a tab', 'contactId', 'contact\tx'],
    ]

    it.each(cases)(
      'refuses %s with BAD_USER_INPUT naming the field, and writes nothing',
      async (_name, field, value) => {
        const before = await rowCounts()
        const input = {
          integrationId: integrationOf[acme.slug],
          conversationId: 'valid-conversation',
          [field]: value,
        }
        const result = await t.gql(acme.agentKey, START, { input })
        expectError(result, 'BAD_USER_INPUT')
        expect(result.errors![0]!.message).toContain(field)
        expect(await rowCounts()).toEqual(before)
      },
    )

    it('accepts 256 characters, and trims surrounding spaces', async () => {
      const long = 'c'.repeat(256)
      expect((await start(acme, { conversationId: long })).session.conversationId).toBe(long)
      const trimmed = await start(acme, {
        conversationId: '  padded-conversation  ',
        contactId: ' padded-contact ',
      })
      expect(trimmed.session).toMatchObject({
        conversationId: 'padded-conversation',
        contactId: 'padded-contact',
      })
    })

    it.each([
      ['not a uuid', 'not-a-uuid'],
      ['an empty id', ''],
      ['a uuid with extra characters', `${crypto.randomUUID()}x`],
      ['a very long id', 'a'.repeat(5000)],
      ['an id with a NUL', 'abc\u0000def'],
      ['an id with SQL in it', "' or '1'='1"],
    ])(
      'answers a malformed integrationId (%s) with NOT_FOUND or BAD_USER_INPUT, never a masked error',
      async (_name, integrationId) => {
        const before = await rowCounts()
        const result = await t.gql(acme.agentKey, START, {
          input: { integrationId, conversationId: 'malformed-integration' },
        })
        expect(result.data ?? null).toBeNull()
        expect(codes(result)).toHaveLength(1)
        expect(['NOT_FOUND', 'BAD_USER_INPUT']).toContain(codes(result)[0])
        expect(result.errors![0]!.message).not.toBe('Unexpected error.')
        expect(await rowCounts()).toEqual(before)
      },
    )
  })

  describe('odd arguments of the reads and of cancel', () => {
    const values: Array<[string, string]> = [
      ['a NUL', 'abc\u0000def'],
      ['a very long string', 'x'.repeat(10_000)],
      ['an empty string', ''],
      ['a lone surrogate', 'abc\ud800def'],
    ]
    const operations: Array<[string, string, (v: string) => Record<string, unknown>, unknown]> = [
      ['authSession', POLL, (id) => ({ id }), { authSession: null }],
      ['authSessions', SESSIONS, (conversationId) => ({ conversationId }), { authSessions: [] }],
      ['contact', CONTACT, (contactId) => ({ contactId }), { contact: null }],
      ['cancelEndUserAuth', CANCEL, (id) => ({ id }), null],
    ]
    const cases = operations.flatMap(([name, query, variables, empty]) =>
      values.map(([what, value]) => [name, what, query, variables(value), empty] as const),
    )

    it.each(cases)(
      '%s with %s: nothing found or BAD_USER_INPUT, never a masked error',
      async (_name, _what, query, variables, empty) => {
        const result = await t.gql(acme.agentKey, query, variables)
        expect(result.errors?.map((e) => e.message) ?? []).not.toContain('Unexpected error.')
        if (result.errors) {
          expect(codes(result).length).toBe(1)
          expect(['NOT_FOUND', 'BAD_USER_INPUT']).toContain(codes(result)[0])
          if (empty === null) expect(result.data ?? null).toBeNull()
        } else {
          expect(result.data).toEqual(empty)
        }
      },
    )
  })
})
