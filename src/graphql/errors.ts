import { GraphQLError } from 'graphql'
import { createGraphQLError } from 'graphql-yoga'
import { AppError, BadUserInputError, RateLimitedError } from '../core/errors.ts'
import type { Logger } from '../logger.ts'

/**
 * Yoga's `maskError`: AppErrors keep their message and get `extensions.code`; GraphQL's own
 * errors (syntax, validation) pass; everything else is a bug, logged with its detail and shown
 * as "Unexpected error." with no stack, SQL or URL.
 */
export function createMaskError(logger: Logger) {
  return (error: unknown, message: string): GraphQLError => {
    const original = error instanceof GraphQLError ? (error.originalError ?? undefined) : error
    const where =
      error instanceof GraphQLError ? { nodes: error.nodes ?? null, path: error.path ?? null } : {}
    if (original instanceof AppError) {
      const fields =
        original instanceof BadUserInputError && original.fields.length > 0
          ? { fields: original.fields.map(({ field, message }) => ({ field, message })) }
          : {}
      // Over a rate limit: HTTP 429 with Retry-After (yoga's result processor reads `http`
      // and leaves it out of the answer), and the same seconds in the error.
      const limited =
        original instanceof RateLimitedError
          ? {
              retryAfter: original.retryAfter,
              http: { status: 429, headers: { 'Retry-After': String(original.retryAfter) } },
            }
          : {}
      return createGraphQLError(original.message, {
        ...where,
        extensions: { code: original.code, ...fields, ...limited },
      })
    }
    if (error instanceof GraphQLError && !original) return error
    if (original instanceof GraphQLError) return original
    logger.error(
      { err: original, path: error instanceof GraphQLError ? error.path : undefined },
      'unexpected error',
    )
    return createGraphQLError(message, {
      ...where,
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    })
  }
}
