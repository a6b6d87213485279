/**
 * An OAuth integration: how one tenant signs its end users in with one OAuth 2.0 provider.
 * The client secret never appears here: it stays sealed in the database and is opened only by
 * the sign-in flow, right before the token request.
 */
export type TokenEndpointAuthMethod = 'CLIENT_SECRET_POST' | 'CLIENT_SECRET_BASIC'

export interface OAuthIntegration {
  readonly id: string
  readonly tenantId: string
  readonly name: string
  readonly clientId: string
  readonly scope: string | null
  readonly authorizationUrl: string
  readonly tokenUrl: string
  readonly whoAmIUrl: string | null
  /** A JMESPath expression applied to the WhoAmI answer; null means "use the answer as is". */
  readonly whoAmIMapping: string | null
  readonly tokenEndpointAuthMethod: TokenEndpointAuthMethod
  readonly pkce: boolean
  /** When set, the callback's `iss` (RFC 9207) must equal it. */
  readonly issuer: string | null
  /** Split `fullName` into first and last names when only it is given (default true). */
  readonly splitFullName: boolean
  /** Overwrite contact fields that already have a value (default false: fill only empty ones). */
  readonly overwriteContact: boolean
  /** How long a sign-in link lives, in seconds. */
  readonly sessionTtlSeconds: number
  /** Template of the authentication message; null means the default text. */
  readonly messageText: string | null
  readonly messageButtonLabel: string | null
  readonly hasClientSecret: boolean
  readonly createdAt: Date
  readonly updatedAt: Date
}

export const SESSION_TTL_DEFAULT_SECONDS = 600
export const SESSION_TTL_MIN_SECONDS = 60
export const SESSION_TTL_MAX_SECONDS = 3600
