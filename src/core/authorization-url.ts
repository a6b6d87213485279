/**
 * The authorization request (RFC 6749 §4.1.1, PKCE RFC 7636 §4.3), built with the URL API so
 * nothing the tenant configured can smuggle parameters in. Parameters already on the configured
 * URL (e.g. `audience`, `prompt`) are kept; the integration rules refuse the ones set here.
 */
export const FLOW_PARAMETERS = [
  'response_type',
  'client_id',
  'redirect_uri',
  'scope',
  'state',
  'code_challenge',
  'code_challenge_method',
  'nonce',
] as const

export function buildAuthorizationUrl(
  integration: {
    readonly authorizationUrl: string
    readonly clientId: string
    readonly scope: string | null
  },
  request: {
    readonly redirectUri: string
    readonly state: string
    readonly codeChallenge: string | null
  },
): string {
  const url = new URL(integration.authorizationUrl)
  for (const name of FLOW_PARAMETERS) url.searchParams.delete(name)
  url.searchParams.set('response_type', 'code')
  url.searchParams.set('client_id', integration.clientId)
  url.searchParams.set('redirect_uri', request.redirectUri)
  if (integration.scope) url.searchParams.set('scope', integration.scope)
  url.searchParams.set('state', request.state)
  if (request.codeChallenge) {
    url.searchParams.set('code_challenge', request.codeChallenge)
    url.searchParams.set('code_challenge_method', 'S256')
  }
  return url.href
}

export const DEFAULT_MESSAGE_TEXT =
  '{business} would like to confirm who you are. Tap the button below to sign in securely.'
export const DEFAULT_BUTTON_LABEL = 'Sign in'

/** The authentication message for the snippet or bot; `{business}` becomes the tenant's name. */
export function renderAuthenticationMessage(
  template: { readonly messageText: string | null; readonly messageButtonLabel: string | null },
  business: string,
  url: string,
): { text: string; buttonLabel: string; url: string } {
  const fill = (s: string) => s.replaceAll('{business}', business)
  return {
    text: fill(template.messageText ?? DEFAULT_MESSAGE_TEXT),
    buttonLabel: fill(template.messageButtonLabel ?? DEFAULT_BUTTON_LABEL),
    url,
  }
}
