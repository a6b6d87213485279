/**
 * The three callback routes of the public contract (README, "Sign-in flow"). Each completes the
 * flow the same way; the session decides which one it accepts. The page shows only a short,
 * escaped outcome: the provider's own text never reaches the end user.
 */
import { REDIRECT_ROUTES } from '../core/redirect-urls.ts'
import { completeSignIn, type CallbackOutcome } from '../services/complete-sign-in.ts'
import type { Deps } from '../services/deps.ts'
import { bindingCookieLookup, clearBindingCookieHeader, isSecureOrigin } from './cookies.ts'
import { resultPage, type ResultKind } from './pages.ts'
import type { Route } from './routes.ts'

/** The page for each refusal: nothing changed, so nothing but the page goes back. */
const REFUSAL_PAGES: {
  readonly [R in Extract<CallbackOutcome, { kind: 'refused' }>['reason']]: ResultKind
} = {
  bad_request: 'bad_request',
  wrong_route: 'bad_request',
  unknown_state: 'unknown',
  wrong_browser: 'wrong_browser',
  already_used: 'already_used',
  expired: 'expired',
  cancelled: 'cancelled',
}

async function handle(request: Request, url: URL, deps: Deps): Promise<Response> {
  const secure = isSecureOrigin(deps)
  const outcome = await completeSignIn(deps, url, bindingCookieLookup(request, secure))
  if (outcome.kind === 'refused') return resultPage(REFUSAL_PAGES[outcome.reason])
  // The binding cookie has done its job once the session is final; drop it.
  const headers = { 'set-cookie': clearBindingCookieHeader(outcome.session.id, secure) }
  if (outcome.kind === 'authenticated') return resultPage('authenticated', { headers })
  return resultPage('failed', { reasonCode: outcome.session.failure?.code ?? '', headers })
}

export const callbackRoutes: Route[] = Object.values(REDIRECT_ROUTES).map((path) => ({
  methods: ['GET'],
  path,
  handler: handle,
}))
