/**
 * The callback URLs a provider redirects end users back to. There are three per tenant, not one
 * per integration (a fixed public contract, README "Sign-in flow", which tenants allow-list at
 * their provider):
 *
 * - `IDP`: `<base>/idp/eu/oauth/callback`, the web callback;
 * - `ABC`: `<base>/web/inbound/abc/oauth/redirect`, Apple Messages for Business;
 * - `ABC_AUTH2`: `<base>/web/inbound/abc/oauth/abcAuth2Redirect`, Apple Messages for Business.
 *
 * `<base>` is PUBLIC_BASE_URL with `{tenant}` replaced by the tenant's slug wherever it appears,
 * e.g. `https://{tenant}.auth.example.com` → `https://acme.auth.example.com`.
 */

export const REDIRECT_ROUTES = {
  IDP: '/idp/eu/oauth/callback',
  ABC: '/web/inbound/abc/oauth/redirect',
  ABC_AUTH2: '/web/inbound/abc/oauth/abcAuth2Redirect',
} as const

export type RedirectRouteName = keyof typeof REDIRECT_ROUTES

/** Every route, in the contract's order (the order `redirectUrls` lists them in). */
export const REDIRECT_ROUTE_NAMES: readonly RedirectRouteName[] = ['IDP', 'ABC', 'ABC_AUTH2']

/**
 * The tenant's public origin (and optional path prefix), without a trailing slash. Slugs are DNS
 * labels (lower-case letters, digits, hyphens), so the replacement needs no escaping.
 */
export function publicBaseFor(publicBaseUrl: string, tenantSlug: string): string {
  return publicBaseUrl.replaceAll('{tenant}', tenantSlug).replace(/\/+$/, '')
}

/** The absolute callback URL of one route for one tenant: the `redirect_uri` sent to providers. */
export function redirectUrlFor(
  publicBaseUrl: string,
  tenantSlug: string,
  route: RedirectRouteName,
): string {
  return `${publicBaseFor(publicBaseUrl, tenantSlug)}${REDIRECT_ROUTES[route]}`
}

/** All three callback URLs of a tenant, in the order of `REDIRECT_ROUTE_NAMES`. */
export function redirectUrlsFor(publicBaseUrl: string, tenantSlug: string): string[] {
  return REDIRECT_ROUTE_NAMES.map((route) => redirectUrlFor(publicBaseUrl, tenantSlug, route))
}
