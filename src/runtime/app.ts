/**
 * createApp(deps): the whole HTTP surface as one Fetch handler (yoga + routes), with no socket.
 * main.ts listens with `handleNode`; tests call `app.fetch` directly or listen on port 0.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createYoga, type YogaServerInstance } from 'graphql-yoga'
import { normalizeNodeRequest, sendNodeResponse } from '@whatwg-node/server'
import type { GraphQLContext } from '../graphql/context.ts'
import { createGraphQLOptions, useGraphQLOptions } from '../graphql/options.ts'
import { useRequestBodyLimit } from '../http/body-limit.ts'
import { directGraphQLHandler, type DirectGraphQLCounts } from '../http/graphql-direct.ts'
import { healthRoutes, type Readiness } from '../http/health.ts'
import { landingPage } from '../http/pages.ts'
import { PLUGIN_NAME, type NamedPlugin } from '../http/named-plugin.ts'
import { withRequestLog } from '../http/request-log.ts'
import { createRouter, useRoutes, type Route, type Router } from '../http/routes.ts'
import { clientAddress } from '../core/client-address.ts'
import {
  graphqlRequestLimit,
  rateLimitedResponse,
  useGraphQLRateLimits,
} from '../graphql/request-limits.ts'
import { NO_RATE_LIMITS } from '../services/rate-limits.ts'
import type { Deps } from '../services/deps.ts'
import { createGraphQLObserver, useGraphQLObserver } from '../observability/graphql-operation.ts'

export interface App {
  readonly yoga: YogaServerInstance<Record<string, unknown>, GraphQLContext>
  readonly fetch: (request: Request) => Promise<Response>
  /** The node:http listener: the direct GraphQL path for common requests, yoga for the rest. */
  readonly handleNode: (req: IncomingMessage, res: ServerResponse) => void
  /** Which way GraphQL requests to handleNode went. */
  readonly directGraphQL: Readonly<DirectGraphQLCounts>
  /** Requests to handleNode a route answered without yoga (the others reach its routes plugin). */
  readonly directRoutes: Readonly<{ answered: number }>
  /** Marks the app as shutting down (readyz answers 503) and releases what it holds. */
  close(): Promise<void>
}

/**
 * The yoga plugins the service may run, each of them either honoured by the direct GraphQL path
 * as well (the shared parse and validation options) or concerned only with requests that path
 * never answers (routes other than /graphql; bodies it hands to yoga). Any other plugin would
 * apply to some GraphQL requests and not to others, so createApp refuses it.
 */
export const DIRECT_PATH_COMPATIBLE: ReadonlySet<string> = new Set([
  'graphql-options',
  'rate-limits',
  'routes',
  'request-body-limit',
  // The direct path runs every operation through the same observer (graphql-direct.ts).
  'graphql-observer',
])

/** Throws unless every plugin is one of DIRECT_PATH_COMPATIBLE. */
export function assertDirectPathCompatible(plugins: readonly NamedPlugin[]): void {
  for (const plugin of plugins) {
    const name = (plugin as Partial<NamedPlugin>)[PLUGIN_NAME]
    if (name === undefined || !DIRECT_PATH_COMPATIBLE.has(name)) {
      throw new Error(
        `yoga plugin ${name ?? '(unnamed)'} is not one the direct GraphQL path honours or does not need ` +
          '(runtime/app.ts DIRECT_PATH_COMPATIBLE): put the rule into graphql/options.ts instead',
      )
    }
  }
}

/** The query GraphiQL opens with: who the key is, then a sign-in's state. */
const GRAPHIQL_EXAMPLE = `# Put an API key into the Authorization header below (make one with
#   npm run --silent cli -- apikey create <tenant slug> --role ADMIN), then run:
query Viewer {
  viewer { tenant { slug } role }
}
`

