import type { Deps } from '../services/deps.ts'
import { authenticateApiKey, type Principal } from '../services/tenants.ts'

export interface GraphQLContext {
  readonly deps: Deps
  /** Null when the request carried no key, or a key that is malformed, unknown or revoked. */
  readonly principal: Principal | null
}

/** The principal of a request that passed the field's auth scopes; never null there. */
export function principalOf(ctx: GraphQLContext): Principal {
  if (!ctx.principal) throw new Error('auth scopes let an anonymous request through')
  return ctx.principal
}

/** `Authorization: Bearer <key>`; keys are never accepted in the URL, where logs would keep them. */
export async function createContext(
  deps: Deps,
  authorization: string | null,
): Promise<GraphQLContext> {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')
  const principal = match ? await authenticateApiKey(deps, match[1] as string) : null
  return { deps, principal }
}
