/**
 * How sessions end when the provider side goes wrong after the callback, how the contact is
 * filled, and the expiry sweeper: against oidc-provider, with the real outbound client.
 */
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { findContact } from '../../src/db/contacts.ts'
import { sweepExpiredSessions } from '../../src/services/maintenance.ts'
import {
  contact,
  createFlowApp,
  poll,
  seedProviderIntegration,
  signIn as signInAt,
  start,
} from '../helpers/flow.ts'
import { startTestProvider, type TestProvider } from '../helpers/oidc-provider.ts'
import type { SeededTenant, TestApp } from '../helpers/test-app.ts'

const SECRET = 'app-secret-0123456789'

describe('sign-in outcomes', () => {
  let t: TestApp
  let provider: TestProvider
  let tenant: SeededTenant
  let clock = Date.now()

  beforeAll(async () => {
    t = await createFlowApp({ now: () => new Date(clock) })
    provider = await startTestProvider({
      accounts: {
        carol: { email: 'carol@example.com', name: 'Carol Danvers' },
        dave: { email: 'not-an-email', name: 'Dave' },
      },
    })
    tenant = await t.seedTenant('outcomes')
  })
  afterAll(async () => {
    await t?.close()
    await provider?.close()
  })

  let n = 0
  /** An integration of the provider's one client, `app` (which every integration here shares). */
  async function integration(overrides: Record<string, unknown> = {}) {
    const created = await seedProviderIntegration(
      t,
      tenant,
      provider,
      { clientId: 'app', clientSecret: SECRET },
      { name: `oidc ${++n}`, ...overrides },
    )
    return created.id
  }

  async function signIn(
    integrationId: string,
    account: string,
    conversationId = `conv-${++n}`,
    contactId?: string,
  ) {
    const { started, result: page } = await signInAt(
      t,
      tenant.agentKey,
      { integrationId, conversationId, ...(contactId ? { contactId } : {}) },
      account,
    )
    const id = started.session.id
    const session = (await poll(t, tenant.agentKey, id))!
    return { id, page, html: await page.text(), session }
  }

  it('fails with provider_error when the token endpoint refuses the client, after one token request', async () => {
    const id = await integration({ clientSecret: 'the-wrong-secret-0123' })
    const before = provider.tokenRequests()
    const { session, html } = await signIn(id, 'carol')
    expect(provider.tokenRequests()).toBe(before + 1)
    expect(session.status).toBe('FAILED')
    expect(session.failure).toEqual({
      code: 'provider_error',
      message: expect.stringContaining('invalid_client'),
    })
    expect(html).toContain('Sign-in did not work')
    expect(html).not.toContain('invalid_client')
  })

  it('fails with whoami_failed when the WhoAmI URL answers 404', async () => {
    const id = await integration({ whoAmIUrl: `${provider.issuer}/no-such-endpoint` })
    const { session } = await signIn(id, 'carol')
    expect(session.status).toBe('FAILED')
    expect(session.failure?.code).toBe('whoami_failed')
  })

  it('fails with mapping_failed when the mapping does not produce an object', async () => {
    const id = await integration({ whoAmIMapping: 'email' })
    const { session } = await signIn(id, 'carol')
    expect(session.status).toBe('FAILED')
    expect(session.failure?.code).toBe('mapping_failed')
  })

  it('authenticates without a WhoAmI URL, with an empty identity', async () => {
    const id = await integration({ whoAmIUrl: null })
    const before = provider.userinfoRequests()
    const { session } = await signIn(id, 'carol')
    expect(session.status).toBe('AUTHENTICATED')
    expect(session.identity).toMatchObject({ email: null, firstName: null, attributes: {} })
    expect(provider.userinfoRequests()).toBe(before)
  })

  it('keeps the mapping result in attributes and refuses a non-email as email', async () => {
    const id = await integration({
      whoAmIMapping: "{userName: sub, fullName: name, email: email, tier: 'gold'}",
    })
    const { session } = await signIn(id, 'dave')
    expect(session.status).toBe('AUTHENTICATED')
    expect(session.identity).toMatchObject({
      email: null,
      userName: 'dave',
      fullName: 'Dave',
      firstName: 'Dave',
      lastName: null,
      attributes: { userName: 'dave', fullName: 'Dave', email: 'not-an-email', tier: 'gold' },
    })
  })

  it('fills only empty contact fields, and overwrites when the integration says so', async () => {
    const keep = await integration({
      whoAmIMapping: '{userName: sub, fullName: name, email: email}',
    })
    const overwrite = await integration({
      whoAmIMapping: '{userName: sub, fullName: name, email: email}',
      overwriteContact: true,
    })
    // Known already by another email, verified by a sign-in of a version that kept no subject.
    await t.database.db
      .insertInto('contacts')
      .values({
        tenant_id: tenant.id,
        contact_id: 'shared-contact',
        email: 'carol@old.example',
        first_name: 'Caz',
        verified_session_id: '00000000-0000-0000-0000-000000000000',
        verified_integration_id: keep,
        verified_at: new Date(clock),
        created_at: new Date(clock),
        updated_at: new Date(clock),
      })
      .execute()
    const first = await signIn(keep, 'carol', 'conv-contact-1', 'shared-contact')
    expect(await contact(t, tenant.agentKey, 'shared-contact')).toMatchObject({
      email: 'carol@old.example',
      firstName: 'Caz',
      lastName: 'Danvers',
      userName: 'carol',
      fullName: 'Carol Danvers',
      verifiedBySessionId: first.id,
    })
    const second = await signIn(overwrite, 'carol', 'conv-contact-2', 'shared-contact')
    expect(await contact(t, tenant.agentKey, 'shared-contact')).toMatchObject({
      email: 'carol@example.com',
      firstName: 'Carol',
      verifiedBySessionId: second.id,
    })
    // An identity without a value never erases one.
    const none = await integration({ whoAmIMapping: '{userName: sub}', overwriteContact: true })
    await signIn(none, 'carol', 'conv-contact-3', 'shared-contact')
    expect((await findContact(t.database.db, tenant.id, 'shared-contact'))?.email).toBe(
      'carol@example.com',
    )
  })

  it('ends FAILED with internal_error, not claimed and OPENED, when storing the identity fails', async () => {
    const id = await integration()
    const db = t.database.db
    await sql`create function euo_test_refuse_contact() returns trigger language plpgsql as $$ begin raise exception 'contacts refused by the test'; end $$`.execute(
      db,
    )
    await sql`create trigger euo_test_refuse_contact before insert or update on contacts for each row execute function euo_test_refuse_contact()`.execute(
      db,
    )
    try {
      const { session, page, html } = await signIn(id, 'carol', 'conv-store-fails')
      expect(page.status).toBe(200)
      expect(html).toContain('Sign-in did not work')
      expect(session.status).toBe('FAILED')
      expect(session.failure?.code).toBe('internal_error')
      expect(await findContact(db, tenant.id, 'conv-store-fails')).toBeUndefined()
    } finally {
      await sql`drop trigger euo_test_refuse_contact on contacts`.execute(db)
      await sql`drop function euo_test_refuse_contact()`.execute(db)
    }
  })

  it('sweeps expired sessions to EXPIRED in the table, and reads them EXPIRED before that', async () => {
    const id = await integration()
    const started = await start(t, tenant.agentKey, {
      integrationId: id,
      conversationId: 'to-expire',
    })
    const sessionId = started.session.id
    const saved = clock
    clock += 11 * 60 * 1000
    try {
      expect((await poll(t, tenant.agentKey, sessionId))?.status).toBe('EXPIRED')
      const row = () =>
        t.database.db
          .selectFrom('auth_sessions')
          .select('status')
          .where('id', '=', sessionId)
          .executeTakeFirstOrThrow()
      expect((await row()).status).toBe('PENDING')
      expect(await sweepExpiredSessions(t.deps)).toBeGreaterThanOrEqual(1)
      expect((await row()).status).toBe('EXPIRED')
    } finally {
      clock = saved
    }
    // Once written, it stays EXPIRED whatever the clock says.
    expect((await poll(t, tenant.agentKey, sessionId))?.status).toBe('EXPIRED')
  })
})
