/**
 * The GraphQL observer counts each executed operation once, by result, whether the executor
 * answers at once, later, or throws; a result without `data` (a request error the direct path
 * hands to yoga) is not counted. The counts reach the Prometheus text when it is scraped.
 */
import { parse } from 'graphql'
import { describe, expect, it } from 'vitest'
import { createGraphQLObserver } from '../../src/observability/graphql-operation.ts'
import { graphQLOperationCounts, registry } from '../../src/observability/metrics.ts'
import { schema } from '../../src/graphql/schema.ts'

const observer = createGraphQLObserver(schema)
const VIEWER = parse('query A { viewer { role } } query B { __typename }')

function counted(name: string) {
  const { okCount, errorCount } = graphQLOperationCounts('query', name)
  return { ok: okCount, error: errorCount }
}

describe('the GraphQL observer', () => {
  it('counts a result the executor has at once, one it resolves later, and errors', async () => {
    const before = counted('viewer')
    await observer.run(VIEWER, 'A', () => ({ data: { viewer: null } }))
    await observer.run(VIEWER, 'A', async () => ({ data: null, errors: [new Error('denied')] }))
    await expect(
      observer.run(VIEWER, 'A', () => {
        throw new Error('executor failed')
      }),
    ).rejects.toThrow('executor failed')
    await expect(
      observer.run(VIEWER, 'A', () => Promise.reject(new Error('executor rejected'))),
    ).rejects.toThrow('executor rejected')
    const after = counted('viewer')
    expect(after.ok - before.ok).toBe(1)
    expect(after.error - before.error).toBe(3)
  })

  it('does not count a request error found before execution (no data)', async () => {
    const before = counted('viewer')
    await observer.run(VIEWER, 'A', () => ({ errors: [new Error('variable $x is missing')] }))
    expect(counted('viewer')).toEqual(before)
  })

  it('labels each operation of a document by its own root field', () => {
    expect(observer.label(VIEWER, 'A')).toMatchObject({ type: 'query', name: 'viewer' })
    expect(observer.label(VIEWER, 'B')).toMatchObject({ type: 'query', name: 'other' })
    // Looked up once per document and operation.
    expect(observer.label(VIEWER, 'A')).toBe(observer.label(VIEWER, 'A'))
    // A name the document does not have is "other" and not remembered (clients choose names).
    const made = observer.label(VIEWER, 'NoSuchOperation')
    expect(made).toMatchObject({ type: 'query', name: 'other' })
    expect(observer.label(VIEWER, 'NoSuchOperation')).not.toBe(made)
  })

  it('the counts and durations reach the scraped text', async () => {
    await observer.run(VIEWER, 'B', () => ({ data: { __typename: 'Query' } }))
    const { ok } = counted('other')
    const text = await registry.metrics()
    expect(text).toContain(
      `euo_graphql_operations_total{type="query",operation="other",result="ok"} ${ok}`,
    )
    expect(text).toMatch(
      /euo_graphql_operation_duration_seconds_count\{type="query",operation="other"\} [1-9]/,
    )
  })
})
