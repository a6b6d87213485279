/**
 * createApp(deps): the whole HTTP surface as one Fetch handler (yoga + routes), with no socket.
 * main.ts listens with `handleNode`; tests call `app.fetch` directly or listen on port 0.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { specifiedRules, type DocumentNode } from 'graphql'
import { createYoga, type YogaServerInstance } from 'graphql-yoga'
import type { DatabaseHandle } from '../db/database.ts'
import { createContext, type GraphQLContext } from '../graphql/context.ts'
import { createMaskError } from '../graphql/errors.ts'
import { schema } from '../graphql/schema.ts'
import { useRequestBodyLimit } from '../http/body-limit.ts'
import {
  directGraphQLHandler,
  QueryCache,
  type DirectGraphQLCounts,
} from '../http/graphql-direct.ts'
import { healthRoutes } from '../http/health.ts'
import { useRoutes, type Route } from '../http/routes.ts'
import type { Deps } from '../services/deps.ts'

export interface App {
  readonly yoga: YogaServerInstance<Record<string, unknown>, GraphQLContext>
  readonly fetch: (request: Request) => Promise<Response>
  /** The node:http listener: the direct GraphQL path for common requests, yoga for the rest. */
  readonly handleNode: (req: IncomingMessage, res: ServerResponse) => void
  /** Which way GraphQL requests to handleNode went. */
  readonly directGraphQL: Readonly<DirectGraphQLCounts>
  /** Marks the app as shutting down (readyz answers 503) and releases what it holds. */
  close(): Promise<void>
}

export function createApp(
  deps: Deps,
  database: Pick<DatabaseHandle, 'ping'>,
  extraRoutes: readonly Route[] = [],
): App {
  let closing = false
  const routes = [...healthRoutes(database, () => closing), ...extraRoutes]
  const maskError = createMaskError(deps.logger)
  // Shared by yoga and the direct path; bounded in size too: yoga's default keeps 1,024 query
  // texts of any length (up to the body limit).
  const documentCache = new QueryCache<DocumentNode>()
  const yoga = createYoga<Record<string, unknown>, GraphQLContext>({
    schema,
    graphqlEndpoint: '/graphql',
    context: ({ request }) => createContext(deps, request.headers.get('authorization')),
    graphiql: !deps.config.production,
    landingPage: false,
    maskedErrors: { maskError },
    logging: {
      debug: (...args) => deps.logger.debug(yogaLog(args), 'yoga'),
      info: (...args) => deps.logger.info(yogaLog(args), 'yoga'),
      warn: (...args) => deps.logger.warn(yogaLog(args), 'yoga'),
      // Unexpected errors are already logged, with their GraphQL path, by maskError.
      error: (...args) => deps.logger.debug(yogaLog(args), 'yoga'),
    },
    // The same limit is enforced by useRequestBodyLimit, without re-streaming every body.
    maxRequestBodySize: false,
    parserAndValidationCache: { documentCache, errorCache: new QueryCache() },
    plugins: [useRoutes(routes, deps), useRequestBodyLimit()],
  })
  const direct = directGraphQLHandler({
    yoga,
    schema,
    // What yoga validates with (graphql's specified rules, nothing added).
    validationRules: specifiedRules,
    documentCache,
    context: (authorization) => createContext(deps, authorization),
    maskError,
    onError: (error) => deps.logger.error({ err: error }, 'GraphQL answer could not be written'),
  })
  return {
    yoga,
    fetch: (request) => Promise.resolve(yoga.fetch(request)),
    handleNode: direct.handle,
    directGraphQL: direct.counts,
    async close() {
      closing = true
      await yoga.dispose()
    },
  }
}

function yogaLog(args: unknown[]): Record<string, unknown> {
  const err = args.find((a) => a instanceof Error)
  const detail = args
    .filter((a) => !(a instanceof Error))
    .map((a) => (typeof a === 'string' ? a : JSON.stringify(a)))
  return err ? { err, detail } : { detail }
}
