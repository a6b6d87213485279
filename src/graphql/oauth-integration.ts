/**
 * OAuthIntegration with its queries (ADMIN and AGENT keys) and its mutations (ADMIN keys). The
 * type's settings and both inputs are generated from the field table (core/integration.ts
 * INTEGRATION_FIELDS): names, types, nullability, defaults and descriptions come from there.
 * Validation is the service's alone (services/integrations.ts), which reports every wrong field
 * at once; GraphQL only checks the types.
 */
import type { InputFieldBuilder, ObjectFieldBuilder, SchemaTypes } from '@pothos/core'
import {
  CLIENT_SECRET_DESCRIPTION,
  INTEGRATION_FIELD_NAMES,
  INTEGRATION_FIELDS,
  type IntegrationField,
  type OAuthIntegration,
} from '../core/integration.ts'
import {
  TOKEN_ENDPOINT_AUTH_METHODS,
  type TokenEndpointAuthMethod,
} from '../core/integration-rules.ts'
import {
  createIntegration,
  deleteIntegration,
  getIntegration,
  integrationWarnings,
  listIntegrations,
  redirectUrlsOf,
  updateIntegration,
  type CreateIntegrationInput,
  type UpdateIntegrationInput,
} from '../services/integrations.ts'
import { builder } from './builder.ts'
import { principalOf } from './context.ts'

const METHOD_DESCRIPTIONS = {
  CLIENT_SECRET_POST: 'client_id and client_secret in the form body of the token request.',
  CLIENT_SECRET_BASIC: 'client_id and client_secret in an HTTP Basic Authorization header.',
} as const satisfies Record<TokenEndpointAuthMethod, string>

export const TokenEndpointAuthMethodEnum = builder.enumType('TokenEndpointAuthMethod', {
  description: 'How the service authenticates to the token endpoint (RFC 6749 §2.3.1).',
  values: Object.fromEntries(
    TOKEN_ENDPOINT_AUTH_METHODS.map((m) => [m, { description: METHOD_DESCRIPTIONS[m] }]),
  ) as { [M in keyof typeof METHOD_DESCRIPTIONS]: { description: string } },
})

type Types = typeof builder extends PothosSchemaBuilder<infer T> ? T : never
type PothosSchemaBuilder<T extends SchemaTypes> = PothosSchemaTypes.SchemaBuilder<T>

/** The output field of one setting. */
function settingField(t: ObjectFieldBuilder<Types, OAuthIntegration>, field: IntegrationField) {
  const { description, kind, type } = INTEGRATION_FIELDS[field]
  const value = (i: OAuthIntegration) => i[field]
  const optional = kind === 'optional'
  switch (type) {
    case 'string':
      return optional
        ? t.string({ nullable: true, description, resolve: (i) => value(i) as string | null })
        : t.string({ description, resolve: (i) => value(i) as string })
    case 'int':
      return optional
        ? t.int({ nullable: true, description, resolve: (i) => value(i) as number | null })
        : t.int({ description, resolve: (i) => value(i) as number })
    case 'boolean':
      return optional
        ? t.boolean({ nullable: true, description, resolve: (i) => value(i) as boolean | null })
        : t.boolean({ description, resolve: (i) => value(i) as boolean })
    case 'tokenEndpointAuthMethod':
      return t.field({
        type: TokenEndpointAuthMethodEnum,
        nullable: optional,
        description,
        resolve: (i) => value(i) as TokenEndpointAuthMethod,
      })
  }
}

/**
 * The input field of one setting. Create: required ones are non-null and defaulted ones carry
 * their default. Update: everything may be left out, and null clears or resets (the service
 * refuses null for a required one).
 */
