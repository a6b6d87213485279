/**
 * Shared by the oauth-integration*.test.ts files: GraphQL documents, valid input builders, and a
 * snapshot of what the integration API may write (to show that a rejected request wrote nothing).
 */
import { expect } from 'vitest'
import { sql } from 'kysely'
import { parseApiKey } from '../../src/core/api-key.ts'
import type { GqlResult, TestApp } from '../helpers/test-app.ts'

export const FIELDS = `
  id name clientId scope authorizationUrl tokenUrl whoAmIUrl whoAmIMapping
  tokenEndpointAuthMethod pkce issuer splitFullName overwriteContact sessionTtlSeconds
  messageText messageButtonLabel hasClientSecret redirectUrls createdAt updatedAt
  sharedRedirectUrls requireConfirmationCode trustUnverifiedEmail verificationTtlSeconds
  warnings discoveredAt
`

export const CREATE = `mutation ($input: CreateOAuthIntegrationInput!) {
  createOAuthIntegration(input: $input) { integration { ${FIELDS} } }
}`
export const UPDATE = `mutation ($input: UpdateOAuthIntegrationInput!) {
  updateOAuthIntegration(input: $input) { integration { ${FIELDS} } }
}`
export const DELETE = `mutation ($id: ID!) { deleteOAuthIntegration(id: $id) { id } }`
export const LIST = `{ oauthIntegrations { ${FIELDS} } }`
export const GET = `query ($id: ID!) { oauthIntegration(id: $id) { ${FIELDS} } }`

export interface IntegrationView {
  id: string
  name: string
  clientId: string
  scope: string | null
  authorizationUrl: string
  tokenUrl: string
  whoAmIUrl: string | null
  whoAmIMapping: string | null
  tokenEndpointAuthMethod: 'CLIENT_SECRET_POST' | 'CLIENT_SECRET_BASIC'
  pkce: boolean
  issuer: string | null
  splitFullName: boolean
  overwriteContact: boolean
  sessionTtlSeconds: number
  messageText: string | null
  messageButtonLabel: string | null
  hasClientSecret: boolean
  redirectUrls: string[]
  createdAt: string
  updatedAt: string
  sharedRedirectUrls: boolean
  requireConfirmationCode: boolean
  trustUnverifiedEmail: boolean
  verificationTtlSeconds: number | null
  warnings: string[]
  discoveredAt: string | null
}

let counter = 0

/** A valid create input, unique by name and client id, with `overrides` on top. */
export function validInput(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  counter += 1
  return {
    name: `Provider ${counter}`,
    clientId: `client-${process.pid}-${counter}`,
    clientSecret: `secret-${counter}-Zq8vXw3nP1`,
    scope: 'openid profile email',
    authorizationUrl: 'https://idp.example.com/oauth2/authorize',
    tokenUrl: 'https://idp.example.com/oauth2/token',
    whoAmIUrl: 'https://api.example.com/me',
    whoAmIMapping: '{userName: user.id, fullName: user.name, email: user.email}',
    ...overrides,
  }
}

export async function create(
  t: TestApp,
  key: string,
  overrides: Record<string, unknown> = {},
): Promise<IntegrationView> {
  const result = await t.gql<{ createOAuthIntegration: { integration: IntegrationView } }>(
    key,
    CREATE,
    { input: validInput(overrides) },
  )
  expect(result.errors).toBeUndefined()
  return result.data!.createOAuthIntegration.integration
}

/** Everything an integration write could touch: every integration row and the audit trail. */
export async function snapshot(t: TestApp) {
  const integrations = await t.deps.db
    .selectFrom('oauth_integrations')
    .selectAll()
    .orderBy('id')
    .execute()
  const audit = await t.deps.db.selectFrom('audit_events').selectAll().orderBy('id').execute()
  const sessions = await t.deps.db.selectFrom('auth_sessions').selectAll().orderBy('id').execute()
  return { integrations, audit, sessions }
}

/** The result is one BAD_USER_INPUT error whose message names `input.<field>`. */
export function expectBadInput(
  result: GqlResult<unknown>,
  field: string,
  fragment?: string | RegExp,
) {
  expect(result.errors?.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT'])
  const message = result.errors![0]!.message
  expect(message).toContain(`input.${field}: `)
  if (typeof fragment === 'string') expect(message).toContain(fragment)
  else if (fragment) expect(message).toMatch(fragment)
  return message
}

/** The api_keys row id of a key: what audit records name. */
export async function apiKeyRowId(t: TestApp, apiKey: string): Promise<string> {
  const keyId = parseApiKey(apiKey)!.keyId
  const row = await t.deps.db
    .selectFrom('api_keys')
    .select('id')
    .where('key_id', '=', keyId)
    .executeTakeFirstOrThrow()
  return row.id
}

/** Every table of the current schema, every row, as text: new tables are included by themselves. */
export async function dumpDatabase(t: TestApp): Promise<string> {
  const tables = await sql<{ table_name: string }>`
    select table_name from information_schema.tables
    where table_schema = current_schema() and table_type = 'BASE TABLE'
    order by table_name`.execute(t.deps.db)
  expect(tables.rows.map((r) => r.table_name)).toContain('oauth_integrations')
  const parts: string[] = []
  for (const { table_name } of tables.rows) {
    const rows = await sql<Record<string, unknown>>`select * from ${sql.table(table_name)}`.execute(
      t.deps.db,
    )
    parts.push(
      `${table_name}: ${JSON.stringify(rows.rows, (_key, value: unknown) => {
        if (value instanceof Uint8Array) {
          const bytes = Buffer.from(value)
          return `hex:${bytes.toString('hex')} utf8:${bytes.toString('utf8')}`
        }
        return typeof value === 'bigint' ? value.toString() : value
      })}`,
    )
  }
  return parts.join('\n')
}

/**
 * Sessions rows for the delete tests (the sign-in flow is not needed to have some). They expire
 * 10 minutes after the app's clock unless `expiresAt` says otherwise.
 */
export async function insertSession(
  t: TestApp,
  tenantId: string,
  integrationId: string,
  status: 'PENDING' | 'OPENED' | 'AUTHENTICATED' | 'FAILED' | 'EXPIRED' | 'CANCELLED',
  opts: { expiresAt?: Date; codeVerifierSealed?: string } = {},
): Promise<string> {
  const row = await t.deps.db
    .insertInto('auth_sessions')
    .values({
      tenant_id: tenantId,
      integration_id: integrationId,
      conversation_id: `conv-${status}`,
      contact_id: `contact-${status}`,
      redirect_route: 'IDP',
      status,
      link_hash: crypto.getRandomValues(new Uint8Array(32)),
      code_verifier_sealed: opts.codeVerifierSealed ?? null,
      expires_at: opts.expiresAt ?? new Date(t.deps.now().getTime() + 600_000),
      completed_at:
        status === 'PENDING' || status === 'OPENED' ? null : new Date('2026-11-01T00:00:00Z'),
    })
    .returning('id')
    .executeTakeFirstOrThrow()
  return row.id
}
