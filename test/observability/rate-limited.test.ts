/**
 * euo_rate_limited_total counts the refusals of the real rate limits, labelled by which limit
 * refused (a fixed name), never by the key, tenant or address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { registry } from '../../src/observability/metrics.ts'
import { codes, createTestApp, type SeededTenant, type TestApp } from '../helpers/test-app.ts'

async function refusals(scope: string): Promise<number> {
  const metric = await registry.getSingleMetric('euo_rate_limited_total')?.get()
  return metric?.values.find((v) => v.labels.scope === scope)?.value ?? 0
}

describe('euo_rate_limited_total', () => {
  let t: TestApp
  let tenant: SeededTenant
  beforeAll(async () => {
    t = await createTestApp({ env: { RATE_LIMITS: 'on', RATE_LIMIT_KEY_PER_MINUTE: '2' } })
    tenant = await t.seedTenant('metered')
  })
  afterAll(async () => t?.close())

  it('goes up by one for each request a key limit refuses', async () => {
    const before = await refusals('api_key')
    const answers = []
    for (let i = 0; i < 4; i++) answers.push(await t.gql(tenant.agentKey, '{ viewer { role } }'))
    expect(answers.map((a) => codes(a)[0] ?? 'ok')).toEqual([
      'ok',
      'ok',
      'RATE_LIMITED',
      'RATE_LIMITED',
    ])
    expect((await refusals('api_key')) - before).toBe(2)
    const labels = JSON.stringify(await registry.getSingleMetric('euo_rate_limited_total')?.get())
    expect(labels).not.toContain(tenant.agentKey.slice(0, 20))
    expect(labels).not.toContain(tenant.id)
  })
})
