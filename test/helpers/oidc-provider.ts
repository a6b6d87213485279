/**
 * A real authorization server for the tests: oidc-provider (a certified OpenID Provider) on
 * 127.0.0.1, with its development login and consent pages, PKCE required, and a count of the
 * token requests it received.
 *
 * It starts without clients: a test creates its integration first and then registers the client
 * with the integration's `redirectUrls` as the service reports them (`registerClient`), so the
 * redirect URIs at the provider are always the ones the service sends.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { JsonWebKey } from 'node:crypto'
import Provider, {
  type Adapter,
  type AdapterPayload,
  type ClientMetadata,
  type SigningAlgorithmWithNone,
} from 'oidc-provider'

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
  /** Its signing keys (public), where its metadata's `jwks_uri` points. */
  readonly jwksUrl: string
  /**
   * Registers a client, or changes a registered one: its `redirect_uris` are added to those it
   * has, its other fields replaced. Takes effect at the next request.
   */
  registerClient(client: ClientMetadata): Promise<void>
  /** Requests received per path, e.g. tokenRequests() for '/token'. */
  authorizationRequests(): number
  tokenRequests(): number
  userinfoRequests(): number
  jwksRequests(): number
  close(): Promise<void>
}

export interface TestProviderOptions {
  readonly accounts?: Record<string, Account>
  /** Claims of a login name that `accounts` does not list (the demo: anyone may sign in). */
  readonly claimsFor?: (login: string) => Account
  /**
   * Private signing keys (JWKs with kid, alg and use), e.g. from test/helpers/jwt.ts. Default:
   * oidc-provider's development key.
   */
  readonly signingKeys?: readonly JsonWebKey[]
  /** The ID token algorithms it may use (`id_token_signing_alg_values_supported`), e.g. HS256. */
  readonly idTokenSigningAlgValues?: readonly SigningAlgorithmWithNone[]
}

/** oidc-provider sends RFC 9207 `iss` on callbacks (its default). */
export async function startTestProvider(options: TestProviderOptions = {}): Promise<TestProvider> {
  let authorizationCount = 0
  let tokenCount = 0
  let userinfoCount = 0
  let jwksCount = 0
  let provider: Provider | undefined
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/auth')) authorizationCount++
    if (req.method === 'POST' && req.url?.startsWith('/token')) tokenCount++
    if (req.url?.startsWith('/me')) userinfoCount++
    if (req.url?.startsWith('/jwks')) jwksCount++
    provider!.callback()(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const accounts = options.accounts ?? {}
  const storage = createStorage()
  provider = new Provider(issuer, {
    adapter: storage.adapter,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    },
    scopes: ['openid', 'email', 'profile'],
    findAccount: (_ctx, id) => ({
      accountId: id,
      claims: () => ({
        sub: id,
        preferred_username: id,
        ...(accounts[id] ?? options.claimsFor?.(id) ?? {}),
      }),
    }),
    cookies: { keys: ['test-cookie-key-for-oidc-provider'] },
    ...(options.signingKeys && { jwks: { keys: [...options.signingKeys] } }),
    ...(options.idTokenSigningAlgValues && {
      enabledJWA: { idTokenSigningAlgValues: [...options.idTokenSigningAlgValues] },
    }),
  })
  // oidc-provider warns about development settings on every start; the tests know.
  provider.on('server_error', (_ctx, error) => console.error('oidc-provider server_error', error))
  return {
    issuer,
    host: new URL(issuer).host,
    authorizationUrl: `${issuer}/auth`,
    tokenUrl: `${issuer}/token`,
    userinfoUrl: `${issuer}/me`,
    jwksUrl: `${issuer}/jwks`,
    async registerClient(client) {
      const known = storage.clients.get(client.client_id)
      const redirectUris = [...(known?.redirect_uris ?? []), ...(client.redirect_uris ?? [])]
      const merged = { ...client, redirect_uris: [...new Set(redirectUris)] }
      await provider.Client.validate(merged)
      storage.clients.set(client.client_id, merged)
    },
    authorizationRequests: () => authorizationCount,
    tokenRequests: () => tokenCount,
    userinfoRequests: () => userinfoCount,
    jwksRequests: () => jwksCount,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/**
 * oidc-provider's storage, one per provider, kept in Maps. Clients live here rather than in its
 * static `clients` setting, which it reads once at start; its default in-memory store is an LRU
 * that may drop entries, a client registered long before its first use among them.
 */
function createStorage(): {
  adapter: (model: string) => Adapter
  clients: Map<string, ClientMetadata>
} {
  const clients = new Map<string, ClientMetadata>()
  const entries = new Map<string, { payload: AdapterPayload; expiresAt: number }>()
  const live = (key: string): AdapterPayload | undefined => {
    const entry = entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt > Date.now()) return entry.payload
    entries.delete(key)
    return undefined
  }
  const findBy = (model: string, matches: (payload: AdapterPayload) => boolean) => {
    for (const key of entries.keys()) {
      const payload = key.startsWith(`${model}:`) ? live(key) : undefined
      if (payload && matches(payload)) return payload
    }
    return undefined
  }
  const adapter = (model: string): Adapter => {
    const key = (id: string) => `${model}:${id}`
    return {
      async upsert(id, payload, expiresIn) {
        if (model === 'Client') throw new Error('clients are registered with registerClient')
        const expiresAt = expiresIn === undefined ? Infinity : Date.now() + expiresIn * 1000
        entries.set(key(id), { payload, expiresAt })
      },
      async find(id) {
        return model === 'Client' ? clients.get(id) : live(key(id))
      },
      async findByUid(uid) {
        return findBy(model, (payload) => payload.uid === uid)
      },
      async findByUserCode(userCode) {
        return findBy(model, (payload) => payload.userCode === userCode)
      },
      async consume(id) {
        const payload = live(key(id))
        if (payload) payload.consumed = Math.floor(Date.now() / 1000)
      },
      async destroy(id) {
        entries.delete(key(id))
      },
      async revokeByGrantId(grantId) {
        for (const [stored, { payload }] of entries) {
          if (stored.startsWith(`${model}:`) && payload.grantId === grantId) entries.delete(stored)
        }
      },
    }
  }
  return { adapter, clients }
}
