// The routes besides GraphQL and health; the sign-in link and the callbacks register here.
import type { Deps } from '../services/deps.ts'
import type { Route } from './routes.ts'

export function extraRoutes(_deps: Deps): Route[] {
  return []
}
