/**
 * The ProviderGateway the sign-in flow uses, assembled from the callback validation, the
 * provider client and discovery over one guarded outbound client (only for tenants' URLs), with
 * one cache of issuers' signing keys for the whole process (jwks.ts).
 */
import { authFailure } from '../core/auth-failure.ts'
import { err, ok } from '../core/result.ts'
import type { ProviderGateway } from '../services/deps.ts'
import { discoverIssuer } from './discovery.ts'
import { createJwksCache, type JwksCache, type JwksCacheOptions } from './jwks.ts'
import { createOutboundClient, type OutboundOptions } from './outbound.ts'
import { createProviderClient, validateCallback } from './provider-client.ts'

export interface ProviderGatewayOptions extends OutboundOptions {
  /** The key cache's limits (tests shorten them); the outbound client is the gateway's. */
  readonly jwks?: Omit<JwksCacheOptions, 'outbound'>
}

export function createProviderGateway(
  options: ProviderGatewayOptions,
): ProviderGateway & { close(): Promise<void>; readonly jwks: JwksCache } {
  const outbound = createOutboundClient(options)
  const jwks = createJwksCache({ ...options.jwks, outbound })
  const client = createProviderClient({ outbound, jwks })
  return {
    deadlineMs: outbound.deadlineMs,
    async exchangeCode({
      integration,
      clientSecret,
      callbackUrl,
      expectedState,
      issuer,
      redirectUri,
      codeVerifier,
      oidc,
      deadlineMs,
    }) {
      const callback = validateCallback({
        params: callbackUrl.searchParams,
        expectedState,
        issuer: issuer.expected,
        requireIssuer: issuer.required,
        clientId: integration.clientId,
      })
      if (!callback.ok) return callback
      if (clientSecret === null) {
        return err(
          authFailure('provider_error', 'token: the integration has no client secret configured'),
        )
      }
      const tokens = await client.exchangeCode({
        integration: {
          clientId: integration.clientId,
          clientSecret,
          tokenUrl: integration.tokenUrl,
          tokenEndpointAuthMethod: integration.tokenEndpointAuthMethod,
          issuer: issuer.expected,
        },
        callback: callback.value,
        redirectUri,
        codeVerifier,
        oidc,
        ...(deadlineMs !== undefined && { deadlineMs }),
      })
      if (!tokens.ok) return tokens
      return ok({
        accessToken: tokens.value.accessToken,
        idToken: tokens.value.idToken,
        // As it came (validateCallback refused repeats); an empty `iss` is no issuer.
        callbackIssuer: callbackUrl.searchParams.get('iss') || null,
      })
    },
    async fetchWhoAmI(integration, accessToken, deadlineMs) {
      if (!integration.whoAmIUrl) return ok({})
      const answer = await client.fetchWhoAmI(integration.whoAmIUrl, accessToken, deadlineMs)
      return answer.ok ? ok(answer.value.payload) : answer
    },
    discover: (issuer) => discoverIssuer(outbound, issuer),
    jwks,
    close: () => outbound.close(),
  }
}
