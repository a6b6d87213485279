/**
 * An OAuth integration: how one tenant signs its end users in with one OAuth 2.0 provider.
 *
 * Each setting is described once, in INTEGRATION_FIELDS: its kind (required, optional, or with a
 * default), its value type, its database column, how it is normalised, the rule it must pass and
 * the description the API documents. Everything else is derived from that table: the
 * `OAuthIntegration` type, the patch logic of create and update (below), the row mapping
 * (db/integrations.ts) and the GraphQL types and inputs (graphql/oauth-integration.ts).
 *
 * The client secret is not a setting: it is write-only, stays sealed in the database and is
 * opened only by the sign-in flow, right before the token request.
 */
import {
  clientIdProblem,
  issuerProblem,
  LIMITS,
  messageButtonLabelProblem,
  messageTextProblem,
  nameProblem,
  normaliseClientId,
  normaliseName,
  normaliseScope,
  normaliseText,
  providerUrlProblem,
  scopeProblem,
  SESSION_TTL_DEFAULT_SECONDS,
  SESSION_TTL_MAX_SECONDS,
  SESSION_TTL_MIN_SECONDS,
  sessionTtlProblem,
  TOKEN_ENDPOINT_AUTH_METHODS,
  VERIFICATION_TTL_MAX_SECONDS,
  VERIFICATION_TTL_MIN_SECONDS,
  verificationTtlProblem,
  whoAmIMappingProblem,
  type FieldProblem,
  type TokenEndpointAuthMethod,
} from './integration-rules.ts'

export type { TokenEndpointAuthMethod }

/** What the rules of a field may depend on besides its value: the service's configuration. */
export interface RuleContext {
  /** OUTBOUND_ALLOW_HOSTS: hosts provider URLs may name although they are private or plain http. */
  readonly allowHosts: readonly string[]
  /** Whether each tenant has a host of its own (`{tenant}` in PUBLIC_BASE_URL's host). */
  readonly tenantHosts: boolean
}

interface FieldBase<V> {
  /** The oauth_integrations column that stores it. */
  readonly column: string
  /** For the API: what it is, its rules, and what null means. */
  readonly description: string
  /** Applied before the rule and before storing (trimming, collapsing spaces). */
  readonly normalise?: (value: V) => V | null
  /** What is wrong with a (non-null) value, phrased to follow the field name; null if nothing. */
  readonly problem?: (value: V, context: RuleContext) => string | null
  /** The issuer's metadata can supply it (create may leave it out when `issuer` is given). */
  readonly discoverable?: true
}

type ValueType = 'string' | 'boolean' | 'int' | 'tokenEndpointAuthMethod'

interface ValueTypes {
  string: string
  boolean: boolean
  int: number
  tokenEndpointAuthMethod: TokenEndpointAuthMethod
}

/** Every integration must have it: an update may change it but not clear it. */
interface Required<T extends ValueType> extends FieldBase<ValueTypes[T]> {
  readonly kind: 'required'
  readonly type: T
}
/** Null (or absent on create) means none; an update with null clears it. */
interface Optional<T extends ValueType> extends FieldBase<ValueTypes[T]> {
  readonly kind: 'optional'
  readonly type: T
}
/** Absent on create, or null, means the default. */
interface Defaulted<T extends ValueType> extends FieldBase<ValueTypes[T]> {
  readonly kind: 'defaulted'
  readonly type: T
  readonly default: ValueTypes[T]
}

type FieldSpec = { [T in ValueType]: Required<T> | Optional<T> | Defaulted<T> }[ValueType]

const url =
  (field: 'authorizationUrl' | 'tokenUrl' | 'whoAmIUrl') => (value: string, context: RuleContext) =>
    providerUrlProblem(field, value, context.allowHosts)

