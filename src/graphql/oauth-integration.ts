/**
 * OAuthIntegration with its queries (ADMIN and AGENT keys) and its mutations (ADMIN keys).
 * The zod schemas here run the pure field rules of core/integration-rules.ts, so a client learns
 * every problem they find at once; the service runs them again, then the rules that need
 * configuration (OUTBOUND_ALLOW_HOSTS, e.g. private addresses) or the database (unique names,
 * the mix-up rule), before it writes anything.
 */
import { z } from 'zod'
import {
  SESSION_TTL_DEFAULT_SECONDS,
  SESSION_TTL_MAX_SECONDS,
  SESSION_TTL_MIN_SECONDS,
  type OAuthIntegration,
} from '../core/integration.ts'
import {
  clientIdProblem,
  clientSecretProblem,
  issuerSyntaxProblem,
  LIMITS,
  messageButtonLabelProblem,
  messageTextProblem,
  nameProblem,
  reservedParamProblem,
  scopeProblem,
  sessionTtlProblem,
  urlSyntaxProblem,
  whoAmIMappingProblem,
} from '../core/integration-rules.ts'
import {
  createIntegration,
  deleteIntegration,
  getIntegration,
  listIntegrations,
  redirectUrlsOf,
  updateIntegration,
} from '../services/integrations.ts'
import { builder } from './builder.ts'
import { principalOf } from './context.ts'

const NULL_KEEPS = 'must not be null (omit it to keep the current value)'
const NULL_KEEPS_SECRET =
  'must not be null (omit it to keep the stored secret, or send a new one to rotate it)'

/**
 * A zod schema for one input field that reports what a pure rule says. Absent passes; null passes
 * unless `nullProblem` says why it may not be null.
 */
function rule<T>(problemOf: (value: T) => string | null, nullProblem?: string) {
  return z
    .custom<T | null>()
    .superRefine((value, ctx) => {
      if (value === null) {
        if (nullProblem) ctx.addIssue({ code: 'custom', message: nullProblem })
        return
      }
      const problem = problemOf(value)
      if (problem !== null) ctx.addIssue({ code: 'custom', message: problem })
    })
    .optional()
}

const authorizationUrlProblem = (v: string) => urlSyntaxProblem(v) ?? reservedParamProblem(v)

/**
 * The rules of each input type run as one object schema, not per field: the validation plugin
 * stops at the first field with a problem, and clients should learn every problem at once.
 */
const optionalRules = {
  scope: rule(scopeProblem),
  whoAmIUrl: rule(urlSyntaxProblem),
  whoAmIMapping: rule(whoAmIMappingProblem),
  issuer: rule(issuerSyntaxProblem),
  sessionTtlSeconds: rule(sessionTtlProblem),
  messageText: rule(messageTextProblem),
  messageButtonLabel: rule(messageButtonLabelProblem),
}

const createRules = z.looseObject({
  name: rule(nameProblem),
  clientId: rule(clientIdProblem),
  clientSecret: rule(clientSecretProblem),
  authorizationUrl: rule(authorizationUrlProblem),
  tokenUrl: rule(urlSyntaxProblem),
  ...optionalRules,
})

const updateRules = z.looseObject({
  name: rule(nameProblem, NULL_KEEPS),
  clientId: rule(clientIdProblem, NULL_KEEPS),
  clientSecret: rule(clientSecretProblem, NULL_KEEPS_SECRET),
  authorizationUrl: rule(authorizationUrlProblem, NULL_KEEPS),
  tokenUrl: rule(urlSyntaxProblem, NULL_KEEPS),
  ...optionalRules,
})

export const TokenEndpointAuthMethodEnum = builder.enumType('TokenEndpointAuthMethod', {
  description: 'How the service authenticates to the token endpoint (RFC 6749 §2.3.1).',
  values: {
    CLIENT_SECRET_POST: {
      description: 'client_id and client_secret in the form body of the token request.',
    },
    CLIENT_SECRET_BASIC: {
      description: 'client_id and client_secret in an HTTP Basic Authorization header.',
    },
  } as const,
})

