/**
 * The app's GraphQL set-up: both ways a request can take (yoga, and the direct path behind
 * app.handleNode) parse and validate with the one options object of graphql/options.ts, and
 * createApp refuses a yoga plugin that the direct path would not honour.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { assertDirectPathCompatible, createApp } from '../../src/runtime/app.ts'
import { named } from '../../src/http/named-plugin.ts'
import { createTestApp, requestOverSocket, type TestApp } from '../helpers/test-app.ts'

const INTROSPECTION = '{ __schema { queryType { name } } }'

describe('createApp', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp()
  })
  afterAll(async () => t?.close())

  it('refuses to start with a yoga plugin the direct path does not honour', () => {
    const plugin = named('max-depth', { onValidate() {} })
    expect(() => createApp(t.deps, t.database, [], [plugin])).toThrow(
      /yoga plugin max-depth is not one the direct GraphQL path honours/,
    )
    expect(() => assertDirectPathCompatible([{ onParse() {} } as never])).toThrow(
      /yoga plugin \(unnamed\)/,
    )
  })

  it('accepts the plugins of the list', () => {
    expect(() => createApp(t.deps, t.database, [], [named('routes', {})])).not.toThrow()
  })
})

describe('one set of validation rules on both paths', () => {
  let production: TestApp
  let base: string
  let agentKey: string
  beforeAll(async () => {
    production = await createTestApp({ env: { NODE_ENV: 'production' } })
    agentKey = (await production.seedTenant()).agentKey
    base = await production.listen()
  })
  afterAll(async () => production?.close())

  const request = (query: string) =>
    new Request(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${agentKey}` },
      body: JSON.stringify({ query }),
    })

  it('refuses introspection in production through yoga and over the socket alike', async () => {
    const viaYoga = await production.app.fetch(request(INTROSPECTION))
    const before = { ...production.app.directGraphQL }
    const viaSocket = await requestOverSocket(base, request(INTROSPECTION))
    // The direct path found the document invalid with the shared rules and let yoga word it.
    expect(production.app.directGraphQL.handedOver).toBe(before.handedOver + 1)
    const bodies = [await viaYoga.json(), await viaSocket.json()] as Array<{
      errors?: Array<{ message: string }>
      data?: unknown
    }>
    for (const body of bodies) {
      expect(body.data).toBeUndefined()
      expect(body.errors?.[0]?.message).toMatch(/introspection/i)
    }
  })

  it('answers an ordinary query on the direct path', async () => {
    const before = { ...production.app.directGraphQL }
    const answer = await requestOverSocket(base, request('{ viewer { role } }'))
    expect(await answer.json()).toEqual({ data: { viewer: { role: 'AGENT' } } })
    expect(production.app.directGraphQL.answered).toBe(before.answered + 1)
  })
})