export const INTEGRATION_FIELDS = {
  name: {
    kind: 'required',
    type: 'string',
    column: 'name',
    normalise: normaliseName,
    problem: nameProblem,
    description: `A name for admins and agents to tell integrations apart, unique within the tenant ignoring case; trimmed, 1 to ${LIMITS.name} characters.`,
  },
  clientId: {
    kind: 'required',
    type: 'string',
    column: 'client_id',
    normalise: normaliseClientId,
    problem: clientIdProblem,
    description: `The client id the provider issued to this tenant (RFC 6749 §2.2); printable ASCII, at most ${LIMITS.clientId} characters. One (authorization host, client id) pair may belong to one tenant only (mix-up defence, RFC 9700 §4.4).`,
  },
  scope: {
    kind: 'optional',
    type: 'string',
    column: 'scope',
    normalise: normaliseScope,
    problem: scopeProblem,
    description: `The scope to request: space-separated scope tokens (RFC 6749 §3.3), at most ${LIMITS.scope} characters. Null requests no scope.`,
  },
  authorizationUrl: {
    kind: 'required',
    type: 'string',
    column: 'authorization_url',
    problem: url('authorizationUrl'),
    discoverable: true,
    description: `The provider's authorization endpoint, where end users sign in. An absolute https URL without credentials or fragment, on a public host unless the host is in OUTBOUND_ALLOW_HOSTS (which also allows plain http). It may carry extra query parameters (e.g. audience, prompt) but none the service sets itself: response_type, client_id, redirect_uri, state, scope, nonce, code_challenge* (prompt, max_age, login_hint and acr_values given to startEndUserAuth replace the URL's). May be left out when issuer is given: the issuer's metadata supplies it.`,
  },
  tokenUrl: {
    kind: 'required',
    type: 'string',
    column: 'token_url',
    problem: url('tokenUrl'),
    discoverable: true,
    description: `The provider's token endpoint, which the service calls to redeem the authorization code, sending the client secret. The same URL rules as authorizationUrl, except for the query parameters. May be left out when issuer is given: the issuer's metadata supplies it. A change of it (or of the issuer that supplies it) needs a new clientSecret, so that the secret never goes to an endpoint it was not given for.`,
  },
  whoAmIUrl: {
    kind: 'optional',
    type: 'string',
    column: 'whoami_url',
    problem: url('whoAmIUrl'),
    description: `An endpoint the service calls with the access token (as a Bearer header) to learn who signed in; the same URL rules as tokenUrl. Left out when issuer is given: the issuer's userinfo endpoint, if its metadata names one. Null: no WhoAmI call (an OpenID Connect sign-in still has the ID token's claims).`,
  },
  whoAmIMapping: {
    kind: 'optional',
    type: 'string',
    column: 'whoami_mapping',
    normalise: (value: string) => value.trim(),
    problem: whoAmIMappingProblem,
    description: `A JMESPath expression that turns the WhoAmI answer into { email, userName, fullName, firstName, lastName, ... }, e.g. {userName: user.id, fullName: user.name, email: user.email}. Checked when saved (syntax, known functions and their argument counts, size); at most ${LIMITS.whoAmIMapping} characters. Null: the answer is used as it is.`,
  },
  tokenEndpointAuthMethod: {
    kind: 'defaulted',
    type: 'tokenEndpointAuthMethod',
    column: 'token_endpoint_auth_method',
    default: 'CLIENT_SECRET_POST',
    problem: (value: string) =>
      (TOKEN_ENDPOINT_AUTH_METHODS as readonly string[]).includes(value)
        ? null
        : `must be one of ${TOKEN_ENDPOINT_AUTH_METHODS.join(', ')}`,
    description: 'How the client authenticates at the token endpoint.',
  },
  pkce: {
    kind: 'defaulted',
    type: 'boolean',
    column: 'pkce',
    default: true,
    description:
      'Whether sign-ins use PKCE (RFC 7636, S256). Turn it off only for providers that refuse it.',
  },
  issuer: {
    kind: 'optional',
    type: 'string',
    column: 'issuer',
    problem: (value: string, context: RuleContext) => issuerProblem(value, context.allowHosts),
    description: `The provider's issuer identifier (RFC 8414 §2: an https URL without query or fragment). When set, its metadata (OpenID Connect Discovery, RFC 8414) is read when the integration is saved, and must name exactly this issuer; it supplies the endpoints left out and, with openid in scope, the keys ID tokens are checked with. A callback that carries an \`iss\` parameter must carry exactly this value (RFC 9207), and one without is refused when the metadata says the provider sends it. With openid in scope, the sign-in is OpenID Connect: a nonce is sent and the ID token is required and validated.`,
  },
  splitFullName: {
    kind: 'defaulted',
    type: 'boolean',
    column: 'split_full_name',
    default: true,
    description:
      'Split fullName into firstName and lastName when the WhoAmI answer gives only fullName.',
  },
  overwriteContact: {
    kind: 'defaulted',
    type: 'boolean',
    column: 'overwrite_contact',
    default: false,
    description:
      'Overwrite contact fields that already have a value with what the sign-in found; when false, only empty fields are filled.',
  },
  sessionTtlSeconds: {
    kind: 'defaulted',
    type: 'int',
    column: 'session_ttl_seconds',
    default: SESSION_TTL_DEFAULT_SECONDS,
    problem: sessionTtlProblem,
    description: `How long a sign-in link stays usable, in seconds (${SESSION_TTL_MIN_SECONDS} to ${SESSION_TTL_MAX_SECONDS}).`,
  },
  sharedRedirectUrls: {
    kind: 'defaulted',
    type: 'boolean',
    column: 'shared_redirect_urls',
    default: false,
    description:
      "Use the tenant's three bare callback URLs (the routes without the integration's key, which several integrations may share) instead of this integration's own. Needs issuer, and a host for each tenant ({tenant} in the host of PUBLIC_BASE_URL): on the bare routes a callback must carry the issuer as `iss` (RFC 9207), and on a host shared by tenants another tenant could claim the same issuer.",
  },
  requireConfirmationCode: {
    kind: 'defaulted',
    type: 'boolean',
    column: 'require_confirmation_code',
    default: false,
    description:
      'After the provider sign-in, show the end user a code to type into the conversation, and keep the session AWAITING_CONFIRMATION (identity null, contact untouched) until confirmEndUserAuth receives that code: proof that the person who signed in is the one in the conversation, not someone a link was forwarded to or who sent their own link to a victim.',
  },
  trustUnverifiedEmail: {
    kind: 'defaulted',
    type: 'boolean',
    column: 'trust_unverified_email',
    default: false,
    description:
      'Let an email the provider marks unverified (email_verified: false) fill the contact. When false, such an email stays in the identity (with emailVerified false) and never reaches the contact.',
  },
  verificationTtlSeconds: {
    kind: 'optional',
    type: 'int',
    column: 'verification_ttl_seconds',
    problem: verificationTtlProblem,
    description: `How long a sign-in with this integration keeps its contact verified, in seconds (${VERIFICATION_TTL_MIN_SECONDS} to ${VERIFICATION_TTL_MAX_SECONDS}): Contact.verifiedUntil is the sign-in time plus this, and Contact.verified is false after it. Null: a verification does not expire.`,
  },
  messageText: {
    kind: 'optional',
    type: 'string',
    column: 'message_text',
    normalise: normaliseText,
    problem: messageTextProblem,
    description: `The text of the authentication message sent to the end user with the sign-in button. Plain text with line breaks, at most ${LIMITS.messageText} characters; the placeholder {business} is replaced by the tenant's name, and no other placeholder is allowed. Null: the default text.`,
  },
  messageButtonLabel: {
    kind: 'optional',
    type: 'string',
    column: 'message_button_label',
    normalise: normaliseText,
    problem: messageButtonLabelProblem,
    description: `The label of the sign-in button in the authentication message, at most ${LIMITS.messageButtonLabel} characters. Null: the default label.`,
  },
} as const satisfies Record<string, FieldSpec>