const D = {
  name: `A name for admins and agents to tell integrations apart, unique within the tenant ignoring case; trimmed, 1 to ${LIMITS.name} characters.`,
  clientId: `The client id the provider issued to this tenant (RFC 6749 §2.2); printable ASCII, at most ${LIMITS.clientId} characters. One (authorization host, client id) pair may belong to one tenant only (mix-up defence, RFC 9700 §4.4).`,
  clientSecret: `The client secret the provider issued; printable ASCII, at most ${LIMITS.clientSecret} characters. Write-only: stored sealed (AES-256-GCM) and never returned by any query.`,
  scope: `The scope to request: space-separated scope tokens (RFC 6749 §3.3), at most ${LIMITS.scope} characters. Null requests no scope.`,
  authorizationUrl: `The provider's authorization endpoint, where end users sign in. An absolute https URL without credentials or fragment, on a public host unless the host is in OUTBOUND_ALLOW_HOSTS (which also allows plain http). It may carry extra query parameters (e.g. audience, prompt) but none the service sets itself: response_type, client_id, redirect_uri, state, scope, nonce, code_challenge*.`,
  tokenUrl: `The provider's token endpoint, which the service calls to redeem the authorization code. The same URL rules as authorizationUrl, except for the query parameters.`,
  whoAmIUrl: `An endpoint the service calls with the access token (as a Bearer header) to learn who signed in; the same URL rules as tokenUrl. Null: no WhoAmI call, the identity is empty.`,
  whoAmIMapping: `A JMESPath expression that turns the WhoAmI answer into { email, userName, fullName, firstName, lastName, ... }, e.g. {userName: user.id, fullName: user.name, email: user.email}. Checked when saved (syntax, known functions and their argument counts, size); at most ${LIMITS.whoAmIMapping} characters. Null: the answer is used as it is.`,
  tokenEndpointAuthMethod: 'How the client authenticates at the token endpoint.',
  pkce: 'Whether sign-ins use PKCE (RFC 7636, S256). Turn it off only for providers that refuse it.',
  issuer: `The provider's issuer identifier (RFC 8414 §2: an https URL without query or fragment). When set, a callback that carries an \`iss\` parameter must carry exactly this value (RFC 9207), or the sign-in fails.`,
  splitFullName:
    'Split fullName into firstName and lastName when the WhoAmI answer gives only fullName.',
  overwriteContact:
    'Overwrite contact fields that already have a value with what the sign-in found; when false, only empty fields are filled.',
  sessionTtlSeconds: `How long a sign-in link stays usable, in seconds (${SESSION_TTL_MIN_SECONDS} to ${SESSION_TTL_MAX_SECONDS}).`,
  messageText: `The text of the authentication message sent to the end user with the sign-in button. Plain text with line breaks, at most ${LIMITS.messageText} characters; the placeholder {business} is replaced by the tenant's name, and no other placeholder is allowed. Null: the default text.`,
  messageButtonLabel: `The label of the sign-in button in the authentication message, at most ${LIMITS.messageButtonLabel} characters. Null: the default label.`,
} as const

