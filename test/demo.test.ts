/**
 * `npm run demo` as a newcomer runs it: it prints a sign-in link and the keys, a browser signs in
 * at the bundled provider under any name, and the demo prints AUTHENTICATED with the identity;
 * Ctrl-C ends it with exit 0.
 */
import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { ScriptedBrowser, loginAtTestProvider } from './helpers/browser.ts'
import { arriveAtCallback, followLink } from './helpers/flow.ts'
import { childEnv, freePort, ROOT } from './helpers/spawn.ts'

describe('npm run demo', () => {
  it('prints a link and the keys, follows the sign-in live, and stops on Ctrl-C', async () => {
    const port = await freePort()
    const demo = spawn('npm', ['run', '--silent', 'demo'], {
      cwd: ROOT,
      env: childEnv({ PORT: String(port) }),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    demo.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
    demo.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
    const exited = new Promise<{ code: number | null }>((resolve) =>
      demo.once('close', (code) => resolve({ code })),
    )
    const waitFor = async (pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> => {
      const until = Date.now() + timeoutMs
      for (;;) {
        const match = pattern.exec(out)
        if (match) return match
        if (Date.now() > until)
          throw new Error(`no ${pattern} in the demo's output:\n${out}\n${err}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    try {
      const link = (await waitFor(/sign-in link in a browser: (\S+)/))[1]!
      expect(link).toMatch(new RegExp(`^http://localhost:${port}/l/[A-Za-z0-9_-]{43}$`))
      expect(out).toMatch(/ADMIN key {2}euo_[0-9a-f]{16}_/)
      expect(out).toMatch(/AGENT key {2}euo_[0-9a-f]{16}_/)
      await waitFor(/\] PENDING/)

      const browser = new ScriptedBrowser()
      const authorize = await followLink(browser, link)
      await waitFor(/\] OPENED/)
      const callback = await loginAtTestProvider(browser, authorize.href, 'Ada Lovelace')
      const { result } = await arriveAtCallback(browser, callback)
      expect(await result.text()).toContain('signed in')

      await waitFor(/\] AUTHENTICATED/)
      const identity = JSON.parse((await waitFor(/ {2}identity (\{.*\})\n/))[1]!) as Record<
        string,
        unknown
      >
      expect(identity).toMatchObject({
        fullName: 'Ada Lovelace',
        firstName: 'Ada',
        lastName: 'Lovelace',
        userName: 'Ada Lovelace',
        email: 'adalovelace@example.com',
        emailVerified: true,
        subject: 'Ada Lovelace',
      })
      expect(err).not.toContain('oidc-provider WARNING')

      process.kill(-demo.pid!, 'SIGINT')
      expect(await exited).toEqual({ code: 0 })
      expect(out.trimEnd().split('\n').at(-1)).toBe('stopped')
    } finally {
      try {
        process.kill(-demo.pid!, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  })
})
