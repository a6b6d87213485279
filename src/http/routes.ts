/**
 * Non-GraphQL routes (the end-user pages, callbacks, health). A route is a Fetch function; exact
 * method + path matches come first, then prefix matches (for paths carrying a token). Anything
 * unmatched falls through to yoga (GraphQL, or its 404).
 */
import { addressBucket } from '../core/rate-limit.ts'
import { named, type NamedPlugin } from './named-plugin.ts'
import type { Deps } from '../services/deps.ts'
import { resultPage } from './pages.ts'
import { textResponse } from './response.ts'
import { isDatabaseUnavailable } from '../db/unavailable.ts'
import { routeTemplate } from '../observability/route-template.ts'
import { peerAddress, requestInfo, type RequestInfo } from './request-info.ts'

/** Retry-After of the page answered while the database is unavailable. */
const RETRY_AFTER_S = 5

export type RouteHandler = (
  request: Request,
  url: URL,
  deps: Deps,
  info: RequestInfo,
) => Promise<Response> | Response

export interface Route {
  readonly methods: readonly string[]
  /** Exact path, or a prefix when it ends with '/' (except '/' itself, which is exact). */
  readonly path: string
  readonly handler: RouteHandler
  /** Counted against RATE_LIMIT_IP_PER_MINUTE of the client's address (links and callbacks). */
  readonly limitedPerAddress?: boolean
}

/** Which route answers a request, and its answer: one place for both ways a request comes in. */
export interface Router {
  /** The route for this method and (already normalised) path, or undefined: yoga answers. */
  match(method: string, pathname: string): Route | undefined
  /**
   * The route's answer: the address's rate limit, then the handler; a failure becomes the
   * end-user page for it (`peer`: the connection's address, null without a socket).
   */
  answer(route: Route, request: Request, url: URL, peer: string | null): Promise<Response>
}

export function createRouter(routes: readonly Route[], deps: Deps): Router {
  const exact = new Map<string, Route>()
  const prefixes: Route[] = []
  for (const route of routes) {
    if (route.path.endsWith('/') && route.path !== '/') prefixes.push(route)
    else for (const method of route.methods) exact.set(`${method} ${route.path}`, route)
  }
  return {
    match: (method, pathname) =>
      exact.get(`${method} ${pathname}`) ??
      prefixes.find((r) => r.methods.includes(method) && pathname.startsWith(r.path)),
    async answer(route, request, url, peer) {
      try {
        const info = requestInfo(request, peer, deps.config.trustProxy)
        if (route.limitedPerAddress) {
          const wait = await deps.rateLimits.take('address', addressBucket(info.clientAddress))
          if (wait !== null) {
            return resultPage('too_many', { headers: { 'retry-after': String(wait) } })
          }
        }
        return await route.handler(request, url, deps, info)
      } catch (error) {
        // The database is down or restarting: say so (503, try again shortly) rather than "our
        // fault". A link, or a callback that failed before its exchange, works again once it is back.
        if (isDatabaseUnavailable(error)) {
          deps.logger.warn(
            { err: error, route: routeTemplate(url.pathname) },
            'route waits: the database is unavailable',
          )
          return resultPage('unavailable', { headers: { 'retry-after': String(RETRY_AFTER_S) } })
        }
        // The template, not the path: paths carry link tokens and session ids.
        deps.logger.error({ err: error, route: routeTemplate(url.pathname) }, 'route failed')
        // The routes serve end users' browsers: the error page carries the same headers as the others.
        return resultPage('error')
      }
    },
  }
}

/**
 * The routes inside yoga, for the requests that still reach it: runtime/app.ts answers routes
 * before yoga, except over node:http where the path is not plain (dot segments, percent
 * escapes), which only the URL parser yoga's request goes through normalises.
 */
export function useRoutes(router: Router): NamedPlugin {
  return named('routes', {
    async onRequest({ request, url, endResponse, serverContext }) {
      const route = router.match(request.method, url.pathname)
      if (!route) return
      endResponse(await router.answer(route, request, url, peerAddress(serverContext)))
    },
  })
}

export function json(body: unknown, status = 200): Response {
  return textResponse(
    status,
    { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
    JSON.stringify(body),
  )
}
