/**
 * The end user's pages: the link's Continue page and the result pages. Small, mobile-first,
 * self-contained (no third-party resources, no script at all), every dynamic value HTML-escaped,
 * and sent with no-store, no-referrer, nosniff, HSTS and a CSP that forbids framing and scripts.
 * The Continue page sends nothing by itself: only the person's press of its button does, so a
 * page that merely navigates someone's browser to a link cannot sign them in.
 *
 * Texts live in a catalog keyed by message id, so a language is a new catalog, not new code.
 */
import { textResponse } from './response.ts'

export type PageMessageId =
  | 'continue.title'
  | 'continue.body'
  | 'continue.warning'
  | 'continue.button'
  | 'unknown.title'
  | 'unknown.body'
  | 'in_use.title'
  | 'in_use.body'
  | 'in_progress.title'
  | 'in_progress.body'
  | 'authenticated.title'
  | 'authenticated.body'
  | 'failed.title'
  | 'failed.body'
  | 'expired.title'
  | 'expired.body'
  | 'cancelled.title'
  | 'cancelled.body'
  | 'already_used.title'
  | 'already_used.body'
  | 'wrong_browser.title'
  | 'wrong_browser.body'
  | 'bad_request.title'
  | 'bad_request.body'
  | 'too_many.title'
  | 'too_many.body'
  | 'error.title'
  | 'error.body'
  | 'unavailable.title'
  | 'unavailable.body'
  | 'code.title'
  | 'code.body'
  | 'code.warning'
  | 'code_shown.title'
  | 'code_shown.body'

type Catalog = Record<PageMessageId, string>

const en: Catalog = {
  'continue.title': 'Sign in to {business}',
  'continue.body':
    'You will continue to the sign-in page of {business}. When you are done, come back to your conversation.',
  'continue.warning': 'Only continue if you asked for this in your conversation with {business}.',
  'continue.button': 'Continue to {provider} to sign in to {business}',
  'unknown.title': 'This link is not valid',
  'unknown.body': 'Please ask for a new sign-in link in your conversation.',
  'in_use.title': 'This link is already in use',
  'in_use.body':
    'This sign-in link was opened in another browser. Please ask for a new link in your conversation.',
  'in_progress.title': 'Your sign-in is being completed',
  'in_progress.body': 'This takes a moment. You can return to the conversation.',
  'authenticated.title': "You're signed in",
  'authenticated.body': 'You can return to the conversation.',
  'failed.title': 'Sign-in did not work',
  'failed.body': '{reason} Please return to the conversation and ask for a new link.',
  'expired.title': 'This link has expired',
  'expired.body':
    'Sign-in links only work for a few minutes. Please ask for a new link in your conversation.',
  'cancelled.title': 'This link is no longer valid',
  'cancelled.body':
    'A newer sign-in link was sent, or this one was withdrawn. Please use the latest link in your conversation.',
  'already_used.title': 'This sign-in is already finished',
  'already_used.body': 'You can return to the conversation.',
  'wrong_browser.title': 'Please use the same browser',
  'wrong_browser.body':
    'Sign-in has to finish in the browser where you opened the link. Please open the link from your conversation again.',
  'bad_request.title': 'Something was wrong with this request',
  'bad_request.body': 'Please return to the conversation and ask for a new link.',
  'too_many.title': 'Too many requests',
  'too_many.body':
    'Too many requests came from your network just now. Please wait a minute and try again.',
  'code.title': 'One more step',
  'code.body':
    'Type this code into your conversation with {business} to finish signing in. It works for 5 minutes and is shown only once.',
  'code.warning':
    'Never give this code to anyone else. Only type it into the conversation where you asked to sign in.',
  'code_shown.title': 'Finish in your conversation',
  'code_shown.body':
    'Type the code you were shown into your conversation. If you no longer have it, ask for a new sign-in link there.',
  'error.title': 'Something went wrong on our side',
  'error.body': 'Please return to the conversation and ask for a new link.',
  'unavailable.title': 'Sign-in is unavailable for a moment',
  'unavailable.body':
    'Please wait a minute, then reload this page. Your link keeps working until it expires.',
}

/** Reasons shown to end users, by failure code: plain words, never the provider's text. */
const REASONS_EN: Record<string, string> = {
  access_denied: 'The sign-in was declined.',
  provider_timeout: 'The sign-in service took too long to answer.',
  provider_unreachable: 'The sign-in service could not be reached.',
}
const DEFAULT_REASON_EN = 'Something went wrong while confirming who you are.'

const CATALOGS: Record<string, Catalog> = { en }

export function escapeHtml(value: string): string {
  return value
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;')
}

function text(id: PageMessageId, vars: Record<string, string>, lang = 'en'): string {
  const template = (CATALOGS[lang] ?? en)[id]
  return template.replace(/\{(\w+)\}/g, (_, name: string) => vars[name] ?? '')
}

export function failureReason(code: string): string {
  return REASONS_EN[code] ?? DEFAULT_REASON_EN
}

