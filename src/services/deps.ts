import type { Config } from '../config.ts'
import type { AuthFailureReport } from '../core/auth-failure.ts'
import type { OAuthIntegration } from '../core/integration.ts'
import type { Result } from '../core/result.ts'
import type { Sealer } from '../crypto/sealer.ts'
import type { Db } from '../db/database.ts'
import type { SessionEvents } from '../runtime/events.ts'
import type { Logger } from '../logger.ts'

/** The only way use cases reach providers (implemented in src/oauth/, over the guarded client). */
export interface ProviderGateway {
  /**
   * Validates the callback (state, `error=`, `iss` when the integration has an issuer) and
   * redeems the code: at most one token request, never retried.
   */
  exchangeCode(request: {
    readonly integration: OAuthIntegration
    readonly clientSecret: string | null
    readonly callbackUrl: URL
    readonly expectedState: string
    readonly redirectUri: string
    readonly codeVerifier: string | null
    /** The callback's remaining budget: token and WhoAmI calls share one deadline. */
    readonly deadlineMs?: number
  }): Promise<Result<{ readonly accessToken: string }, AuthFailureReport>>
  /** GET the WhoAmI URL with the access token as a Bearer header; a JSON object, size-capped. */
  fetchWhoAmI(
    integration: OAuthIntegration,
    accessToken: string,
    deadlineMs?: number,
  ): Promise<Result<unknown, AuthFailureReport>>
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
  readonly provider: ProviderGateway
}
