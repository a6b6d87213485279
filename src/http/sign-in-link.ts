/**
 * The link sent to the end user: GET shows a page and changes nothing (chat apps and mail
 * scanners fetch links for previews, some running scripts); only the person's press of the
 * page's button POSTs, which binds the session to this browser and answers 303 to the
 * provider's authorization URL.
 */
import type { Deps } from '../services/deps.ts'
import type { AuthSession } from '../core/auth-session.ts'
import { LINK_PATH, openLink, viewLink, type LinkHint, type LinkView } from '../services/sign-in.ts'
import { bindingCookieHeader, bindingCookies, isSecureOrigin } from './cookies.ts'
import { continuePage, resultPage, seeOther } from './pages.ts'
import type { RequestInfo } from './request-info.ts'
import type { Route } from './routes.ts'

function notReady(view: Exclude<LinkView, { kind: 'ready' }>): Response {
  if (view.kind === 'unknown') return resultPage('unknown')
  if (view.kind === 'in_use') return resultPage('in_use')
  if (view.kind === 'in_progress') return resultPage('in_progress')
  const status = view.session.status
  if (status === 'AUTHENTICATED') return resultPage('already_used')
  if (status === 'AWAITING_CONFIRMATION') return resultPage('code_shown')
  if (status === 'FAILED') {
    return resultPage('failed', { reasonCode: view.session.failure?.code ?? '' })
  }
  if (status === 'EXPIRED') return resultPage('expired')
  return resultPage('cancelled')
}

async function handle(
  request: Request,
  url: URL,
  deps: Deps,
  info: RequestInfo,
): Promise<Response> {
  const token = url.pathname.slice(LINK_PATH.length)
  const secure = isSecureOrigin(deps)
  const browser = {
    ...bindingCookies(request, secure),
    host: info.host,
  }
  if (request.method === 'GET' || request.method === 'HEAD') {
    const view = await viewLink(deps, token, browser)
    if (view.kind !== 'ready') return notReady(view)
    return continuePage(view.business, view.providerHost, hintFields(view.session))
  }
  // POST. A cross-site form post is refused (login CSRF into someone else's session).
  if (isCrossSitePost(request, deps)) return resultPage('bad_request')
  const outcome = await openLink(deps, token, browser, await readHint(request))
  if (outcome.kind !== 'redirect') return notReady(outcome)
  const maxAge = (outcome.session.expiresAt.getTime() - deps.now().getTime()) / 1000
  return seeOther(outcome.location, {
    'set-cookie': bindingCookieHeader(outcome.session.id, outcome.bindingCookie, secure, maxAge),
  })
}

/** The continue page's hidden fields: which session, tenant and integration the link is for. */
function hintFields(session: AuthSession): Record<string, string> {
  return { s: session.id, t: session.tenantId, i: session.integrationId }
}

/** The hidden fields of our page's form, when the POST carries them (else the link alone serves). */
async function readHint(request: Request): Promise<LinkHint | null> {
  const type = request.headers.get('content-type') ?? ''
  if (!type.startsWith('application/x-www-form-urlencoded')) return null
  const text = await request.text()
  if (text.length > 512) return null
  const form = new URLSearchParams(text)
  const [sessionId, tenantId, integrationId] = [form.get('s'), form.get('t'), form.get('i')]
  if (!sessionId || !tenantId || !integrationId) return null
  return { sessionId, tenantId, integrationId }
}

/**
 * Our page sends `Origin: null` (its Referrer-Policy is no-referrer), and so does any cross-site
 * page with the same policy, so `null` proves nothing: Fetch Metadata (`Sec-Fetch-Site`, sent by
 * current browsers) tells them apart. A foreign `Origin` is refused too, for browsers without it.
 */
function isCrossSitePost(request: Request, deps: Deps): boolean {
  const site = request.headers.get('sec-fetch-site')
  if (site !== null && site !== 'same-origin' && site !== 'none') return true
  const origin = request.headers.get('origin')
  return (
    origin !== null &&
    origin !== 'null' &&
    origin !== new URL(request.url).origin &&
    !sameOriginAsPublic(deps, origin)
  )
}

function sameOriginAsPublic(deps: Deps, origin: string): boolean {
  const base = deps.config.publicBaseUrl
  if (!base.includes('{tenant}')) return new URL(base).origin === origin
  // `{tenant}` stands for one host label.
  const sample = new URL(base.replaceAll('{tenant}', 'euotenantplaceholder')).origin
  const pattern = new RegExp(
    `^${escapeRegExp(sample).replace('euotenantplaceholder', '[a-z0-9-]+')}$`,
    'i',
  )
  return pattern.test(origin)
}

function escapeRegExp(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

export const signInLinkRoutes: Route[] = [
  { methods: ['GET', 'HEAD', 'POST'], path: LINK_PATH, handler: handle, limitedPerAddress: true },
]
