/**
 * The route template of a request path, for span names and attributes: the path with the link
 * token, the session id and the callback key replaced by their names, so that none of them is ever
 * recorded, and one name ("other") for every path the service does not serve, so that probes of
 * random paths do not each make a name of their own.
 */
import { REDIRECT_ROUTES } from '../core/redirect-urls.ts'

// services/sign-in.ts LINK_PATH and RESULT_PATH (a test checks they agree): not imported, since
// tracing.ts loads this module before the database modules, which must load after it.
const LINK_PATH = '/l/'
const RESULT_PATH = '/r/'

const EXACT = new Set<string>([
  '/',
  '/graphql',
  '/healthz',
  '/readyz',
  ...Object.values(REDIRECT_ROUTES),
])
const CALLBACKS: readonly string[] = Object.values(REDIRECT_ROUTES)

export function routeTemplate(path: string): string {
  const pathname = path.split(/[?#]/, 1)[0] ?? ''
  if (EXACT.has(pathname)) return pathname
  if (pathname.startsWith(LINK_PATH)) return `${LINK_PATH}:token`
  if (pathname.startsWith(RESULT_PATH)) return `${RESULT_PATH}:sessionId`
  const callback = CALLBACKS.find((base) => pathname.startsWith(`${base}/`))
  if (callback !== undefined) return `${callback}/:callbackKey`
  return 'other'
}
