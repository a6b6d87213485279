/**
 * The callback URLs a provider redirects end users back to. The public contract (README,
 * "Sign-in flow") fixes three routes, and each integration has its own three URLs: the routes
 * followed by `/<callbackKey>`, the integration's key. A callback is accepted only on the URL its
 * session was started with, so a code the provider sent for one integration can never be
 * redeemed at another integration's token endpoint (the mix-up defence of RFC 9700 §4.4.2).
 *
 * - `IDP`: `<base>/idp/eu/oauth/callback/<key>`, the web callback;
 * - `ABC`: `<base>/web/inbound/abc/oauth/redirect/<key>`, Apple Messages for Business;
 * - `ABC_AUTH2`: `<base>/web/inbound/abc/oauth/abcAuth2Redirect/<key>`, Apple Messages for
 *   Business.
 *
 * The bare routes (no key) serve integrations with `sharedRedirectUrls`, whose provider names
 * itself in every callback (`iss`, RFC 9207) on a host of their tenant's own.
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

/** A callback key: 16 lower-case letters and digits (core/integration.ts makes them). */
export const CALLBACK_KEY = /^[a-z0-9]{16}$/

/**
 * The tenant's public origin (and optional path prefix), without a trailing slash. Slugs are DNS
 * labels (lower-case letters, digits, hyphens), so the replacement needs no escaping.
 */
export function publicBaseFor(publicBaseUrl: string, tenantSlug: string): string {
  return publicBaseUrl.replaceAll('{tenant}', tenantSlug).replace(/\/+$/, '')
}

/** Whether `{tenant}` is in the host of PUBLIC_BASE_URL: each tenant has a host of its own. */
export function hasTenantHosts(publicBaseUrl: string): boolean {
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/]*)/i.exec(publicBaseUrl)?.[1] ?? ''
  return authority.includes('{tenant}')
}

/** The path of one route's callback: with the integration's key, or bare (key null). */
export function callbackPath(route: RedirectRouteName, callbackKey: string | null): string {
  return callbackKey === null ? REDIRECT_ROUTES[route] : `${REDIRECT_ROUTES[route]}/${callbackKey}`
}

/** The absolute callback URL of one route: the `redirect_uri` sent to providers. */
export function redirectUrlFor(
  publicBaseUrl: string,
  tenantSlug: string,
  route: RedirectRouteName,
  callbackKey: string | null,
): string {
  return `${publicBaseFor(publicBaseUrl, tenantSlug)}${callbackPath(route, callbackKey)}`
}

/** All three callback URLs, in the order of `REDIRECT_ROUTE_NAMES`. */
export function redirectUrlsFor(
  publicBaseUrl: string,
  tenantSlug: string,
  callbackKey: string | null,
): string[] {
  return REDIRECT_ROUTE_NAMES.map((route) =>
    redirectUrlFor(publicBaseUrl, tenantSlug, route, callbackKey),
  )
}

/**
 * Which route and key a request path names: a route's path, or it followed by `/<key>`. Null
 * for any other path (a malformed key included).
 */
export function parseCallbackPath(
  path: string,
): { readonly route: RedirectRouteName; readonly callbackKey: string | null } | null {
  for (const route of REDIRECT_ROUTE_NAMES) {
    const base = REDIRECT_ROUTES[route]
    if (path === base) return { route, callbackKey: null }
    if (path.startsWith(`${base}/`)) {
      const key = path.slice(base.length + 1)
      return CALLBACK_KEY.test(key) ? { route, callbackKey: key } : null
    }
  }
  return null
}
