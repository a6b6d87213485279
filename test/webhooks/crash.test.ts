/**
 * A crash loses no event: the service (as `npm start` runs it) completes a real sign-in while
 * the receiver is down, is killed with SIGKILL before any delivery could go out, and once started
 * again delivers the event, signed and with its webhook-id, to the receiver that is now up.
 * PostgreSQL when TEST_DATABASE_URL is set, the embedded database in DATA_DIR otherwise.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { ScriptedBrowser } from '../helpers/browser.ts'
import { complete, postLink } from '../helpers/flow.ts'
import { startTestProvider } from '../helpers/oidc-provider.ts'
import {
  cli,
  createPgDatabase,
  killLeftovers,
  startServiceProcess,
  tempDataDir,
  type Env,
  freePort,
} from '../helpers/spawn.ts'
import { TEST_DATABASE_URL } from '../helpers/test-db.ts'
import { eventually, startWebhookReceiver, verify } from '../helpers/webhook-receiver.ts'

async function gql<T>(base: string, key: string, query: string, variables: unknown): Promise<T> {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  })
  const body = (await response.json()) as { data?: T; errors?: unknown }
  expect(body.errors).toBeUndefined()
  return body.data!
}

describe('webhooks across a crash', () => {
  const cleanups: Array<() => Promise<void> | void> = []
  afterAll(async () => {
    killLeftovers()
    for (const cleanup of cleanups.reverse()) await cleanup()
  })

  it('delivers after a restart the event of a sign-in completed before a kill -9', async () => {
    const provider = await startTestProvider({
      accounts: { ada: { email: 'ada@example.com', name: 'Ada Lovelace' } },
    })
    cleanups.push(() => provider.close())
    const data = tempDataDir()
    cleanups.push(() => data.remove())
    const [servicePort, receiverPort] = [await freePort(), await freePort()]
    const env: Env = {
      PORT: String(servicePort),
      PUBLIC_BASE_URL: `http://127.0.0.1:${servicePort}`,
      DATA_DIR: data.dir,
      ENCRYPTION_KEY: 'crash-test-key-0123456789abcdef0123456789',
      OUTBOUND_ALLOW_HOSTS: provider.host,
      WEBHOOK_ALLOW_HOSTS: `127.0.0.1:${receiverPort}`,
      LOG_LEVEL: 'info',
    }
    if (TEST_DATABASE_URL) {
      const database = await createPgDatabase(TEST_DATABASE_URL)
      cleanups.push(() => database.drop())
      env.DATABASE_URL = database.url
    }

    let service = await startServiceProcess(env)
    const tenant = await cli(['tenant', 'create', 'crash'], env)
    expect(tenant.code).toBe(0)
    const adminKey = (JSON.parse(tenant.stdout) as { apiKey: string }).apiKey
    const { createOAuthIntegration } = await gql<{
      createOAuthIntegration: { integration: { id: string; redirectUrls: string[] } }
    }>(
      service.url,
      adminKey,
      `mutation ($input: CreateOAuthIntegrationInput!) { createOAuthIntegration(input: $input) { integration { id redirectUrls } } }`,
      {
        input: {
          name: 'oidc',
          clientId: 'crash',
          clientSecret: 'crash-secret-0123456789',
          scope: 'openid email profile',
          issuer: provider.issuer,
          authorizationUrl: provider.authorizationUrl,
          tokenUrl: provider.tokenUrl,
          whoAmIUrl: provider.userinfoUrl,
          whoAmIMapping: '{userName: sub, email: email}',
        },
      },
    )
    await provider.registerClient({
      client_id: 'crash',
      client_secret: 'crash-secret-0123456789',
      token_endpoint_auth_method: 'client_secret_post',
      redirect_uris: createOAuthIntegration.integration.redirectUrls,
    })
    const { createWebhookEndpoint } = await gql<{ createWebhookEndpoint: { secret: string } }>(
      service.url,
      adminKey,
      `mutation ($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret } }`,
      { input: { url: `http://127.0.0.1:${receiverPort}/hooks` } },
    )

    // The receiver is down: nothing can be delivered.
    const { startEndUserAuth } = await gql<{
      startEndUserAuth: { authorizationLink: string; session: { id: string } }
    }>(
      service.url,
      adminKey,
      `mutation ($input: StartEndUserAuthInput!) { startEndUserAuth(input: $input) { authorizationLink session { id } } }`,
      {
        input: { integrationId: createOAuthIntegration.integration.id, conversationId: 'crash-1' },
      },
    )
    const browser = new ScriptedBrowser()
    const authorize = await postLink(browser, startEndUserAuth.authorizationLink)
    const { callbackResponse } = await complete(browser, authorize, 'ada')
    expect(callbackResponse.status).toBe(303)
    // Kill once the first attempt has failed (connection refused), so the restart finds a
    // recorded retry rather than a claim that must first lapse (a minute).
    const { webhookEndpoints } = await gql<{ webhookEndpoints: Array<{ id: string }> }>(
      service.url,
      adminKey,
      `{ webhookEndpoints { id } }`,
      {},
    )
    const endpointId = webhookEndpoints[0]!.id
    const failedOnce = await eventually(async () => {
      const { webhookDeliveries } = await gql<{
        webhookDeliveries: Array<{ status: string; attempts: number; lastError: string | null }>
      }>(
        service.url,
        adminKey,
        `query ($id: ID!) { webhookDeliveries(endpointId: $id) { status attempts lastError } }`,
        { id: endpointId },
      )
      return webhookDeliveries[0]?.attempts === 1 ? webhookDeliveries[0] : undefined
    })
    expect(failedOnce).toMatchObject({ status: 'PENDING' })
    expect(failedOnce.lastError).toMatch(/^connection_failed: /)
    const killed = await service.stop('SIGKILL')
    expect(killed.signal).toBe('SIGKILL')

    const receiver = await startWebhookReceiver({ port: receiverPort })
    cleanups.push(() => receiver.close())
    service = await startServiceProcess(env)
    // Due after the first retry wait (5 to 6 s after the failed attempt).
    const [request] = await receiver.waitFor(1, 30_000)
    const payload = verify(createWebhookEndpoint.secret, request!)
    expect(payload.type).toBe('auth_session.authenticated')
    expect(payload.data.session).toMatchObject({
      id: startEndUserAuth.session.id,
      status: 'AUTHENTICATED',
      identity: { email: 'ada@example.com', userName: 'ada' },
    })
    const listed = await gql<{ webhookDeliveries: Array<{ eventId: string; status: string }> }>(
      service.url,
      adminKey,
      `query ($id: ID!) { webhookDeliveries(endpointId: $id) { eventId status } }`,
      { id: endpointId },
    )
    expect(listed.webhookDeliveries).toHaveLength(1)
    expect(listed.webhookDeliveries[0]!.eventId).toBe(request!.headers['webhook-id'])
    const stopped = await service.stop('SIGTERM')
    expect(stopped.code).toBe(0)
  }, 120_000)
})
