/**
 * The link's POST binds in one statement from the ids the continue page carries in hidden
 * fields, but only where those ids are the link's own: ids of another session or tenant bind
 * nothing of theirs, and the link's own session is bound as it would be without them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hiddenFields, ScriptedBrowser } from '../helpers/browser.ts'
import { createFlowApp, poll, seedIntegration, start, viewLink } from '../helpers/flow.ts'
import type { SeededTenant, TestApp } from '../helpers/test-app.ts'

describe("the link's POST with the page's hidden fields", () => {
  let t: TestApp
  let tenant: SeededTenant
  let other: SeededTenant
  let integrationId: string
  let otherIntegrationId: string
  let n = 0

  beforeAll(async () => {
    t = await createFlowApp()
    tenant = await t.seedTenant('link-post')
    other = await t.seedTenant('link-post-other')
    const input = {
      clientId: 'c',
      clientSecret: 'link-post-secret-0123',
      authorizationUrl: 'https://idp.example.com/authorize',
      tokenUrl: 'https://idp.example.com/token',
    }
    integrationId = (await seedIntegration(t, tenant, input)).id
    otherIntegrationId = (await seedIntegration(t, other, input)).id
  })
  afterAll(async () => t?.close())

  async function started(who = tenant, integration = integrationId) {
    return start(t, who.agentKey, { integrationId: integration, conversationId: `conv-${++n}` })
  }

  async function post(browser: ScriptedBrowser, link: string, form: Record<string, string>) {
    return browser.request(link, { method: 'POST', form })
  }

  it('carries the session, tenant and integration ids, and binds with them', async () => {
    const s = await started()
    const browser = new ScriptedBrowser()
    const fields = hiddenFields(await viewLink(browser, s.authorizationLink))
    expect(fields).toEqual({ s: s.session.id, t: tenant.id, i: integrationId })
    const posted = await post(browser, s.authorizationLink, fields)
    expect(posted.status).toBe(303)
    expect(posted.headers.get('location')).toMatch(/^https:\/\/idp\.example\.com\/authorize\?/)
    expect((await poll(t, tenant.agentKey, s.session.id))?.status).toBe('OPENED')
    // The same browser again: a fresh authorization request, still bound to it.
    const again = await post(browser, s.authorizationLink, fields)
    expect(again.status).toBe(303)
    expect(new URL(again.headers.get('location')!).searchParams.get('state')).not.toBe(
      new URL(posted.headers.get('location')!).searchParams.get('state'),
    )
  })

  it('refuses a second browser with the same fields: the session stays bound to the first', async () => {
    const s = await started()
    const first = new ScriptedBrowser()
    const fields = hiddenFields(await viewLink(first, s.authorizationLink))
    expect((await post(first, s.authorizationLink, fields)).status).toBe(303)
    const second = new ScriptedBrowser()
    const refused = await post(second, s.authorizationLink, fields)
    expect(refused.status).not.toBe(303)
    expect(await refused.text()).toContain('This link is already in use')
    // The first browser can still go on.
    expect((await post(first, s.authorizationLink, fields)).status).toBe(303)
  })

  it("binds the link's own session when the fields name another session of the tenant", async () => {
    const mine = await started()
    const victim = await started()
    const browser = new ScriptedBrowser()
    await viewLink(browser, mine.authorizationLink)
    const posted = await post(browser, mine.authorizationLink, {
      s: victim.session.id,
      t: tenant.id,
      i: integrationId,
    })
    expect(posted.status).toBe(303)
    expect((await poll(t, tenant.agentKey, mine.session.id))?.status).toBe('OPENED')
    expect((await poll(t, tenant.agentKey, victim.session.id))?.status).toBe('PENDING')
  })

  it('binds nothing of another tenant when the fields name its session', async () => {
    const mine = await started()
    const theirs = await started(other, otherIntegrationId)
    const browser = new ScriptedBrowser()
    const posted = await post(browser, mine.authorizationLink, {
      s: theirs.session.id,
      t: other.id,
      i: otherIntegrationId,
    })
    expect(posted.status).toBe(303)
    expect((await poll(t, other.agentKey, theirs.session.id))?.status).toBe('PENDING')
    expect((await poll(t, tenant.agentKey, mine.session.id))?.status).toBe('OPENED')
  })

  it('ignores fields that are not ids', async () => {
    const s = await started()
    const browser = new ScriptedBrowser()
    const posted = await post(browser, s.authorizationLink, { s: "' or 1=1 --", t: 'x', i: 'y' })
    expect(posted.status).toBe(303)
    expect((await poll(t, tenant.agentKey, s.session.id))?.status).toBe('OPENED')
  })
})
