import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMaskError } from '../../src/graphql/errors.ts'
import { createLogger } from '../../src/logger.ts'
import { BadUserInputError } from '../../src/core/errors.ts'
import { GraphQLError } from 'graphql'
import { createTestApp, type TestApp } from '../helpers/test-app.ts'

describe('error masking', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await createTestApp()
  })
  afterAll(() => t.close())

  it('keeps an AppError message and gives it its contract code', () => {
    const lines: string[] = []
    const mask = createMaskError(
      createLogger({ level: 'debug' }, { write: (l: string) => void lines.push(l) }),
    )
    const masked = mask(
      new GraphQLError('x', {
        originalError: new BadUserInputError('input.name: must not be empty'),
      }),
      'Unexpected error.',
    )
    expect(masked.message).toBe('input.name: must not be empty')
    expect((masked as GraphQLError).extensions.code).toBe('BAD_USER_INPUT')
    expect(lines).toEqual([])
  })

  it('masks any other error as "Unexpected error." and logs its detail', () => {
    const lines: string[] = []
    const mask = createMaskError(
      createLogger({ level: 'debug' }, { write: (l: string) => void lines.push(l) }),
    )
    const masked = mask(
      new GraphQLError('boom', {
        originalError: new Error('relation "secret_table" does not exist'),
      }),
      'Unexpected error.',
    )
    expect(masked.message).toBe('Unexpected error.')
    expect(JSON.stringify((masked as GraphQLError).toJSON())).not.toContain('secret_table')
    expect(lines.join('')).toContain('secret_table')
  })

  it('answers GraphQL syntax and validation errors as they are', async () => {
    const { adminKey } = await t.seedTenant()
    const result = await t.gql(adminKey, '{ viewer { nosuch } }')
    expect(result.errors?.[0]?.message).toMatch(/Cannot query field "nosuch"/)
  })
})
