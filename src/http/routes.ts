/**
 * Non-GraphQL routes, served by the same yoga instance through one plugin. A route is a Fetch
 * function; exact method + path matches come first, then prefix matches (for paths carrying a
 * token). Anything unmatched falls through to yoga (GraphQL, or its 404).
 */
import { named, type NamedPlugin } from './named-plugin.ts'
import type { Deps } from '../services/deps.ts'
import { resultPage } from './pages.ts'

export type RouteHandler = (request: Request, url: URL, deps: Deps) => Promise<Response> | Response

export interface Route {
  readonly methods: readonly string[]
  /** Exact path, or a prefix when it ends with '/' (except '/' itself, which is exact). */
  readonly path: string
  readonly handler: RouteHandler
}

export function useRoutes(routes: readonly Route[], deps: Deps): NamedPlugin {
  const exact = new Map<string, RouteHandler>()
  const prefixes: Route[] = []
  for (const route of routes) {
    if (route.path.endsWith('/') && route.path !== '/') prefixes.push(route)
    else for (const method of route.methods) exact.set(`${method} ${route.path}`, route.handler)
  }
  return named('routes', {
    async onRequest({ request, url, endResponse }) {
      const handler =
        exact.get(`${request.method} ${url.pathname}`) ??
        prefixes.find((r) => r.methods.includes(request.method) && url.pathname.startsWith(r.path))
          ?.handler
      if (!handler) return
      try {
        endResponse(await handler(request, url, deps))
      } catch (error) {
        deps.logger.error({ err: error, path: url.pathname }, 'route failed')
        // The routes serve end users' browsers: the error page carries the same headers as the others.
        endResponse(resultPage('error'))
      }
    },
  })
}

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  })
}
