/**
 * The sign-in as the flow tests drive it: the GraphQL documents they send (one constant each,
 * with the shape of its answer), seeding integrations, starting a sign-in, and a scripted
 * browser's way through our link page, the test provider's login and back to our callback.
 *
 * The redirect URLs of an integration are always the API's (`OAuthIntegration.redirectUrls`):
 * they are what the test provider allows and what a test compares the provider's redirects with,
 * never rebuilt from the routes and the base URL.
 */
import { expect } from 'vitest'
import { REDIRECT_ROUTE_NAMES, type RedirectRouteName } from '../../src/core/redirect-urls.ts'
import { loginAtTestProvider, ScriptedBrowser } from './browser.ts'
import type { TestProvider } from './oidc-provider.ts'
import { createTestApp, type SeededTenant, type TestApp } from './test-app.ts'

// ---------------------------------------------------------------------------------------------
// Documents

export const CREATE_INTEGRATION = `mutation ($input: CreateOAuthIntegrationInput!) {
  createOAuthIntegration(input: $input) { integration { id redirectUrls } }
}`

export interface SeededIntegration {
  readonly id: string
  /** The callback URLs the API lists, in the order of REDIRECT_ROUTE_NAMES. */
  readonly redirectUrls: readonly string[]
}

export interface CreatedIntegration {
  readonly createOAuthIntegration: { readonly integration: SeededIntegration }
}

export const START = `mutation ($input: StartEndUserAuthInput!) {
  startEndUserAuth(input: $input) {
    authorizationLink
    message { text buttonLabel url }
    session { id status conversationId contactId expiresAt }
  }
}`

export interface StartInput {
  readonly integrationId: string
  readonly conversationId: string
  readonly contactId?: string
  readonly redirectRoute?: RedirectRouteName
  readonly prompt?: string
  readonly maxAgeSeconds?: number
  readonly loginHint?: string
  readonly acrValues?: readonly string[]
}

export interface StartedSignIn {
  readonly authorizationLink: string
  readonly message: { readonly text: string; readonly buttonLabel: string; readonly url: string }
  readonly session: {
    readonly id: string
    readonly status: string
    readonly conversationId: string
    readonly contactId: string
    readonly expiresAt: string
  }
}

export interface Started {
  readonly startEndUserAuth: StartedSignIn
}

const SESSION_FIELDS = `id status conversationId contactId redirectRoute createdAt expiresAt openedAt completedAt
    identity { subject issuer email emailVerified userName fullName firstName lastName attributes }
    failure { code message } confirmationAttemptsLeft contactUpdate
    integration { id name }`

// `authSession` on line 2, column 3: a test asserts where a resolver error is located.
export const POLL = `query Poll($id: ID!) {
  authSession(id: $id) { ${SESSION_FIELDS} }
}`

export const SESSIONS = `query Sessions($conversationId: String!) {
  authSessions(conversationId: $conversationId) { ${SESSION_FIELDS} }
}`

export interface Identity {
  readonly subject: string | null
  readonly issuer: string | null
  readonly emailVerified: boolean | null
  readonly email: string | null
  readonly userName: string | null
  readonly fullName: string | null
  readonly firstName: string | null
  readonly lastName: string | null
  readonly attributes: Record<string, unknown>
}

export interface SessionView {
  readonly id: string
  readonly status: string
  readonly conversationId: string
  readonly contactId: string
  readonly redirectRoute: RedirectRouteName
  readonly createdAt: string
  readonly expiresAt: string
  readonly openedAt: string | null
  readonly completedAt: string | null
  readonly identity: Identity | null
  readonly failure: { readonly code: string; readonly message: string } | null
  readonly integration: { readonly id: string; readonly name: string }
  readonly confirmationAttemptsLeft: number | null
  readonly contactUpdate: string | null
}

export interface Polled {
  readonly authSession: SessionView | null
}

export interface Listed {
  readonly authSessions: readonly SessionView[]
}

export const CANCEL = `mutation ($id: ID!) { cancelEndUserAuth(id: $id) { session { id status } } }`

export interface Cancelled {
  readonly cancelEndUserAuth: { readonly session: { readonly id: string; readonly status: string } }
}

export const CONTACT = `query ($contactId: String!) {
  contact(contactId: $contactId) {
    contactId email userName fullName firstName lastName verifiedAt verifiedBySessionId
  }
}`

