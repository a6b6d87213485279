/**
 * The authorization request (RFC 6749 §4.1.1, PKCE RFC 7636 §4.3), built with the URL API so
 * nothing the tenant configured can smuggle parameters in. Parameters already on the configured
 * URL (e.g. `audience`, `prompt`) are kept; the integration rules refuse the ones set here.
 */
import type { StepUp } from './auth-session.ts'

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

/** Step-up parameters a sign-in may carry; each replaces one the configured URL already has. */
const STEP_UP_PARAMETERS = ['prompt', 'max_age', 'login_hint', 'acr_values'] as const

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
    /** OpenID Connect only (OIDC Core §3.1.2.1). */
    readonly nonce: string | null
    readonly stepUp: StepUp
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
  if (request.nonce !== null) url.searchParams.set('nonce', request.nonce)
  const { prompt, maxAgeSeconds, loginHint, acrValues } = request.stepUp
  const stepUp: Record<(typeof STEP_UP_PARAMETERS)[number], string | null> = {
    prompt,
    max_age: maxAgeSeconds === null ? null : String(maxAgeSeconds),
    login_hint: loginHint,
    acr_values: acrValues === null ? null : acrValues.join(' '),
  }
  for (const name of STEP_UP_PARAMETERS) {
    const value = stepUp[name]
    if (value !== null) url.searchParams.set(name, value)
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
