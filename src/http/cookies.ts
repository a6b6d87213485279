/**
 * The browser-binding cookie: one per session (so two links in one browser do not clash),
 * HttpOnly, SameSite=Lax (Strict would not be sent on the provider's cross-site redirect back),
 * Path=/, and on https origins Secure with the `__Host-` prefix. Only its hash is stored.
 */
import type { Deps } from '../services/deps.ts'
import type { CookieLookup } from '../services/sign-in.ts'

/** Cookies get `Secure` and the `__Host-` prefix when end users reach us over https. */
export function isSecureOrigin(deps: Deps): boolean {
  return deps.config.publicBaseUrl.startsWith('https:')
}

/**
 * The binding cookies this request carries: the one for a session, if any, and the values of all
 * of them (the callback's first statement looks for its session's among them).
 */
export function bindingCookies(
  request: Request,
  secure: boolean,
): { readonly cookieFor: CookieLookup; readonly bindingCookies: readonly string[] } {
  const cookies = parseCookies(request.headers.get('cookie'))
  const prefix = bindingCookieName('', secure)
  const values: string[] = []
  for (const [name, value] of cookies) if (name.startsWith(prefix) && value) values.push(value)
  return {
    cookieFor: (sessionId) => cookies.get(bindingCookieName(sessionId, secure)) ?? null,
    bindingCookies: values,
  }
}

function bindingCookieName(sessionId: string, secure: boolean): string {
  const name = `euo-b-${sessionId.replaceAll('-', '').slice(0, 16)}`
  return secure ? `__Host-${name}` : name
}

function parseCookies(header: string | null): Map<string, string> {
  const cookies = new Map<string, string>()
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const name = part.slice(0, eq).trim()
    // The first occurrence wins, as in browsers' own ordering (most specific path first).
    if (name && !cookies.has(name)) cookies.set(name, part.slice(eq + 1).trim())
  }
  return cookies
}

export function bindingCookieHeader(
  sessionId: string,
  value: string,
  secure: boolean,
  maxAgeSeconds: number,
): string {
  return cookieHeader(sessionId, value, secure, Math.max(1, Math.floor(maxAgeSeconds)))
}

/** Drops the binding cookie (same name and attributes, so the browser replaces it). */
export function clearBindingCookieHeader(sessionId: string, secure: boolean): string {
  return cookieHeader(sessionId, '', secure, 0)
}

function cookieHeader(sessionId: string, value: string, secure: boolean, maxAge: number): string {
  return [
    `${bindingCookieName(sessionId, secure)}=${value}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Lax',
    `Max-Age=${maxAge}`,
    ...(secure ? ['Secure'] : []),
  ].join('; ')
}
