/**
 * The ProviderGateway the sign-in flow uses, assembled from the callback validation and the
 * provider client over one guarded outbound client (only for tenants' URLs).
 */
import { authFailure } from '../core/auth-failure.ts'
import { err, ok } from '../core/result.ts'
import type { ProviderGateway } from '../services/deps.ts'
import { createOutboundClient, type OutboundOptions } from './outbound.ts'
import { createProviderClient, validateCallback } from './provider-client.ts'

export function createProviderGateway(
  options: OutboundOptions,
): ProviderGateway & { close(): Promise<void> } {
  const outbound = createOutboundClient(options)
  const client = createProviderClient({ outbound })
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
      if (oidc !== null || issuer.required) {
        return err(authFailure('internal_error', 'OpenID Connect sign-ins are not available yet'))
      }
      const callback = validateCallback({
        params: callbackUrl.searchParams,
        expectedState,
        issuer: issuer.expected,
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
        ...(deadlineMs !== undefined && { deadlineMs }),
      })
      if (!tokens.ok) return tokens
      return ok({
        accessToken: tokens.value.accessToken,
        idToken: null,
        callbackIssuer: callbackUrl.searchParams.get('iss'),
      })
    },
    async fetchWhoAmI(integration, accessToken, deadlineMs) {
      if (!integration.whoAmIUrl) return ok({})
      const answer = await client.fetchWhoAmI(integration.whoAmIUrl, accessToken, deadlineMs)
      return answer.ok ? ok(answer.value.payload) : answer
    },
    discover: async () => err('discovery is not available yet'),
    close: () => outbound.close(),
  }
}