export type IntegrationField = keyof typeof INTEGRATION_FIELDS
export const INTEGRATION_FIELD_NAMES = Object.keys(INTEGRATION_FIELDS) as IntegrationField[]

type Spec<K extends IntegrationField> = (typeof INTEGRATION_FIELDS)[K]
type ValueOf<K extends IntegrationField> = ValueTypes[Spec<K>['type']]

/** Every setting of an integration, normalised; optional ones are null when not set. */
export type IntegrationSettings = {
  readonly [K in IntegrationField]: Spec<K>['kind'] extends 'optional'
    ? ValueOf<K> | null
    : ValueOf<K>
}

/** An authorization server's metadata (RFC 8414 §2, OpenID Connect Discovery 1.0 §3). */
export interface ProviderMetadata {
  readonly issuer: string
  readonly authorizationEndpoint: string
  readonly tokenEndpoint: string
  readonly userinfoEndpoint: string | null
  readonly jwksUri: string | null
  readonly issParameterSupported: boolean
  readonly signingAlgorithms: readonly string[] | null
  readonly codeChallengeMethods: readonly string[] | null
  readonly tokenEndpointAuthMethods: readonly string[] | null
}

export interface OAuthIntegration extends IntegrationSettings {
  readonly id: string
  readonly tenantId: string
  /** The last segment of its own callback URLs (core/redirect-urls.ts). */
  readonly callbackKey: string
  /** The issuer's metadata as read when the integration was saved; null when not needed. */
  readonly providerMetadata: ProviderMetadata | null
  readonly metadataFetchedAt: Date | null
  readonly hasClientSecret: boolean
  readonly createdAt: Date
  readonly updatedAt: Date
}

