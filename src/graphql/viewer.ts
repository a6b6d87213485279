import type { Principal } from '../services/tenants.ts'
import { builder } from './builder.ts'
import { principalOf } from './context.ts'

const TenantRef = builder.objectRef<Principal>('Tenant').implement({
  description: 'The business an API key belongs to.',
  fields: (t) => ({
    id: t.exposeID('tenantId', { description: 'The tenant id.' }),
    slug: t.exposeString('tenantSlug', {
      description: "The host label used in this tenant's URLs.",
    }),
    name: t.exposeString('tenantName', { description: 'The name shown to end users.' }),
  }),
})

export const ApiKeyRoleEnum = builder.enumType('ApiKeyRole', {
  description: 'What an API key may do.',
  values: {
    ADMIN: { description: 'Manages integrations and keys, and everything an AGENT key does.' },
    AGENT: {
      description: 'Starts and reads sign-in sessions and tests mappings (agent desktops, bots).',
    },
  } as const,
})

const ViewerRef = builder.objectRef<Principal>('Viewer').implement({
  description: 'The caller, as its API key identifies it.',
  fields: (t) => ({
    tenant: t.field({ type: TenantRef, description: 'The tenant of the key.', resolve: (p) => p }),
    role: t.field({
      type: ApiKeyRoleEnum,
      description: 'The role of the key.',
      resolve: (p) => p.role,
    }),
  }),
})

builder.queryField('viewer', (t) =>
  t.field({
    type: ViewerRef,
    description: 'Who the API key of this request belongs to: a cheap way to check a key.',
    authScopes: { agent: true },
    resolve: (_root, _args, ctx) => principalOf(ctx),
  }),
)
