/**
 * LOG_FORMAT: pretty lines for people, JSON lines for machines; a terminal gets pretty ones unless
 * told otherwise. Run in a child process, since the format follows its standard output.
 */
import { describe, expect, it } from 'vitest'
import { createLogger, fixedFieldLines } from '../src/logger.ts'
import { NODE_TSX, run } from './helpers/spawn.ts'

const SCRIPT = `import { createLogger } from './src/logger.ts'
const format = process.argv[1] === 'auto' ? null : process.argv[1]
createLogger({ level: 'info', format }).info({ route: '/l/:token', apiKey: 'euo_secret' }, 'hello')`

async function logLine(format: string): Promise<string> {
  const result = await run(process.execPath, [
    ...NODE_TSX,
    '--input-type=module',
    '-e',
    SCRIPT,
    format,
  ])
  expect(result.code, result.stderr).toBe(0)
  return result.stdout.trim()
}

describe('log formats', () => {
  it('json: one JSON object per line, secrets redacted', async () => {
    const line = JSON.parse(await logLine('json')) as Record<string, unknown>
    expect(line).toMatchObject({
      msg: 'hello',
      route: '/l/:token',
      apiKey: '[redacted]',
      level: 30,
    })
  })

  it('pretty: a readable line with the level as a word, secrets still redacted', async () => {
    const line = await logLine('pretty')
    expect(() => JSON.parse(line)).toThrow()
    expect(line).toMatch(/INFO/)
    expect(line).toContain('hello')
    expect(line).toContain('/l/:token')
    expect(line).not.toContain('euo_secret')
  })

  it('unset, on a pipe (not a terminal): JSON', async () => {
    expect(JSON.parse(await logLine('auto'))).toMatchObject({ msg: 'hello' })
  })
})

describe('fixedFieldLines', () => {
  function capture(level = 'info') {
    const lines: Array<Record<string, unknown>> = []
    const logger = createLogger(
      { level, format: 'json' },
      { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
    )
    return { logger, lines }
  }

  it('writes the same line as the logger, without the redaction (so: ids and fixed words only)', () => {
    const { logger, lines } = capture()
    const plain = fixedFieldLines(logger)
    expect(fixedFieldLines(logger)).toBe(plain)
    logger.info({ sessionId: 's1', apiKey: 'euo_secret' }, 'through the logger')
    plain.info({ sessionId: 's1', apiKey: 'euo_secret' }, 'without redaction')
    expect(lines[0]).toMatchObject({ sessionId: 's1', apiKey: '[redacted]', pid: process.pid })
    expect(lines[1]).toMatchObject({ sessionId: 's1', apiKey: 'euo_secret', pid: process.pid })
  })

  it('keeps the logger’s level', () => {
    const { logger, lines } = capture('warn')
    fixedFieldLines(logger).info({ sessionId: 's2' }, 'below the level')
    fixedFieldLines(logger).warn({ sessionId: 's2' }, 'at the level')
    expect(lines.map((l) => l.msg)).toEqual(['at the level'])
  })
})
