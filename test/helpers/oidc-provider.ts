/**
 * A real authorization server for the tests: oidc-provider (a certified OpenID Provider) on
 * 127.0.0.1, with its development login and consent pages, PKCE required, and a count of the
 * token requests it received.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import Provider, { type ClientMetadata } from 'oidc-provider'

export interface Account {
  readonly email?: string
  readonly name?: string
  readonly given_name?: string
  readonly family_name?: string
  readonly [claim: string]: unknown
}

export interface TestProvider {
  readonly issuer: string
  readonly host: string
  readonly authorizationUrl: string
  readonly tokenUrl: string
  readonly userinfoUrl: string
  /** Requests received per path, e.g. tokenRequests() for '/token'. */
  tokenRequests(): number
  userinfoRequests(): number
  close(): Promise<void>
}

export async function startTestProvider(options: {
  clients: ClientMetadata[]
  accounts?: Record<string, Account>
  /** Sends RFC 9207 `iss` on callbacks (oidc-provider's default). */
}): Promise<TestProvider> {
  let tokenCount = 0
  let userinfoCount = 0
  let provider: Provider | undefined
  const server: Server = createServer((req, res) => {
    if (req.method === 'POST' && req.url?.startsWith('/token')) tokenCount++
    if (req.url?.startsWith('/me')) userinfoCount++
    provider!.callback()(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const accounts = options.accounts ?? {}
  provider = new Provider(issuer, {
    clients: options.clients,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    claims: {
      openid: ['sub'],
      email: ['email'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    },
    scopes: ['openid', 'email', 'profile'],
    findAccount: (_ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, preferred_username: id, ...(accounts[id] ?? {}) }),
    }),
    cookies: { keys: ['test-cookie-key-for-oidc-provider'] },
  })
  // oidc-provider warns about development settings on every start; the tests know.
  provider.on('server_error', (_ctx, error) => console.error('oidc-provider server_error', error))
  return {
    issuer,
    host: new URL(issuer).host,
    authorizationUrl: `${issuer}/auth`,
    tokenUrl: `${issuer}/token`,
    userinfoUrl: `${issuer}/me`,
    tokenRequests: () => tokenCount,
    userinfoRequests: () => userinfoCount,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