export const OAuthIntegrationRef = builder
  .objectRef<OAuthIntegration>('OAuthIntegration')
  .implement({
    description:
      'How this tenant signs end users in with one OAuth 2.0 provider (Authorization Code Grant). The client secret is write-only: `hasClientSecret` says whether one is stored.',
    fields: (t) => ({
      id: t.exposeID('id', { description: 'The integration id (a UUID).' }),
      name: t.exposeString('name', { description: D.name }),
      clientId: t.exposeString('clientId', { description: D.clientId }),
      scope: t.exposeString('scope', { nullable: true, description: D.scope }),
      authorizationUrl: t.exposeString('authorizationUrl', { description: D.authorizationUrl }),
      tokenUrl: t.exposeString('tokenUrl', { description: D.tokenUrl }),
      whoAmIUrl: t.exposeString('whoAmIUrl', { nullable: true, description: D.whoAmIUrl }),
      whoAmIMapping: t.exposeString('whoAmIMapping', {
        nullable: true,
        description: D.whoAmIMapping,
      }),
      tokenEndpointAuthMethod: t.expose('tokenEndpointAuthMethod', {
        type: TokenEndpointAuthMethodEnum,
        description: D.tokenEndpointAuthMethod,
      }),
      pkce: t.exposeBoolean('pkce', { description: D.pkce }),
      issuer: t.exposeString('issuer', { nullable: true, description: D.issuer }),
      splitFullName: t.exposeBoolean('splitFullName', { description: D.splitFullName }),
      overwriteContact: t.exposeBoolean('overwriteContact', { description: D.overwriteContact }),
      sessionTtlSeconds: t.exposeInt('sessionTtlSeconds', { description: D.sessionTtlSeconds }),
      messageText: t.exposeString('messageText', { nullable: true, description: D.messageText }),
      messageButtonLabel: t.exposeString('messageButtonLabel', {
        nullable: true,
        description: D.messageButtonLabel,
      }),
      hasClientSecret: t.exposeBoolean('hasClientSecret', {
        description:
          'Whether a client secret is stored. The secret itself is write-only; send a new one with updateOAuthIntegration to rotate it.',
      }),
      redirectUrls: t.stringList({
        description:
          "The three callback URLs of this tenant, to allow-list at the provider as redirect URIs: /idp/eu/oauth/callback, /web/inbound/abc/oauth/redirect and /web/inbound/abc/oauth/abcAuth2Redirect under the tenant's public base URL.",
        resolve: (integration, _args, ctx) =>
          redirectUrlsOf(
            ctx.deps,
            integration.tenantId,
            ctx.principal?.tenantId === integration.tenantId ? ctx.principal.tenantSlug : null,
          ),
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
    name: t.string({ required: true, description: D.name }),
    clientId: t.string({ required: true, description: D.clientId }),
    clientSecret: t.string({
      required: true,
      description: D.clientSecret,
    }),
    scope: t.string({ description: D.scope }),
    authorizationUrl: t.string({
      required: true,
      description: D.authorizationUrl,
    }),
    tokenUrl: t.string({ required: true, description: D.tokenUrl }),
    whoAmIUrl: t.string({ description: D.whoAmIUrl }),
    whoAmIMapping: t.string({ description: D.whoAmIMapping }),
    tokenEndpointAuthMethod: t.field({
      type: TokenEndpointAuthMethodEnum,
      description: `${D.tokenEndpointAuthMethod} Default CLIENT_SECRET_POST.`,
      defaultValue: 'CLIENT_SECRET_POST',
    }),
    pkce: t.boolean({ description: `${D.pkce} Default true.`, defaultValue: true }),
    issuer: t.string({ description: D.issuer }),
    splitFullName: t.boolean({
      description: `${D.splitFullName} Default true.`,
      defaultValue: true,
    }),
    overwriteContact: t.boolean({
      description: `${D.overwriteContact} Default false.`,
      defaultValue: false,
    }),
    sessionTtlSeconds: t.int({
      description: `${D.sessionTtlSeconds} Default ${SESSION_TTL_DEFAULT_SECONDS}.`,
      defaultValue: SESSION_TTL_DEFAULT_SECONDS,
    }),
    messageText: t.string({ description: D.messageText }),
    messageButtonLabel: t.string({
      description: D.messageButtonLabel,
    }),
  }),
  validate: createRules,
})

const UpdateOAuthIntegrationInput = builder.inputType('UpdateOAuthIntegrationInput', {
  description:
    'Changes to an integration: a field left out keeps its value; null clears an optional field (scope, whoAmIUrl, whoAmIMapping, issuer, messageText, messageButtonLabel) or resets one with a default (tokenEndpointAuthMethod, pkce, splitFullName, overwriteContact, sessionTtlSeconds). name, clientId, clientSecret, authorizationUrl and tokenUrl cannot be null.',
  fields: (t) => ({
    id: t.id({ required: true, description: 'The integration to change.' }),
    name: t.string({ description: D.name }),
    clientId: t.string({ description: D.clientId }),
    clientSecret: t.string({
      description: `A new client secret, which replaces (rotates) the stored one. Leave it out to keep the stored secret. ${D.clientSecret}`,
    }),
    scope: t.string({ description: D.scope }),
    authorizationUrl: t.string({ description: D.authorizationUrl }),
    tokenUrl: t.string({ description: D.tokenUrl }),
    whoAmIUrl: t.string({ description: D.whoAmIUrl }),
    whoAmIMapping: t.string({ description: D.whoAmIMapping }),
    tokenEndpointAuthMethod: t.field({
      type: TokenEndpointAuthMethodEnum,
      description: `${D.tokenEndpointAuthMethod} Null resets it to CLIENT_SECRET_POST.`,
    }),
    pkce: t.boolean({ description: `${D.pkce} Null resets it to true.` }),
    issuer: t.string({ description: D.issuer }),
    splitFullName: t.boolean({ description: `${D.splitFullName} Null resets it to true.` }),
    overwriteContact: t.boolean({ description: `${D.overwriteContact} Null resets it to false.` }),
    sessionTtlSeconds: t.int({
      description: `${D.sessionTtlSeconds} Null resets it to ${SESSION_TTL_DEFAULT_SECONDS}.`,
    }),
    messageText: t.string({ description: D.messageText }),
    messageButtonLabel: t.string({
      description: D.messageButtonLabel,
    }),
  }),
  validate: updateRules,
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

const DeletePayload = builder.objectRef<{ id: string }>('DeletePayload').implement({
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
      integration: await createIntegration(ctx.deps, principalOf(ctx), input),
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
        ...input,
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
