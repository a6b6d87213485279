/**
 * The last line before a span leaves the process: route templates and what scrubbing keeps of
 * URLs and attributes, whatever an instrumentation put there.
 */
import { describe, expect, it } from 'vitest'
import { REDIRECT_ROUTES } from '../../src/core/redirect-urls.ts'
import { routeTemplate } from '../../src/observability/route-template.ts'
import { scrubAttributes, scrubUrl } from '../../src/observability/tracing.ts'
import { LINK_PATH, RESULT_PATH } from '../../src/services/sign-in.ts'

describe('routeTemplate', () => {
  it.each([
    ['/graphql', '/graphql'],
    ['/graphql?query=%7B__typename%7D', '/graphql'],
    ['/healthz', '/healthz'],
    ['/readyz', '/readyz'],
    ['/', '/'],
    [`${LINK_PATH}tok3n-value`, `${LINK_PATH}:token`],
    [`${RESULT_PATH}0b6f0f8e-0d8a-4c1e-9a63-7a0f1f1f1f1f`, `${RESULT_PATH}:sessionId`],
    [`${REDIRECT_ROUTES.IDP}?code=c&state=s`, REDIRECT_ROUTES.IDP],
    [`${REDIRECT_ROUTES.ABC}/k7f3q9k7f3q9k7f3?code=c`, `${REDIRECT_ROUTES.ABC}/:callbackKey`],
    [`${REDIRECT_ROUTES.ABC_AUTH2}/key`, `${REDIRECT_ROUTES.ABC_AUTH2}/:callbackKey`],
    ['/wp-admin/install.php', 'other'],
    ['/graphql/extra', 'other'],
  ])('%s → %s', (path, template) => {
    expect(routeTemplate(path)).toBe(template)
  })

  it('knows the link and result paths of services/sign-in.ts', () => {
    expect(routeTemplate(`${LINK_PATH}x`)).toBe('/l/:token')
    expect(routeTemplate(`${RESULT_PATH}x`)).toBe('/r/:sessionId')
  })
})

describe('scrubbing', () => {
  it('drops query, fragment and credentials from URLs, and templates server paths', () => {
    expect(scrubUrl('http://u:p@idp.example.com/token?client_secret=s#f', false)).toBe(
      'http://idp.example.com/token',
    )
    expect(scrubUrl('/l/secret-token?x=1', true)).toBe('/l/:token')
    expect(scrubUrl('https://auth.example.com/idp/eu/oauth/callback/key?code=c', true)).toBe(
      'https://auth.example.com/idp/eu/oauth/callback/:callbackKey',
    )
    expect(scrubUrl('/me?access_token=t', false)).toBe('/me')
  })

  it('drops headers, query attributes, parameter values and anything named like a secret', () => {
    const scrubbed = scrubAttributes(
      {
        'http.request.method': 'GET',
        'url.path': '/l/tok',
        'url.query': 'code=c&state=s',
        'http.target': '/idp/eu/oauth/callback?code=c&state=s',
        'http.request.header.authorization': ['Bearer k'],
        'http.request.header.cookie': ['euo_b=v'],
        'db.postgresql.values': ['v'],
        'db.query.parameter.0': 'v',
        'euo.api_key': 'k',
        client_secret: 's',
        'db.query.text': 'select 1 where id = $1',
        'http.response.status_code': 200,
      },
      true,
    )
    expect(scrubbed).toEqual({
      'http.request.method': 'GET',
      'url.path': '/l/:token',
      'http.target': '/idp/eu/oauth/callback',
      'db.query.text': 'select 1 where id = $1',
      'http.response.status_code': 200,
    })
  })
})
