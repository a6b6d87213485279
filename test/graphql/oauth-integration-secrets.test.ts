/**
 * The client secret is write-only and sealed (README, "Integrations"): no output type has
 * it, no table holds it in any readable encoding, no log line carries it, and its ciphertext opens
 * only on the row (and tenant) it was sealed for.
 */
import { getIntrospectionQuery, type IntrospectionQuery } from 'graphql'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SealError } from '../../src/crypto/sealer.ts'
import { getIntegration, openClientSecret } from '../../src/services/integrations.ts'
import { createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'
import {
  create,
  CREATE,
  DELETE,
  dumpDatabase,
  GET,
  LIST,
  UPDATE,
  validInput,
} from './integration-fixtures.ts'

const SECRET = 'Wr1te-0nly-Cl1ent-Secret-7f3a9c'
const ROTATED = 'R0tated-Cl1ent-Secret-b81d44e0'
const REFUSED = 'Refused-Cl1ent-Secret-55aa01'

function encodings(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8')
  return [
    secret,
    bytes.toString('base64'),
    bytes.toString('base64url'),
    bytes.toString('hex'),
    bytes.toString('hex').toUpperCase(),
    encodeURIComponent(secret),
    // A recognisable part is enough to count as a leak.
    secret.slice(0, 16),
  ]
}

async function sealedOf(t: TestApp, id: string): Promise<string> {
  const row = await t.deps.db
    .selectFrom('oauth_integrations')
    .select('client_secret_sealed')
    .where('id', '=', id)
    .executeTakeFirstOrThrow()
  return row.client_secret_sealed!
}

describe('client secrets', () => {
  let t: TestApp
  let acme: SeededTenant
  let globex: SeededTenant

  beforeAll(async () => {
    t = await createTestApp()
    acme = await t.seedTenant()
    globex = await t.seedTenant()
  })
  afterAll(() => t.close())

  it('has no output field that could return a secret', async () => {
    const result = await t.gql<IntrospectionQuery>(acme.adminKey, getIntrospectionQuery())
    const outputFields = result.data!.__schema.types.flatMap((type) =>
      type.kind === 'OBJECT' || type.kind === 'INTERFACE'
        ? type.fields.map((f) => `${type.name}.${f.name}`)
        : [],
    )
    expect(outputFields).toContain('OAuthIntegration.hasClientSecret')
    // The one exception: a webhook endpoint's own signing secret, shown once by the mutations
    // that make it (createWebhookEndpoint, rotateWebhookSecret).
    expect(outputFields.filter((f) => /secret/i.test(f) && !/hasClientSecret$/.test(f))).toEqual([
      'CreateWebhookEndpointPayload.secret',
      'Mutation.rotateWebhookSecret',
    ])
  })

  it('appears in no table and no log line, in any encoding, whatever happened to it', async () => {
    const integration = await create(t, acme.adminKey, { clientSecret: SECRET })
    // Read it back every way there is.
    await t.gql(acme.adminKey, LIST)
    await t.gql(acme.agentKey, GET, { id: integration.id })
    // A refused create (bad URL) and a refused update (bad scope), each carrying a secret.
    const refusedCreate = await t.gql(acme.adminKey, CREATE, {
      input: validInput({ clientSecret: REFUSED, tokenUrl: 'http://10.0.0.1/token' }),
    })
    const refusedUpdate = await t.gql(acme.adminKey, UPDATE, {
      input: { id: integration.id, clientSecret: REFUSED, scope: 'a\tb' },
    })
    // A refused request from another tenant and from an AGENT key.
    const foreign = await t.gql(globex.adminKey, UPDATE, {
      input: { id: integration.id, clientSecret: REFUSED },
    })
    const agent = await t.gql(acme.agentKey, UPDATE, {
      input: { id: integration.id, clientSecret: REFUSED },
    })
    // A malformed document that carries the secret as a literal.
    await t.gql(
      acme.adminKey,
      `mutation { updateOAuthIntegration(input: { clientSecret: "${REFUSED}" }) }`,
    )
    // Rotation, and an opened secret (the sign-in flow's path).
    const rotated = await t.gql(acme.adminKey, UPDATE, {
      input: { id: integration.id, clientSecret: ROTATED },
    })
    expect(rotated.errors).toBeUndefined()
    expect(
      await openClientSecret(t.deps, await getIntegration(t.deps, acme.id, integration.id)),
    ).toBe(ROTATED)
    const second = await create(t, globex.adminKey, { clientSecret: SECRET })
    await t.gql(globex.adminKey, DELETE, { id: second.id })

    const answers = JSON.stringify([refusedCreate, refusedUpdate, foreign, agent, rotated])
    const dump = await dumpDatabase(t)
    const logs = t.logs.join('\n')
    expect(dump).toContain('oauth_integrations')
    expect(logs.length).toBeGreaterThan(0)
    for (const secret of [SECRET, ROTATED, REFUSED]) {
      for (const encoded of encodings(secret)) {
        expect(dump).not.toContain(encoded)
        expect(logs).not.toContain(encoded)
        expect(answers).not.toContain(encoded)
      }
    }
  })

  it('seals the same secret differently each time', async () => {
    const a = await create(t, acme.adminKey, { clientSecret: SECRET })
    const b = await create(t, acme.adminKey, { clientSecret: SECRET })
    expect(await sealedOf(t, a.id)).not.toBe(await sealedOf(t, b.id))
    await t.gql(acme.adminKey, UPDATE, { input: { id: a.id, clientSecret: SECRET } })
    const again = await sealedOf(t, a.id)
    expect(again).not.toBe(await sealedOf(t, b.id))
    expect(await openClientSecret(t.deps, { id: a.id, tenantId: acme.id })).toBe(SECRET)
  })

  it('does not open a ciphertext copied onto another row or another tenant', async () => {
    const source = await create(t, acme.adminKey, { clientSecret: SECRET })
    const sameTenant = await create(t, acme.adminKey, { clientSecret: 'other-secret-1' })
    const otherTenant = await create(t, globex.adminKey, { clientSecret: 'other-secret-2' })
    const stolen = await sealedOf(t, source.id)

    for (const [target, tenantId] of [
      [sameTenant, acme.id],
      [otherTenant, globex.id],
    ] as const) {
      await t.deps.db
        .updateTable('oauth_integrations')
        .set({ client_secret_sealed: stolen })
        .where('id', '=', target.id)
        .execute()
      const integration = await getIntegration(t.deps, tenantId, target.id)
      expect(integration.hasClientSecret).toBe(true)
      const opening = openClientSecret(t.deps, integration)
      await expect(opening).rejects.toBeInstanceOf(SealError)
      await expect(opening).rejects.not.toThrow(SECRET)
    }
    // The row it was sealed for still opens it.
    expect(await openClientSecret(t.deps, await getIntegration(t.deps, acme.id, source.id))).toBe(
      SECRET,
    )
    // And the service will not open it under a tenant that is not the row's.
    expect(await openClientSecret(t.deps, { id: source.id, tenantId: globex.id })).toBeNull()
  })
})
