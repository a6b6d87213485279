/**
 * A scripted browser for flow tests: a cookie jar per host, redirects followed by hand (so each
 * hop can be seen), and form posts. Enough to drive our link page and oidc-provider's
 * development login and consent pages, the way a person's browser would.
 */
export interface Hop {
  readonly url: string
  readonly status: number
  readonly location: string | null
}

export class ScriptedBrowser {
  readonly jar = new Map<string, Map<string, string>>()
  readonly hops: Hop[] = []

  cookieHeader(url: URL): string {
    return [...(this.jar.get(url.host) ?? new Map()).entries()]
      .map(([k, v]) => `${k}=${v}`)
      .join('; ')
  }

  cookies(host: string): Map<string, string> {
    return this.jar.get(host) ?? new Map()
  }

  private store(url: URL, response: Response): void {
    for (const header of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = header.split(';')
      const eq = pair.indexOf('=')
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      const jar = this.jar.get(url.host) ?? new Map<string, string>()
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === ''
      if (expired) jar.delete(name)
      else jar.set(name, value)
      this.jar.set(url.host, jar)
    }
  }

  /** One request, no redirect following. */
  async request(
    url: string,
    init: { method?: string; form?: Record<string, string> } = {},
  ): Promise<Response> {
    const target = new URL(url)
    const headers: Record<string, string> = { cookie: this.cookieHeader(target) }
    let body: string | undefined
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      body = new URLSearchParams(init.form).toString()
    }
    const response = await fetch(target, {
      method: init.method ?? 'GET',
      headers,
      redirect: 'manual',
      ...(body ? { body } : {}),
    })
    this.store(target, response)
    this.hops.push({ url, status: response.status, location: response.headers.get('location') })
    return response
  }

  /** Follows redirects until a non-redirect answer, or until `stop(url)` says so before a hop. */
  async follow(
    url: string,
    init: { method?: string; form?: Record<string, string> } = {},
    stop: (next: URL) => boolean = () => false,
  ): Promise<{ response: Response; url: string }> {
    let current = url
    let response = await this.request(current, init)
    for (let i = 0; i < 20 && response.status >= 300 && response.status < 400; i++) {
      const next = new URL(response.headers.get('location')!, current)
      if (stop(next)) return { response, url: next.href }
      await response.body?.cancel()
      current = next.href
      response = await this.request(current)
    }
    return { response, url: current }
  }
}

/**
 * Logs in at oidc-provider's development pages: from its authorization URL through login and
 * consent, stopping before the redirect back to us. Returns the callback URL the provider sent.
 */
export async function loginAtTestProvider(
  browser: ScriptedBrowser,
  authorizationUrl: string,
  account: string,
  options: { abort?: boolean } = {},
): Promise<string> {
  const isCallback = (u: URL) =>
    !u.pathname.startsWith('/auth') && !u.pathname.startsWith('/interaction')
  let step = await browser.follow(authorizationUrl, {}, isCallback)
  for (let i = 0; i < 4; i++) {
    if (step.response.status >= 300 && step.response.status < 400) return step.url
    const html = await step.response.text()
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1]
    if (!action)
      throw new Error(
        `no form on the provider's page (${step.response.status}): ${html.slice(0, 300)}`,
      )
    const target = new URL(action, step.url).href
    if (options.abort) {
      step = await browser.follow(`${target}/abort`, {}, isCallback)
      continue
    }
    const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1]
    const form: Record<string, string> =
      prompt === 'login'
        ? { prompt: 'login', login: account, password: 'any' }
        : { prompt: prompt ?? 'consent' }
    step = await browser.follow(target, { method: 'POST', form }, isCallback)
  }
  throw new Error('the provider did not redirect back')
}

/** The hidden fields of a page's form, as a browser submits them. */
export function hiddenFields(html: string): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const m of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) {
    fields[m[1]!] = m[2]!
  }
  return fields
}