export function createApp(
  deps: Deps,
  database: Readiness,
  extraRoutes: readonly Route[] = [],
  extraPlugins: readonly NamedPlugin[] = [],
): App {
  let closing = false
  const graphiql = !deps.config.production
  const routes = [
    ...healthRoutes(database, () => closing),
    { methods: ['GET', 'HEAD'], path: '/', handler: () => landingPage(graphiql) },
    ...extraRoutes,
  ]
  const router = createRouter(routes, deps)
  const graphql = createGraphQLOptions(deps)
  const observer = createGraphQLObserver(graphql.schema)
  const plugins = [
    useGraphQLOptions(graphql),
    useGraphQLRateLimits(deps, '/graphql'),
    useGraphQLObserver(observer),
    useRoutes(router),
    useRequestBodyLimit(),
    ...extraPlugins,
  ]
  assertDirectPathCompatible(plugins)
  const yoga = createYoga<Record<string, unknown>, GraphQLContext>({
    schema: graphql.schema,
    graphqlEndpoint: '/graphql',
    context: ({ request }) => graphql.context(request.headers.get('authorization')),
    graphiql: graphiql && {
      title: 'end-user-oauth',
      headers: JSON.stringify({ Authorization: 'Bearer <your API key>' }),
      defaultQuery: GRAPHIQL_EXAMPLE,
    },
    // GraphiQL's own bundle (no script from another origin), loaded on its first request only.
    renderGraphiQL: async (options) =>
      (await import('@graphql-yoga/render-graphiql')).renderGraphiQL(options),
    // Only CORS_ORIGINS may call /graphql from a browser, and never with the browser's
    // credentials (the API key is a header); the end-user pages and callbacks answer no CORS.
    cors: (request) => {
      const origin = request.headers.get('origin')
      if (origin === null || !deps.config.corsOrigins.includes(origin)) return false
      if (new URL(request.url).pathname !== '/graphql') return false
      return {
        origin,
        credentials: false,
        methods: ['GET', 'POST'],
        allowedHeaders: ['authorization', 'content-type', 'accept'],
        maxAge: 600,
      }
    },
    landingPage: false,
    maskedErrors: { maskError: graphql.maskError },
    logging: {
      debug: (...args) => deps.logger.debug(yogaLog(args), 'yoga'),
      info: (...args) => deps.logger.info(yogaLog(args), 'yoga'),
      warn: (...args) => deps.logger.warn(yogaLog(args), 'yoga'),
      // Unexpected errors are already logged, with their GraphQL path, by maskError.
      error: (...args) => deps.logger.debug(yogaLog(args), 'yoga'),
    },
    // The same limit is enforced by useRequestBodyLimit, without re-streaming every body.
    maxRequestBodySize: false,
    // Shared with the direct path, and bounded in size: yoga's default keeps 1,024 query texts
    // of any length (up to the body limit).
    parserAndValidationCache: {
      documentCache: graphql.documentCache,
      errorCache: graphql.errorCache,
    },
    plugins,
  })
  const direct = directGraphQLHandler({
    yoga,
    graphql,
    observer,
    onError: (error) => deps.logger.error({ err: error }, 'GraphQL answer could not be written'),
    limit: (req) => {
      if (deps.rateLimits === NO_RATE_LIMITS) return null
      const forwarded = req.headers['x-forwarded-for']
      const address = clientAddress(
        req.socket.remoteAddress,
        Array.isArray(forwarded) ? forwarded.join(',') : forwarded,
        deps.config.trustProxy,
      )
      return graphqlRequestLimit(deps, req.headers.authorization, address).then(
        (error) => error && rateLimitedResponse(error),
      )
    },
  })
  const directRoutes = { answered: 0 }
  const handleRoute = routeHandler(router, yoga, direct.handle, directRoutes, (error) =>
    deps.logger.error({ err: error }, 'route answer could not be written'),
  )
  return {
    yoga,
    fetch: (request) => {
      const url = new URL(request.url)
      const route = router.match(request.method, url.pathname)
      return route ? router.answer(route, request, url, null) : Promise.resolve(yoga.fetch(request))
    },
    handleNode: withRequestLog(handleRoute, deps.logger),
    directGraphQL: direct.counts,
    directRoutes,
    async close() {
      closing = true
      // Open subscriptions complete now, so their streams end cleanly rather than being cut.
      deps.events.end()
      await yoga.dispose()
    },
  }
}

/**
 * A path the WHATWG URL parser leaves as it is: segments of unreserved characters, no dot
 * segments, percent escapes, backslashes or empty segments. For such a path the route can be
 * found from the raw request target, before a Request is made; any other goes to yoga, whose
 * routes plugin sees the path normalised.
 */
const PLAIN_PATH = /^(?:\/[A-Za-z0-9_~-]+)*\/?$/

/**
 * The node:http listener: a request for a route is answered by the router without yoga's
 * request pipeline (whose plugins concern GraphQL only), through the same whatwg-node adapter
 * functions yoga's own listener uses; everything else goes to `next` (GraphQL, then yoga).
 * Measured with autocannon on a 2-core VM: GET / cost 93-100 µs of CPU per request through
 * yoga and 57-64 µs this way (bench/README.md, 2026-12-06).
 */
function routeHandler(
  router: Router,
  yoga: YogaServerInstance<Record<string, unknown>, GraphQLContext>,
  next: (req: IncomingMessage, res: ServerResponse) => void,
  counts: { answered: number },
  onError: (error: unknown) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  // As yoga's adapter decides it (createServerAdapter's __useCustomAbortCtrl default).
  const customAbort = yoga.fetchAPI.Request !== globalThis.Request
  return (req, res) => {
    const target = req.url ?? '/'
    const query = target.indexOf('?')
    const path = query === -1 ? target : target.slice(0, query)
    const route = PLAIN_PATH.test(path) ? router.match(req.method ?? 'GET', path) : undefined
    if (route === undefined) {
      next(req, res)
      return
    }
    counts.answered++
    const request = normalizeNodeRequest(req, yoga.fetchAPI, res, customAbort)
    router
      .answer(route, request, new URL(request.url), req.socket.remoteAddress ?? null)
      .then((response) => sendNodeResponse(response, res, req, true))
      .catch((error: unknown) => {
        onError(error)
        res.destroy()
      })
  }
}

function yogaLog(args: unknown[]): Record<string, unknown> {
  const err = args.find((a) => a instanceof Error)
  const detail = args
    .filter((a) => !(a instanceof Error))
    .map((a) => (typeof a === 'string' ? a : JSON.stringify(a)))
  return err ? { err, detail } : { detail }
}
