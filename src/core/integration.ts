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
  whoAmIMappingProblem,
  type FieldProblem,
  type TokenEndpointAuthMethod,
} from './integration-rules.ts'

export type { TokenEndpointAuthMethod }

/** What the rules of a field may depend on besides its value: the service's configuration. */
export interface RuleContext {
  /** OUTBOUND_ALLOW_HOSTS: hosts provider URLs may name although they are private or plain http. */
  readonly allowHosts: readonly string[]
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
    description: `The provider's authorization endpoint, where end users sign in. An absolute https URL without credentials or fragment, on a public host unless the host is in OUTBOUND_ALLOW_HOSTS (which also allows plain http). It may carry extra query parameters (e.g. audience, prompt) but none the service sets itself: response_type, client_id, redirect_uri, state, scope, nonce, code_challenge*.`,
  },
  tokenUrl: {
    kind: 'required',
    type: 'string',
    column: 'token_url',
    problem: url('tokenUrl'),
    description: `The provider's token endpoint, which the service calls to redeem the authorization code. The same URL rules as authorizationUrl, except for the query parameters.`,
  },
  whoAmIUrl: {
    kind: 'optional',
    type: 'string',
    column: 'whoami_url',
    problem: url('whoAmIUrl'),
    description: `An endpoint the service calls with the access token (as a Bearer header) to learn who signed in; the same URL rules as tokenUrl. Null: no WhoAmI call, the identity is empty.`,
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
    description: `The provider's issuer identifier (RFC 8414 §2: an https URL without query or fragment). When set, a callback that carries an \`iss\` parameter must carry exactly this value (RFC 9207), or the sign-in fails.`,
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

export interface OAuthIntegration extends IntegrationSettings {
  readonly id: string
  readonly tenantId: string
  readonly hasClientSecret: boolean
  readonly createdAt: Date
  readonly updatedAt: Date
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
      if (kind === 'required' && (mode === 'create' || value === null)) {
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