export interface ContactView {
  readonly contactId: string
  readonly email: string | null
  readonly userName: string | null
  readonly fullName: string | null
  readonly firstName: string | null
  readonly lastName: string | null
  readonly verifiedAt: string | null
  readonly verifiedBySessionId: string | null
}

export interface FoundContact {
  readonly contact: ContactView | null
}

export const SUBSCRIBE = `subscription ($id: ID!) {
  authSessionUpdated(id: $id) { id status identity { email userName } }
}`

export interface SessionUpdate {
  readonly authSessionUpdated: {
    readonly id: string
    readonly status: string
    readonly identity: { readonly email: string | null; readonly userName: string | null } | null
  }
}

// ---------------------------------------------------------------------------------------------
// The app and its data

/** A served app that may call the test providers on 127.0.0.1, as the flow tests need. */
export function createFlowApp(options: { now?: () => Date } = {}): Promise<TestApp> {
  return createTestApp({
    serve: true,
    env: { OUTBOUND_ALLOW_HOSTS: '127.0.0.1' },
    ...(options.now ? { now: options.now } : {}),
  })
}

let seeded = 0

/**
 * Creates an integration over GraphQL with `tenant`'s ADMIN key: `input` over a unique name.
 * Returns its id and its redirect URLs as the API reports them.
 */
export async function seedIntegration(
  t: TestApp,
  tenant: SeededTenant,
  input: Record<string, unknown>,
): Promise<SeededIntegration> {
  seeded += 1
  const created = await t.gql<CreatedIntegration>(tenant.adminKey, CREATE_INTEGRATION, {
    input: { name: `integration ${seeded}`, ...input },
  })
  expect(created.errors).toBeUndefined()
  return created.data!.createOAuthIntegration.integration
}

export interface ProviderClient {
  readonly clientId: string
  readonly clientSecret: string
  /** Sent as the integration's tokenEndpointAuthMethod when given; the provider's either way. */
  readonly method?: 'CLIENT_SECRET_POST' | 'CLIENT_SECRET_BASIC'
}

/**
 * An integration that signs in at the test provider as `client` (its authorization, token and
 * userinfo URLs, scope `openid email profile`; `input` on top), whose redirect URLs the provider
 * then allows for that client. Several integrations may share a client: each adds its URLs.
 */
export async function seedProviderIntegration(
  t: TestApp,
  tenant: SeededTenant,
  provider: TestProvider,
  client: ProviderClient,
  input: Record<string, unknown> = {},
): Promise<SeededIntegration> {
  const integration = await seedIntegration(t, tenant, {
    clientId: client.clientId,
    clientSecret: client.clientSecret,
    scope: 'openid email profile',
    authorizationUrl: provider.authorizationUrl,
    tokenUrl: provider.tokenUrl,
    whoAmIUrl: provider.userinfoUrl,
    ...(client.method ? { tokenEndpointAuthMethod: client.method } : {}),
    ...input,
  })
  await provider.registerClient({
    client_id: client.clientId,
    client_secret: client.clientSecret,
    token_endpoint_auth_method:
      client.method === 'CLIENT_SECRET_BASIC' ? 'client_secret_basic' : 'client_secret_post',
    redirect_uris: [...integration.redirectUrls],
  })
  return integration
}

/** The redirect URL of one route, from the integration's `redirectUrls`. */
export function redirectUrl(integration: SeededIntegration, route: RedirectRouteName): string {
  expect(integration.redirectUrls).toHaveLength(REDIRECT_ROUTE_NAMES.length)
  return integration.redirectUrls[REDIRECT_ROUTE_NAMES.indexOf(route)]!
}

/** Origin and path of a URL: where a redirect went, without its parameters. */
export function withoutQuery(url: string): string {
  const parsed = new URL(url)
  return `${parsed.origin}${parsed.pathname}`
}

// ---------------------------------------------------------------------------------------------
// The sign-in

/** startEndUserAuth with `key`; fails the test on any error. */
export async function start(t: TestApp, key: string, input: StartInput): Promise<StartedSignIn> {
  const started = await t.gql<Started>(key, START, { input })
  expect(started.errors).toBeUndefined()
  return started.data!.startEndUserAuth
}

