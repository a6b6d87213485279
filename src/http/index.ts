// The routes besides GraphQL and health: the sign-in link and the three callbacks.
import { callbackRoutes } from './oauth-callback.ts'
import type { Route } from './routes.ts'
import { signInLinkRoutes } from './sign-in-link.ts'

export const endUserRoutes: readonly Route[] = [...signInLinkRoutes, ...callbackRoutes]