/** Whether sign-ins with these settings are OpenID Connect: openid in the scope and an issuer. */
export function isOpenIdConnect(settings: Pick<IntegrationSettings, 'scope' | 'issuer'>): boolean {
  return settings.issuer !== null && scopeTokens(settings.scope).includes('openid')
}

/**
 * The metadata an OpenID Connect sign-in of this integration checks its ID token with, or null
 * when its sign-ins are plain OAuth (no openid, no issuer, or no keys known: an integration saved
 * before the metadata was read stays plain OAuth until it is saved again).
 */
export function openIdConnectMetadata(
  integration: Pick<OAuthIntegration, 'scope' | 'issuer' | 'providerMetadata'>,
): (ProviderMetadata & { readonly jwksUri: string }) | null {
  const metadata = integration.providerMetadata
  if (!isOpenIdConnect(integration) || metadata === null || metadata.jwksUri === null) return null
  return metadata as ProviderMetadata & { readonly jwksUri: string }
}

export function scopeTokens(scope: string | null): string[] {
  return scope === null ? [] : scope.split(' ').filter(Boolean)
}

/** Random callback keys: `random` gives bytes (the service passes crypto's); 16 base-36 chars. */
export function newCallbackKey(random: (bytes: number) => Uint8Array): string {
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz'
  let key = ''
  // 252 is the largest multiple of 36 below 256: rejecting larger bytes keeps every
  // character equally likely.
  while (key.length < 16) {
    for (const byte of random(32)) {
      if (byte < 252 && key.length < 16) key += alphabet[byte % 36]
    }
  }
  return key
}

export const CLIENT_SECRET_DESCRIPTION = `The client secret the provider issued; printable ASCII, at most ${LIMITS.clientSecret} characters. Write-only: stored sealed (AES-256-GCM) and never returned by any query.`

/**
 * A change to the settings as an API client sends it: an absent field keeps its value; null
 * clears an optional field and resets a defaulted one (null for a required one is refused).
 */
export type IntegrationPatch = { readonly [K in IntegrationField]?: ValueOf<K> | null | undefined }

type RequiredField = {
  [K in IntegrationField]: Spec<K>['kind'] extends 'required' ? K : never
}[IntegrationField]

/** A new integration's settings as an API client sends them: the required ones must be there. */
export type IntegrationCreate = IntegrationPatch & { readonly [K in RequiredField]: ValueOf<K> }

const NULL_KEEPS = 'must not be null (omit it to keep the current value)'

function spec(field: IntegrationField): FieldSpec {
  return INTEGRATION_FIELDS[field] as FieldSpec
}

/**
 * Every problem of a patch at once: each present, non-null field against its rule, and, for an
 * update, a null in a required field. `create` also reports required fields that are missing.
 */