/** authSession with `key`: the session, or null when the key's tenant has none of that id. */
export async function poll(t: TestApp, key: string, id: string): Promise<SessionView | null> {
  const polled = await t.gql<Polled>(key, POLL, { id })
  expect(polled.errors).toBeUndefined()
  return polled.data!.authSession
}

/** contact with `key`: the contact, or null when the key's tenant has none of that id. */
export async function contact(
  t: TestApp,
  key: string,
  contactId: string,
): Promise<ContactView | null> {
  const found = await t.gql<FoundContact>(key, CONTACT, { contactId })
  expect(found.errors).toBeUndefined()
  return found.data!.contact
}

/** GETs the link (our page, which changes nothing) and checks it; returns its HTML. */
export async function viewLink(browser: ScriptedBrowser, link: string): Promise<string> {
  const page = await browser.request(link)
  expect(page.status).toBe(200)
  expect(page.headers.get('cache-control')).toBe('no-store')
  expect(page.headers.get('referrer-policy')).toBe('no-referrer')
  expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
  const html = await page.text()
  expect(html).toContain('<form id="continue" method="post">')
  return html
}

/** POSTs the link (binds the session to `browser`); returns the provider's authorization URL. */
export async function postLink(browser: ScriptedBrowser, link: string): Promise<URL> {
  const posted = await browser.request(link, { method: 'POST' })
  expect(posted.status).toBe(303)
  return new URL(posted.headers.get('location')!)
}

/** What a person does with the link: look at the page, continue. The provider's URL. */
export async function followLink(browser: ScriptedBrowser, link: string): Promise<URL> {
  await viewLink(browser, link)
  return postLink(browser, link)
}

export interface Arrived {
  /** Our answer at the callback itself: a 303 to the result page, or a refusal page. */
  readonly callbackResponse: Response
  /** The result page after the 303 (its body unread), or the refusal page. */
  readonly result: Response
  /** The result page's URL, when the callback sent the browser on to one. */
  readonly resultUrl: string | null
}

/**
 * The browser arrives at our callback: a completed one answers 303 to the session's result page
 * on the same origin, whose URL holds neither code nor state, and the browser follows it; a
 * refused one answers its page at once.
 */
export async function arriveAtCallback(
  browser: ScriptedBrowser,
  callback: string,
): Promise<Arrived> {
  const callbackResponse = await browser.request(callback)
  if (callbackResponse.status !== 303) {
    return { callbackResponse, result: callbackResponse, resultUrl: null }
  }
  const location = callbackResponse.headers.get('location')!
  const resultUrl = new URL(location, callback)
  expect(resultUrl.origin).toBe(new URL(callback).origin)
  expect(resultUrl.pathname).toMatch(/^\/r\/[0-9a-f-]{36}$/)
  expect(resultUrl.search).toBe('')
  expect(callbackResponse.headers.get('referrer-policy')).toBe('no-referrer')
  expect(callbackResponse.headers.get('cache-control')).toBe('no-store')
  return {
    callbackResponse,
    result: await browser.request(resultUrl.href),
    resultUrl: resultUrl.href,
  }
}

export interface Completed extends Arrived {
  /** Where the provider sent the browser back to. */
  readonly callback: string
}

/**
 * Logs in as `account` at the test provider (or aborts there) from its authorization URL and
 * follows its redirect back to our callback.
 */
export async function complete(
  browser: ScriptedBrowser,
  authorizationUrl: URL | string,
  account: string,
  options: { abort?: boolean } = {},
): Promise<Completed> {
  const url = typeof authorizationUrl === 'string' ? authorizationUrl : authorizationUrl.href
  const callback = await loginAtTestProvider(browser, url, account, options)
  return { callback, ...(await arriveAtCallback(browser, callback)) }
}

export interface SignedIn extends Completed {
  readonly started: StartedSignIn
  readonly authorizationUrl: URL
}

/**
 * A whole sign-in in a fresh browser: start with `key`, POST the link, log in as `account` at the
 * test provider, come back to the callback.
 */
export async function signIn(
  t: TestApp,
  key: string,
  input: StartInput,
  account: string,
  browser: ScriptedBrowser = new ScriptedBrowser(),
): Promise<SignedIn> {
  const started = await start(t, key, input)
  const authorizationUrl = await postLink(browser, started.authorizationLink)
  return { started, authorizationUrl, ...(await complete(browser, authorizationUrl, account)) }
}