const STYLE = `body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
main{max-width:28rem;margin:12vh auto 0;padding:1.5rem;background:#fff;border-radius:12px;box-shadow:0 1px 4px #0002}
h1{font-size:1.35rem;margin:0 0 .75rem}p{line-height:1.45}.warn{font-size:.9rem;color:#5b6170}
@media (max-width:30rem){main{margin:1rem}}
.code{font:600 2.2rem/1.2 ui-monospace,Menlo,Consolas,monospace;letter-spacing:.15em;text-align:center;margin:1.2rem 0}
button{font-size:1.05rem;padding:.8rem 1.4rem;border:0;border-radius:8px;background:#2457d6;color:#fff;width:100%;cursor:pointer}`

/** The headers of every end-user page and redirect. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  pragma: 'no-cache',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // Browsers ignore it over plain http, so it is safe to send whatever PUBLIC_BASE_URL says.
  'strict-transport-security': 'max-age=31536000',
  'content-security-policy': [
    "default-src 'none'",
    `style-src 'unsafe-inline'`,
    "script-src 'none'",
    "form-action 'self' https: http:",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; '),
}

/** 303 See Other to `location`, with the pages' headers (and `headers`, e.g. a cookie). */
export function seeOther(location: string, headers?: Readonly<Record<string, string>>): Response {
  return textResponse(303, { ...SECURITY_HEADERS, ...headers, location }, null)
}

function page(
  title: string,
  body: string,
  options: { status: number; headers?: Record<string, string> },
): Response {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta name="referrer" content="no-referrer"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body><main>${body}</main></body></html>`
  return textResponse(options.status, { ...SECURITY_HEADERS, ...options.headers }, html)
}

/**
 * `GET /`: what this server is, for someone who opens its address in a browser: GraphiQL (when it
 * is served) and the health routes. Nothing about tenants or sessions.
 */
export function landingPage(graphiql: boolean): Response {
  const links = [
    ...(graphiql
      ? ['<li><a href="/graphql">GraphiQL</a>: the API, with an API key as the bearer token</li>']
      : []),
    '<li><a href="/healthz">/healthz</a>: the process is alive</li>',
    '<li><a href="/readyz">/readyz</a>: the database answers</li>',
  ]
  const body = `<h1>end-user-oauth</h1>
<p>Verifies who a conversation is with, through the business's own OAuth 2.0 or OpenID Connect sign-in. The API is GraphQL at <code>/graphql</code>.</p>
<ul>${links.join('')}</ul>`
  return page('end-user-oauth', body, { status: 200 })
}

/**
 * The link's page: a form that POSTs back to the link, sent only when the person presses its
 * button, which names where it goes (the provider's host) and for which business. Its hidden
 * fields carry what the page already knows (`hint`: ids, nothing secret), so the POST can bind
 * the session in one statement; the link itself stays what proves anything.
 */
export function continuePage(
  business: string,
  provider: string,
  hint: Readonly<Record<string, string>> = {},
): Response {
  const vars = { business, provider }
  const hidden = Object.entries(hint)
    .map(
      ([name, value]) =>
        `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`,
    )
    .join('')
  const body = `<h1>${escapeHtml(text('continue.title', vars))}</h1>
<p>${escapeHtml(text('continue.body', vars))}</p>
<p class="warn">${escapeHtml(text('continue.warning', vars))}</p>
<form id="continue" method="post">${hidden}<button type="submit">${escapeHtml(text('continue.button', vars))}</button></form>`
  return page(text('continue.title', vars), body, { status: 200 })
}

/** The confirmation code, shown once, in large digits. */
export function codePage(
  business: string,
  code: string,
  options: { headers?: Record<string, string> } = {},
): Response {
  const vars = { business }
  const digits = escapeHtml(code.replace(/(\d{3})(?=\d)/g, '$1 '))
  const body = `<h1>${escapeHtml(text('code.title', vars))}</h1>
<p>${escapeHtml(text('code.body', vars))}</p>
<p class="code" id="code">${digits}</p>
<p class="warn">${escapeHtml(text('code.warning', vars))}</p>`
  return page(text('code.title', vars), body, {
    status: 200,
    ...(options.headers ? { headers: options.headers } : {}),
  })
}

export type ResultKind =
  | 'unknown'
  | 'in_use'
  | 'in_progress'
  | 'authenticated'
  | 'failed'
  | 'expired'
  | 'cancelled'
  | 'already_used'
  | 'wrong_browser'
  | 'bad_request'
  | 'too_many'
  | 'error'
  | 'unavailable'
  | 'code_shown'

const STATUS: Record<ResultKind, number> = {
  unknown: 404,
  in_use: 409,
  in_progress: 409,
  authenticated: 200,
  failed: 200,
  expired: 410,
  cancelled: 410,
  already_used: 409,
  wrong_browser: 403,
  bad_request: 400,
  too_many: 429,
  error: 500,
  unavailable: 503,
  code_shown: 200,
}

export function resultPage(
  kind: ResultKind,
  options: { reasonCode?: string; headers?: Record<string, string> } = {},
): Response {
  const vars = {
    reason: options.reasonCode ? failureReason(options.reasonCode) : DEFAULT_REASON_EN,
  }
  const title = text(`${kind}.title` as PageMessageId, vars)
  const body = `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(text(`${kind}.body` as PageMessageId, vars))}</p>`
  return page(title, body, {
    status: STATUS[kind],
    ...(options.headers ? { headers: options.headers } : {}),
  })
}
