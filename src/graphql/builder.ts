/**
 * The Pothos builder: roles (scope-auth), input validation (zod through plugin-validation) and
 * error codes meet here. Scope-auth runs before validation, so a caller without the role learns
 * nothing about what input would have been accepted.
 */
import SchemaBuilder from '@pothos/core'
import ScopeAuthPlugin from '@pothos/plugin-scope-auth'
import ValidationPlugin from '@pothos/plugin-validation'
import { BadUserInputError, ForbiddenError, UnauthenticatedError } from '../core/errors.ts'
import type { GraphQLContext } from './context.ts'

export const builder = new SchemaBuilder<{
  Context: GraphQLContext
  AuthScopes: { admin: boolean; agent: boolean }
  Scalars: {
    DateTime: { Input: Date; Output: Date }
    JSON: { Input: unknown; Output: unknown }
  }
  DefaultFieldNullability: false
}>({
  plugins: [ScopeAuthPlugin, ValidationPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: (ctx) => ({
      admin: ctx.principal?.role === 'ADMIN',
      agent: ctx.principal?.role === 'AGENT' || ctx.principal?.role === 'ADMIN',
    }),
    unauthorizedError: (_parent, ctx) =>
      ctx.principal
        ? new ForbiddenError(
            `an ${ctx.principal.role} API key may not do this; it needs an ADMIN key`,
          )
        : new UnauthenticatedError(
            'missing, unknown or revoked API key: send "Authorization: Bearer <apiKey>"',
          ),
  },
  validation: {
    // "input.conversationId: must not be empty": every message names the field.
    validationError: (failure) =>
      BadUserInputError.of(
        failure.issues.map((issue) => ({
          field:
            issue.path?.map((p) => (typeof p === 'object' ? String(p.key) : String(p))).join('.') ??
            '',
          message: issue.message,
        })),
      ),
  },
})

builder.queryType({ description: 'Reads, always scoped to the tenant of the API key.' })
builder.mutationType({ description: 'Changes, always scoped to the tenant of the API key.' })
