/**
 * The callback routes of the public contract (README, "Sign-in flow"): the three routes, bare
 * (integrations with shared callback URLs) and followed by an integration's key. Each completes
 * the flow the same way; the session decides which URL it accepts. A completed callback answers
 * 303 to the session's result page, so the code and state leave the address bar and the
 * history; a refused one shows a short page at once (nothing changed, nothing to come back to).
 * The provider's own text never reaches the end user.
 */
import { REDIRECT_ROUTES } from '../core/redirect-urls.ts'
import { completeSignIn, type RefusalReason } from '../services/complete-sign-in.ts'
import { viewResult } from '../services/confirm-sign-in.ts'
import type { Deps } from '../services/deps.ts'
import { RESULT_PATH } from '../services/sign-in.ts'
import { bindingCookies, clearBindingCookieHeader, isSecureOrigin } from './cookies.ts'
import { codePage, resultPage, seeOther, type ResultKind } from './pages.ts'
import type { RequestInfo } from './request-info.ts'
import type { Route } from './routes.ts'

/** The page for each refusal: nothing changed, so nothing but the page goes back. */
const REFUSAL_PAGES: { readonly [R in RefusalReason]: ResultKind } = {
  bad_request: 'bad_request',
  wrong_route: 'bad_request',
  wrong_host: 'bad_request',
  unknown_state: 'unknown',
  wrong_browser: 'wrong_browser',
  already_used: 'already_used',
  expired: 'expired',
  cancelled: 'cancelled',
}

async function callback(
  request: Request,
  url: URL,
  deps: Deps,
  info: RequestInfo,
): Promise<Response> {
  const secure = isSecureOrigin(deps)
  const outcome = await completeSignIn(deps, url, {
    ...bindingCookies(request, secure),
    ...info,
  })
  if (outcome.kind === 'refused') return resultPage(REFUSAL_PAGES[outcome.reason])
  return seeOther(outcome.resultUrl)
}

/** The result page: what became of the sign-in, and the confirmation code once. */
async function result(request: Request, url: URL, deps: Deps): Promise<Response> {
  const secure = isSecureOrigin(deps)
  const sessionId = url.pathname.slice(RESULT_PATH.length)
  const { view, clearCookie } = await viewResult(
    deps,
    sessionId,
    bindingCookies(request, secure).cookieFor,
  )
  // The binding cookie has done its job once the outcome is shown; drop it.
  const headers: Record<string, string> = clearCookie
    ? { 'set-cookie': clearBindingCookieHeader(sessionId, secure) }
    : {}
  switch (view.kind) {
    case 'code':
      return codePage(view.business, view.code, { headers })
    case 'failed':
      return resultPage('failed', { reasonCode: view.reasonCode, headers })
    default:
      return resultPage(view.kind, { headers })
  }
}

export const callbackRoutes: Route[] = [
  ...Object.values(REDIRECT_ROUTES).flatMap((path) => [
    { methods: ['GET'], path, handler: callback, limitedPerAddress: true },
    { methods: ['GET'], path: `${path}/`, handler: callback, limitedPerAddress: true },
  ]),
  { methods: ['GET', 'HEAD'], path: RESULT_PATH, handler: result },
]
