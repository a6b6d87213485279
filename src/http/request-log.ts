/**
 * One log line per HTTP request: method, the route as a template, status and milliseconds. The
 * path is never logged as sent: link tokens (`/l/<token>`), session ids of result pages and
 * callback keys become placeholders, query strings (the callbacks' `code` and `state`) are
 * dropped, and a path that matches no route is logged as `other`, since whatever a client puts
 * there is not ours to store (observability/route-template.ts, which the traces use too).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { fixedFieldLines, type Logger } from '../logger.ts'
import { routeTemplate } from '../observability/route-template.ts'

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void

/** `handler`, logging each request once its response has been sent (or the client went away). */
export function withRequestLog(handler: NodeHandler, logger: Logger): NodeHandler {
  // These lines hold only the fields below, none of them secret.
  const lines = fixedFieldLines(logger)
  return (req, res) => {
    const began = performance.now()
    const route = routeTemplate(req.url ?? '/')
    // 'close' comes after 'finish' for a response that was sent, and alone for one cut short.
    res.once('close', () => {
      lines.info(
        {
          method: req.method,
          route,
          status: res.statusCode,
          ms: Math.round((performance.now() - began) * 10) / 10,
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      )
    })
    handler(req, res)
  }
}
