import { readFileSync } from 'node:fs'
import { printSchema } from 'graphql'
import { describe, expect, it } from 'vitest'
import { schema } from '../../src/graphql/schema.ts'

describe('schema.graphql', () => {
  it('is the printed schema of the code (run `npm run schema` after changing a type)', () => {
    const checkedIn = readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8')
    expect(checkedIn).toBe(`${printSchema(schema)}\n`)
  })
})