function settingInput(
  t: InputFieldBuilder<Types, 'InputObject'>,
  field: IntegrationField,
  mode: 'create' | 'update',
) {
  const spec = INTEGRATION_FIELDS[field]
  let description: string = spec.description
  if (spec.kind === 'defaulted') {
    description +=
      mode === 'create' ? ` Default ${spec.default}.` : ` Null resets it to ${spec.default}.`
  }
  const required = mode === 'create' && spec.kind === 'required' && !('discoverable' in spec)
  const defaults =
    mode === 'create' && spec.kind === 'defaulted' ? { defaultValue: spec.default } : {}
  switch (spec.type) {
    case 'string':
      return t.string({ required, description, ...(defaults as { defaultValue?: string }) })
    case 'boolean':
      return t.boolean({ required, description, ...(defaults as { defaultValue?: boolean }) })
    case 'int':
      return t.int({ required, description, ...(defaults as { defaultValue?: number }) })
    case 'tokenEndpointAuthMethod':
      return t.field({
        type: TokenEndpointAuthMethodEnum,
        required,
        description,
        ...(defaults as { defaultValue?: TokenEndpointAuthMethod }),
      })
  }
}

function settingInputs(t: InputFieldBuilder<Types, 'InputObject'>, mode: 'create' | 'update') {
  return Object.fromEntries(INTEGRATION_FIELD_NAMES.map((f) => [f, settingInput(t, f, mode)]))
}

export const OAuthIntegrationRef = builder
  .objectRef<OAuthIntegration>('OAuthIntegration')
  .implement({
    description:
      'How this tenant signs end users in with one OAuth 2.0 provider (Authorization Code Grant). The client secret is write-only: `hasClientSecret` says whether one is stored.',
    fields: (t) => ({
      ...Object.fromEntries(INTEGRATION_FIELD_NAMES.map((f) => [f, settingField(t, f)])),
      id: t.exposeID('id', { description: 'The integration id (a UUID).' }),
      hasClientSecret: t.exposeBoolean('hasClientSecret', {
        description:
          'Whether a client secret is stored. The secret itself is write-only; send a new one with updateOAuthIntegration to rotate it.',
      }),
      redirectUrls: t.stringList({
        description:
          "The three callback URLs of this integration, to allow-list at the provider as redirect URIs: /idp/eu/oauth/callback, /web/inbound/abc/oauth/redirect and /web/inbound/abc/oauth/abcAuth2Redirect under the tenant's public base URL, each followed by /<key of this integration> (the tenant's bare routes with sharedRedirectUrls). A callback is accepted only on the URL its sign-in was started with.",
        resolve: (integration, _args, ctx) =>
          redirectUrlsOf(
            ctx.deps,
            integration,
            ctx.principal?.tenantId === integration.tenantId ? ctx.principal.tenantSlug : null,
          ),
      }),
      warnings: t.stringList({
        description:
          'What the integration does less than it may seem to, although valid: e.g. openid in scope without an issuer (plain OAuth, no ID token checked), PKCE off, a provider whose metadata does not list S256.',
        resolve: (integration) => integrationWarnings(integration),
      }),
      discoveredAt: t.field({
        type: 'DateTime',
        nullable: true,
        description:
          "When the issuer's metadata (OpenID Connect Discovery / RFC 8414) was last read, for the endpoints and keys it supplies; null when it was not needed.",
        resolve: (integration) => integration.metadataFetchedAt,
      }),
      createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was created.' }),
      updatedAt: t.expose('updatedAt', {
        type: 'DateTime',
        description: 'When it was last changed.',
      }),
    }),
  })

const CreateOAuthIntegrationInput = builder.inputType('CreateOAuthIntegrationInput', {
  description: 'A new OAuth integration. Optional fields left out take their documented default.',
  fields: (t) => ({
    ...settingInputs(t, 'create'),
    clientSecret: t.string({ required: true, description: CLIENT_SECRET_DESCRIPTION }),
  }),
})

function fieldsOfKind(kind: 'required' | 'optional' | 'defaulted'): string[] {
  return INTEGRATION_FIELD_NAMES.filter((f) => INTEGRATION_FIELDS[f].kind === kind)
}

