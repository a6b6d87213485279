import { z } from 'zod'
import type { ROLES } from '../core/api-key.ts'
import { createApiKey, revokeApiKey } from '../services/tenants.ts'
import { builder } from './builder.ts'
import { ApiKeyRoleEnum } from './viewer.ts'
import { principalOf } from './context.ts'

const CreatedApiKeyRef = builder
  .objectRef<{ apiKey: string; role: (typeof ROLES)[number]; keyId: string }>('CreatedApiKey')
  .implement({
    description: 'A new API key. The key is shown only here, once: store it now.',
    fields: (t) => ({
      apiKey: t.exposeString('apiKey', {
        description: 'The key, for `Authorization: Bearer <apiKey>`.',
      }),
      keyId: t.exposeString('keyId', {
        description: 'The public id of the key, to revoke it later.',
      }),
      role: t.expose('role', { type: ApiKeyRoleEnum, description: 'What the key may do.' }),
    }),
  })

const RevokedApiKeyRef = builder.objectRef<{ keyId: string }>('RevokedApiKey').implement({
  description: 'A key that no longer authenticates.',
  fields: (t) => ({ keyId: t.exposeString('keyId', { description: 'The public id of the key.' }) }),
})

builder.mutationField('createApiKey', (t) =>
  t.field({
    type: CreatedApiKeyRef,
    description: "Creates another key for the caller's tenant (ADMIN).",
    authScopes: { admin: true },
    args: {
      role: t.arg({ type: ApiKeyRoleEnum, required: true, description: 'What the key may do.' }),
      label: t.arg.string({
        description: 'What the key is for, e.g. "support bot".',
        validate: z
          .string()
          .trim()
          .max(200, 'must be at most 200 characters')
          .optional()
          .nullable(),
      }),
    },
    resolve: async (_root, args, ctx) => {
      const principal = principalOf(ctx)
      return createApiKey(ctx.deps, {
        slug: principal.tenantSlug,
        role: args.role,
        label: args.label ?? undefined,
        actorKeyId: principal.apiKeyId,
      })
    },
  }),
)

builder.mutationField('revokeApiKey', (t) =>
  t.field({
    type: RevokedApiKeyRef,
    description:
      "Revokes one of the tenant's keys by its keyId (ADMIN). Takes effect within seconds.",
    authScopes: { admin: true },
    args: {
      keyId: t.arg.string({ required: true, description: 'The keyId returned at creation.' }),
    },
    resolve: async (_root, { keyId }, ctx) => {
      const principal = principalOf(ctx)
      await revokeApiKey(ctx.deps, {
        slug: principal.tenantSlug,
        keyId,
        actorKeyId: principal.apiKeyId,
      })
      return { keyId }
    },
  }),
)
