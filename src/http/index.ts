// The routes besides GraphQL and health: the sign-in link and the three callbacks.
import type { Deps } from '../services/deps.ts'
import { callbackRoutes } from './oauth-callback.ts'
import type { Route } from './routes.ts'
import { signInLinkRoutes } from './sign-in-link.ts'

export function extraRoutes(_deps: Deps): Route[] {
  return [...signInLinkRoutes, ...callbackRoutes]
}