export function patchProblems(
  patch: IntegrationPatch,
  context: RuleContext,
  mode: 'create' | 'update',
): FieldProblem[] {
  const problems: FieldProblem[] = []
  for (const field of INTEGRATION_FIELD_NAMES) {
    const value = patch[field]
    const { kind, problem } = spec(field)
    if (value === undefined || value === null) {
      // A discoverable field left out of a create is checked once discovery has run
      // (settingsProblems).
      const missing = mode === 'create' && !spec(field).discoverable
      if (kind === 'required' && (missing || (mode === 'update' && value === null))) {
        problems.push({ field, message: value === null ? NULL_KEEPS : 'is required' })
      }
      continue
    }
    const message = (problem as ((v: typeof value, c: RuleContext) => string | null) | undefined)?.(
      value,
      context,
    )
    if (message) problems.push({ field, message })
  }
  return problems
}

/** The settings a patch produces from `current` (normalised; absent keeps; null as above). */
export function applyPatch(
  current: IntegrationSettings,
  patch: IntegrationPatch,
): IntegrationSettings {
  const next: Record<string, unknown> = { ...current }
  for (const field of INTEGRATION_FIELD_NAMES) {
    const value = patch[field]
    if (value === undefined) continue
    const s = spec(field)
    if (value === null) {
      // Null for a required field was refused by patchProblems.
      if (s.kind === 'defaulted') next[field] = s.default
      else if (s.kind === 'optional') next[field] = null
      continue
    }
    const normalise = s.normalise as ((v: typeof value) => typeof value | null) | undefined
    next[field] = normalise ? normalise(value) : value
  }
  return next as IntegrationSettings
}

/** The settings of a new integration before its patch: defaults, and none for the rest. */
export function initialSettings(): IntegrationSettings {
  const settings: Record<string, unknown> = {}
  for (const field of INTEGRATION_FIELD_NAMES) {
    const s = spec(field)
    settings[field] = s.kind === 'defaulted' ? s.default : s.kind === 'optional' ? null : ''
  }
  return settings as IntegrationSettings
}

/** The settings that differ between two versions, in the table's order. */
export function changedFields(
  before: IntegrationSettings,
  after: IntegrationSettings,
): IntegrationField[] {
  return INTEGRATION_FIELD_NAMES.filter((field) => before[field] !== after[field])
}

/** The settings part of an integration. */
export function settingsOf(integration: IntegrationSettings): IntegrationSettings {
  const settings: Record<string, unknown> = {}
  for (const field of INTEGRATION_FIELD_NAMES) settings[field] = integration[field]
  return settings as IntegrationSettings
}

/**
 * The rules between fields, on the settings a create or an update produces (after discovery
 * filled what it could): what a field needs of the others.
 */
export function settingsProblems(
  settings: IntegrationSettings,
  context: RuleContext,
): FieldProblem[] {
  const problems: FieldProblem[] = []
  for (const field of INTEGRATION_FIELD_NAMES) {
    const s = spec(field)
    if (s.kind === 'required' && s.discoverable && settings[field] === '') {
      problems.push({
        field,
        message: 'is required unless issuer is given (its metadata supplies it)',
      })
    }
  }
  if (settings.sharedRedirectUrls) {
    if (settings.issuer === null) {
      problems.push({
        field: 'sharedRedirectUrls',
        message:
          'needs issuer: a callback on the shared URLs is accepted only when it names the issuer (RFC 9207 iss)',
      })
    }
    if (!context.tenantHosts) {
      problems.push({
        field: 'sharedRedirectUrls',
        message:
          'needs a host for each tenant ({tenant} in the host of PUBLIC_BASE_URL): on a host shared by tenants, another tenant could claim the same issuer',
      })
    }
  }
  return problems
}

/** What an admin should know about settings that are valid: they do less than they may seem to. */
export function settingsWarnings(settings: IntegrationSettings): string[] {
  const warnings: string[] = []
  if (settings.issuer === null && scopeTokens(settings.scope).includes('openid')) {
    warnings.push(
      'scope asks for openid, but no issuer is set: there is nothing to check an ID token against, so sign-ins are plain OAuth (no nonce, no ID token validation); set issuer to make them OpenID Connect',
    )
  }
  if (!settings.pkce) {
    warnings.push(
      'pkce is off: an authorization code stolen on its way back could be redeemed by someone else',
    )
  }
  return warnings
}
