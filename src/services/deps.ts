import type { Config } from '../config.ts'
import type { AuthFailureReport } from '../core/auth-failure.ts'
import type { OAuthIntegration } from '../core/integration.ts'
import type { Result } from '../core/result.ts'
import type { Sealer } from '../crypto/sealer.ts'
import type { Db } from '../db/database.ts'
import type { Invalidation, SessionEvents } from '../runtime/events.ts'
import type { IntegrationCache } from './integrations.ts'
import type { ApiKeyCache, TenantCache } from './tenants.ts'
import type { Logger } from '../logger.ts'
import type { RateLimiter } from './rate-limits.ts'

/** What an OpenID Connect sign-in expects of the ID token (OIDC Core §3.1.3.7). */
export interface OidcExpectations {
  /** The `nonce` sent in the authorization request; the ID token must carry it. */
  readonly nonce: string
  /** The issuer the ID token must name, exactly (the integration's `issuer`). */
  readonly issuer: string
  /** Where the issuer publishes its signing keys (from its metadata). */
  readonly jwksUri: string
  /**
   * The signing algorithms accepted for the ID token (what the issuer announced, or fewer); null:
   * RS256 only (OIDC Discovery default). `none` is ignored. HS256/384/512 here are verified with
   * the client secret (OIDC Core §10.1), so list them only when the integration means to accept
   * them: many issuers announce HS256 without ever using it.
   */
  readonly signingAlgorithms: readonly string[] | null
  /** `max_age` sent in the authorization request: `auth_time` must then be present and recent. */
  readonly maxAgeSeconds: number | null
}

/** The claims of a validated ID token (OIDC Core §2); other claims are kept as they came. */
export interface IdTokenClaims {
  readonly iss: string
  readonly sub: string
  readonly aud: string | readonly string[]
  readonly exp: number
  readonly iat: number
  readonly auth_time?: number
  readonly nonce?: string
  readonly acr?: string
  readonly amr?: readonly string[]
  readonly azp?: string
  readonly [claim: string]: unknown
}

/** What the callback's RFC 9207 `iss` parameter must be. */
export interface CallbackIssuer {
  /** The integration's issuer: an `iss` that differs is refused. Null: `iss` is recorded only. */
  readonly expected: string | null
  /**
   * Refuse a callback without `iss` (metadata says the provider sends it; shared callback URLs),
   * whether or not `expected` is set. An empty `iss` counts as none.
   */
  readonly required: boolean
}

export interface TokenExchange {
  readonly accessToken: string
  /** Present exactly when `oidc` was asked for, and then validated in full. */
  readonly idToken: IdTokenClaims | null
  /** The callback's `iss` parameter as it came (after the checks of CallbackIssuer); null: none. */
  readonly callbackIssuer: string | null
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

/** The only way use cases reach providers (implemented in src/oauth/, over the guarded client). */
export interface ProviderGateway {
  /**
   * Validates the callback (state, `error=`, `iss` as `issuer` says) and redeems the code: at
   * most one token request, never retried. With `oidc`, the ID token is required and validated
   * in full (signature against the issuer's keys, iss, aud, azp, exp, iat, nonce, auth_time for
   * max_age) before any token is returned.
   */
  exchangeCode(request: {
    readonly integration: OAuthIntegration
    readonly clientSecret: string | null
    readonly callbackUrl: URL
    readonly expectedState: string
    readonly issuer: CallbackIssuer
    readonly redirectUri: string
    readonly codeVerifier: string | null
    readonly oidc: OidcExpectations | null
    /** The callback's remaining budget: token and WhoAmI calls share one deadline. */
    readonly deadlineMs?: number
  }): Promise<Result<TokenExchange, AuthFailureReport>>
  /** GET the WhoAmI URL with the access token as a Bearer header; a JSON object, size-capped. */
  fetchWhoAmI(
    integration: OAuthIntegration,
    accessToken: string,
    deadlineMs?: number,
  ): Promise<Result<unknown, AuthFailureReport>>
  /**
   * Reads an issuer's metadata (OpenID Connect Discovery, then RFC 8414) through the guarded
   * client; its `issuer` must equal `issuer` exactly. The error is a message for the admin.
   */
  discover(issuer: string): Promise<Result<ProviderMetadata, string>>
  /** The total time one callback may spend talking to the provider. */
  readonly deadlineMs: number
}

/** What use cases need from the outside world, passed in so tests can pin the clock. */
export interface Deps {
  readonly db: Db
  readonly config: Config
  readonly sealer: Sealer
  readonly logger: Logger
  readonly now: () => Date
  readonly events: SessionEvents
  /** Tells caches of changes, here and (through the database) on other instances. */
  readonly invalidation: Invalidation
  readonly caches: ServiceCaches
  readonly provider: ProviderGateway
  /** Requests per minute per key, tenant, address and conversation (services/rate-limits.ts). */
  readonly rateLimits: RateLimiter
  /** This instance's webhook worker (runtime/webhook-worker.ts). */
  readonly webhookWake: WebhookCue
}

/** How use cases cue the webhook worker. */
export interface WebhookCue {
  /** Look for due deliveries now. */
  ring(): void
  /** An endpoint was created or enabled here: from now on look on every session change. */
  endpointEnabled(): void
}

/** The caches of one instance; each stays true through `invalidation`. */
export interface ServiceCaches {
  readonly apiKeys: ApiKeyCache
  readonly tenants: TenantCache
  readonly integrations: IntegrationCache
}
