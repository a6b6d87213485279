/**
 * `npm run demo`: the whole product on one machine, with nothing to configure. It starts the
 * service on a fresh embedded database (a temporary DATA_DIR, removed at the end), an OpenID
 * Connect provider to sign in at (oidc-provider, the one the tests use, which lets anyone in under
 * any name), a `demo` tenant with an ADMIN and an AGENT key, and an integration found by
 * discovery with a WhoAmI mapping. It prints a sign-in link as a bot would send it, then every
 * status change of that session as the `authSessionUpdated` subscription delivers it, and after
 * the sign-in the identity the bot would read. PORT applies (default 4000); Ctrl-C stops it.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { loadConfig } from '../src/config.ts'
import { createLogger } from '../src/logger.ts'
import { startService } from '../src/runtime/server.ts'
import { createApiKey, createTenant } from '../src/services/tenants.ts'

const CLIENT = { id: 'demo-client', secret: 'demo-client-secret-0123456789' }
const MAPPING = '{userName: preferred_username, fullName: name, email: email}'

const say = (line: string) => process.stdout.write(`${line}\n`)
const time = () => new Date().toISOString().slice(11, 19)

async function main(): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'euo-demo-'))
  // oidc-provider warns on start that it runs with development keys and login pages: exactly
  // what a demo wants, and nothing for its user to act on.
  const warn = console.warn
  console.warn = (...args: unknown[]) => {
    if (!String(args[0]).startsWith('oidc-provider WARNING')) warn(...args)
  }
  // Imported only now: oidc-provider warns as it loads.
  const { startTestProvider } = await import('../test/helpers/oidc-provider.ts')
  const provider = await startTestProvider({
    claimsFor: (login) => ({
      email: `${login.toLowerCase().replace(/[^a-z0-9._-]/g, '') || 'someone'}@example.com`,
      email_verified: true,
      name: login,
    }),
  })
  const env = { ...process.env }
  delete env.DATABASE_URL // the demo is the embedded database's
  const config = loadConfig({
    ...env,
    DATA_DIR: dataDir,
    // A key of its own, as the database lives only as long as the demo.
    ENCRYPTION_KEY: process.env.ENCRYPTION_KEY ?? randomBytes(32).toString('base64url'),
    OUTBOUND_ALLOW_HOSTS: provider.host,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  })
  const logger = createLogger({ level: config.logLevel, format: config.logFormat })
  const service = await startService(config, logger)

  let stopping = false
  const stop = async (code: number) => {
    if (stopping) return
    stopping = true
    await service.close(1000).catch(() => {})
    await provider.close()
    rmSync(dataDir, { recursive: true, force: true })
    say('stopped')
    process.exit(code)
  }
  process.on('SIGINT', () => void stop(0))
  process.on('SIGTERM', () => void stop(0))

  try {
    const { apiKey: admin } = await createTenant(service.deps, { slug: 'demo', name: 'Demo Shop' })
    const agent = await createApiKey(service.deps, { slug: 'demo', role: 'AGENT', label: 'demo' })
    const gql = async <T>(key: string, query: string, variables: Record<string, unknown>) => {
      const response = await fetch(`${service.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ query, variables }),
      })
      const body = (await response.json()) as { data?: T; errors?: Array<{ message: string }> }
      if (!body.data) throw new Error(body.errors?.map((e) => e.message).join('; ') ?? 'no data')
      return body.data
    }

    // What an admin does once: the integration, with only the issuer (discovery finds the rest).
    const { createOAuthIntegration } = await gql<{
      createOAuthIntegration: { integration: { id: string; redirectUrls: string[] } }
    }>(
      admin.apiKey,
      `mutation ($input: CreateOAuthIntegrationInput!) {
        createOAuthIntegration(input: $input) { integration { id redirectUrls } }
      }`,
      {
        input: {
          name: 'Demo provider',
          clientId: CLIENT.id,
          clientSecret: CLIENT.secret,
          scope: 'openid email profile',
          issuer: provider.issuer,
          whoAmIMapping: MAPPING,
        },
      },
    )
    const integration = createOAuthIntegration.integration
    // ...and registers the integration's callback URLs at the provider.
    await provider.registerClient({
      client_id: CLIENT.id,
      client_secret: CLIENT.secret,
      token_endpoint_auth_method: 'client_secret_post',
      redirect_uris: integration.redirectUrls,
    })

    // What a bot does for each conversation.
    const { startEndUserAuth } = await gql<{
      startEndUserAuth: { authorizationLink: string; session: { id: string } }
    }>(
      agent.apiKey,
      `mutation ($input: StartEndUserAuthInput!) {
        startEndUserAuth(input: $input) { authorizationLink session { id } }
      }`,
      { input: { integrationId: integration.id, conversationId: 'demo-conversation' } },
    )

    say('end-user-oauth demo')
    say(`  service    ${service.url}  (GraphiQL: ${service.url}/graphql)`)
    say(`  provider   ${provider.issuer}  (any name, any password)`)
    say(`  ADMIN key  ${admin.apiKey}`)
    say(`  AGENT key  ${agent.apiKey}`)
    say('')
    say(`Open this sign-in link in a browser: ${startEndUserAuth.authorizationLink}`)
    say('')
    await follow(service.url, agent.apiKey, startEndUserAuth.session.id)
    say('Ctrl-C stops the demo (its database goes with it).')
  } catch (error) {
    process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`)
    await stop(1)
  }
}

const FINAL = new Set(['AUTHENTICATED', 'FAILED', 'EXPIRED', 'CANCELLED'])

/** Prints each status of the session from the subscription (server-sent events) until final. */
async function follow(base: string, key: string, sessionId: string): Promise<void> {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: {
      accept: 'text/event-stream',
      'content-type': 'application/json',
      authorization: `Bearer ${key}`,
    },
    body: JSON.stringify({
      query: `subscription ($id: ID!) {
        authSessionUpdated(id: $id) {
          status failure { code message }
          identity { email userName fullName firstName lastName subject issuer emailVerified }
        }
      }`,
      variables: { id: sessionId },
    }),
  })
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffer += value
    let end: number
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const data = block
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5))
        .join('')
      if (!data) continue
      const update = (JSON.parse(data) as { data?: { authSessionUpdated: SessionUpdate } }).data
        ?.authSessionUpdated
      if (!update) continue
      say(`[${time()}] ${update.status}`)
      if (update.identity) say(`  identity ${JSON.stringify(update.identity)}`)
      if (update.failure) say(`  failure  ${update.failure.code}: ${update.failure.message}`)
      if (FINAL.has(update.status)) {
        await reader.cancel()
        return
      }
    }
  }
}

interface SessionUpdate {
  readonly status: string
  readonly failure: { readonly code: string; readonly message: string } | null
  readonly identity: Record<string, unknown> | null
}

await main()
