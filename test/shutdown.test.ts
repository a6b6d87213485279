/**
 * Shutdown with a subscriber waiting: the `authSessionUpdated` stream completes (`event:
 * complete`, then the end of the response) as soon as the service is told to stop, rather than
 * being cut when the grace period runs out, and the service exits 0 well within it.
 */
import { afterAll, describe, expect, it } from 'vitest'
import { cli, graphql, killLeftovers, startServiceProcess, tempDataDir } from './helpers/spawn.ts'

afterAll(killLeftovers)

describe('shutdown with an open subscription', () => {
  it('completes the stream at once and exits 0', async () => {
    const data = tempDataDir()
    const env = { DATA_DIR: data.dir }
    const service = await startServiceProcess(env)
    try {
      const created = await cli(['tenant', 'create', 'quiet'], env)
      const admin = (JSON.parse(created.stdout) as { apiKey: string }).apiKey
      const integration = (await graphql(
        service.url,
        admin,
        `
          mutation {
            createOAuthIntegration(
              input: {
                name: "x"
                clientId: "c"
                clientSecret: "shutdown-secret-0123456789"
                authorizationUrl: "https://idp.example.com/authorize"
                tokenUrl: "https://idp.example.com/token"
              }
            ) {
              integration {
                id
              }
            }
          }
        `,
      )) as { data: { createOAuthIntegration: { integration: { id: string } } } }
      const started = (await graphql(
        service.url,
        admin,
        `mutation { startEndUserAuth(input: { integrationId: "${integration.data.createOAuthIntegration.integration.id}", conversationId: "c1" }) { session { id } } }`,
      )) as { data: { startEndUserAuth: { session: { id: string } } } }
      const id = started.data.startEndUserAuth.session.id

      const response = await fetch(`${service.url}/graphql`, {
        method: 'POST',
        headers: {
          accept: 'text/event-stream',
          'content-type': 'application/json',
          authorization: `Bearer ${admin}`,
        },
        body: JSON.stringify({
          query: 'subscription ($id: ID!) { authSessionUpdated(id: $id) { status } }',
          variables: { id },
        }),
      })
      expect(response.status).toBe(200)
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
      let text = ''
      while (!text.includes('PENDING')) text += (await reader.read()).value ?? ''

      const asked = performance.now()
      const exited = service.stop('SIGTERM')
      // Read to the end of the stream: it must end by itself, with a complete event.
      for (;;) {
        const chunk = await reader.read()
        if (chunk.done) break
        text += chunk.value
      }
      const streamEndedMs = performance.now() - asked
      expect(text).toContain('event: complete')
      expect(streamEndedMs).toBeLessThan(5_000)
      expect(await exited).toEqual({ code: 0, signal: null })
      expect(performance.now() - asked).toBeLessThan(8_000)
      expect(service.logs().map((l) => l.msg)).toContain('stopped')
    } finally {
      data.remove()
    }
  })
})