/** `a, b and c` */
function listed(names: readonly string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`
}

/** What an update may not set to null: the required settings, and the secret after the client id. */
const notNullable = fieldsOfKind('required').flatMap((f) =>
  f === 'clientId' ? [f, 'clientSecret'] : [f],
)

const UpdateOAuthIntegrationInput = builder.inputType('UpdateOAuthIntegrationInput', {
  description: `Changes to an integration: a field left out keeps its value; null clears an optional field (${fieldsOfKind('optional').join(', ')}) or resets one with a default (${fieldsOfKind('defaulted').join(', ')}). ${listed(notNullable)} cannot be null.`,
  fields: (t) => ({
    ...settingInputs(t, 'update'),
    id: t.id({ required: true, description: 'The integration to change.' }),
    clientSecret: t.string({
      description: `A new client secret, which replaces (rotates) the stored one. Leave it out to keep the stored secret. ${CLIENT_SECRET_DESCRIPTION}`,
    }),
  }),
})

const OAuthIntegrationPayload = builder
  .objectRef<{ integration: OAuthIntegration }>('OAuthIntegrationPayload')
  .implement({
    description: 'The integration as it is after the change.',
    fields: (t) => ({
      integration: t.expose('integration', {
        type: OAuthIntegrationRef,
        description: 'The integration.',
      }),
    }),
  })

export const DeletePayload = builder.objectRef<{ id: string }>('DeletePayload').implement({
  description: 'What was deleted.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The id of the deleted object.' }),
  }),
})

builder.queryField('oauthIntegrations', (t) =>
  t.field({
    type: [OAuthIntegrationRef],
    description: "The tenant's OAuth integrations, by name (ADMIN and AGENT keys).",
    authScopes: { agent: true },
    resolve: (_root, _args, ctx) => listIntegrations(ctx.deps, principalOf(ctx).tenantId),
  }),
)

builder.queryField('oauthIntegration', (t) =>
  t.field({
    type: OAuthIntegrationRef,
    nullable: true,
    description:
      "One of the tenant's OAuth integrations (ADMIN and AGENT keys). NOT_FOUND when the tenant has no integration with this id.",
    authScopes: { agent: true },
    args: { id: t.arg.id({ required: true, description: 'The integration id.' }) },
    resolve: (_root, { id }, ctx) =>
      getIntegration(ctx.deps, principalOf(ctx).tenantId, String(id)),
  }),
)

builder.mutationField('createOAuthIntegration', (t) =>
  t.field({
    type: OAuthIntegrationPayload,
    description:
      'Creates an OAuth integration (ADMIN). Nothing is written when any field is wrong: the BAD_USER_INPUT message names each wrong field and says what is wrong.',
    authScopes: { admin: true },
    args: {
      input: t.arg({
        type: CreateOAuthIntegrationInput,
        required: true,
        description: 'The new integration.',
      }),
    },
    resolve: async (_root, { input }, ctx) => ({
      // GraphQL has checked each field's type (required ones are non-null); the service checks
      // the values.
      integration: await createIntegration(
        ctx.deps,
        principalOf(ctx),
        input as unknown as CreateIntegrationInput,
      ),
    }),
  }),
)

builder.mutationField('updateOAuthIntegration', (t) =>
  t.field({
    type: OAuthIntegrationPayload,
    description:
      'Changes an OAuth integration (ADMIN); a new clientSecret rotates the stored one. Nothing is written when any field is wrong.',
    authScopes: { admin: true },
    args: {
      input: t.arg({
        type: UpdateOAuthIntegrationInput,
        required: true,
        description: 'The integration id and the fields to change.',
      }),
    },
    resolve: async (_root, { input }, ctx) => ({
      integration: await updateIntegration(ctx.deps, principalOf(ctx), {
        ...(input as unknown as UpdateIntegrationInput),
        id: String(input.id),
      }),
    }),
  }),
)

builder.mutationField('deleteOAuthIntegration', (t) =>
  t.field({
    type: DeletePayload,
    description:
      'Deletes an OAuth integration (ADMIN). Its sign-ins that have not completed are cancelled; completed ones stay readable with their integration.',
    authScopes: { admin: true },
    args: { id: t.arg.id({ required: true, description: 'The integration to delete.' }) },
    resolve: async (_root, { id }, ctx) => {
      await deleteIntegration(ctx.deps, principalOf(ctx), String(id))
      return { id: String(id) }
    },
  }),
)
