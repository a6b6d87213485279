/**
 * The three callback routes of the seed. Each completes the flow the same way; the session
 * decides which one it accepts. The page shows only a short, escaped outcome: the provider's
 * own text never reaches the end user.
 */
import { REDIRECT_ROUTES } from '../core/redirect-urls.ts'
import { completeSignIn } from '../services/complete-sign-in.ts'
import type { Deps } from '../services/deps.ts'
import { bindingCookieName, parseCookies } from './cookies.ts'
import { resultPage } from './pages.ts'
import type { Route } from './routes.ts'
import { isSecureOrigin } from './sign-in-link.ts'

async function handle(request: Request, url: URL, deps: Deps): Promise<Response> {
  const secure = isSecureOrigin(deps)
  const cookies = parseCookies(request.headers.get('cookie'))
  const outcome = await completeSignIn(deps, url, (id) => cookies.get(bindingCookieName(id, secure)) ?? null)
  // The binding cookie has done its job once the session is final; drop it.
  const clear =
    outcome.kind === 'refused'
      ? undefined
      : {
          'set-cookie': `${bindingCookieName(outcome.session.id, secure)}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`,
        }
  switch (outcome.kind) {
    case 'authenticated':
      return resultPage('authenticated', clear ? { headers: clear } : {})
    case 'failed':
      return resultPage('failed', { reasonCode: outcome.session.failure?.code ?? '', ...(clear ? { headers: clear } : {}) })
    case 'refused':
      switch (outcome.reason) {
        case 'bad_request':
        case 'wrong_route':
          return resultPage('bad_request')
        case 'unknown_state':
          return resultPage('unknown')
        case 'wrong_browser':
          return resultPage('wrong_browser')
        case 'already_used':
          return resultPage('already_used')
        case 'expired':
          return resultPage('expired')
        case 'cancelled':
          return resultPage('cancelled')
      }
  }
}

export const callbackRoutes: Route[] = Object.values(REDIRECT_ROUTES).map((path) => ({
  methods: ['GET'],
  path,
  handler: handle,
}))
