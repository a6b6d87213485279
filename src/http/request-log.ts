/**
 * One log line per HTTP request: method, the route as a template, status and milliseconds. The
 * path is never logged as sent: link tokens (`/l/<token>`), session ids of result pages and
 * callback keys become placeholders, query strings (the callbacks' `code` and `state`) are
 * dropped, and a path that matches no route is logged as `(unmatched)`, since whatever a client
 * puts there is not ours to store.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { REDIRECT_ROUTES } from '../core/redirect-urls.ts'
import type { Logger } from '../logger.ts'
import { LINK_PATH, RESULT_PATH } from '../services/sign-in.ts'

const EXACT = new Set(['/', '/graphql', '/healthz', '/readyz', ...Object.values(REDIRECT_ROUTES)])
const CALLBACKS = Object.values(REDIRECT_ROUTES)

/** The route a path belongs to, with its variable parts as `:name`. */
export function routeTemplate(pathname: string): string {
  if (EXACT.has(pathname)) return pathname
  if (pathname.startsWith(LINK_PATH)) return `${LINK_PATH}:token`
  if (pathname.startsWith(RESULT_PATH)) return `${RESULT_PATH}:sessionId`
  for (const route of CALLBACKS) {
    if (pathname.startsWith(`${route}/`)) return `${route}/:callbackKey`
  }
  return '(unmatched)'
}

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void

/** `handler`, logging each request once its response has been sent (or the client went away). */
export function withRequestLog(handler: NodeHandler, logger: Logger): NodeHandler {
  return (req, res) => {
    const began = performance.now()
    const url = req.url ?? '/'
    const query = url.indexOf('?')
    const route = routeTemplate(query < 0 ? url : url.slice(0, query))
    const done = () => {
      res.off('finish', done)
      res.off('close', done)
      logger.info(
        {
          method: req.method,
          route,
          status: res.statusCode,
          ms: Math.round((performance.now() - began) * 10) / 10,
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      )
    }
    res.on('finish', done)
    res.on('close', done)
    handler(req, res)
  }
}
