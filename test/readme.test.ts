/**
 * The README's "Try it" walkthrough, run as written against a real service process: every `sh`
 * block of the section in order, in one shell, each block's output matched against the output
 * the README shows under it (`# …` lines; `…` stands for anything the run decides, such as ids).
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  killLeftovers,
  ROOT,
  run,
  startServiceProcess,
  tempDataDir,
  type ServiceProcess,
  type TempDir,
} from './helpers/spawn.ts'

interface Block {
  readonly script: string
  /** The lines the README shows as this block's output. */
  readonly expected: readonly string[]
}

function tryItBlocks(): Block[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const start = readme.indexOf('\n## Try it')
  expect(start).toBeGreaterThan(0)
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end)
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => {
    const lines = m[1]!.split('\n')
    return {
      script: m[1]!,
      expected: lines.filter((l) => l.startsWith('# ')).map((l) => l.slice(2)),
    }
  })
}

/** An expected line as a pattern: literal, with `…` matching anything within the line. */
function pattern(line: string): RegExp {
  const parts = line.split('…').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
  return new RegExp(`^${parts.join('.*?')}$`)
}

describe("the README's Try it walkthrough", () => {
  let data: TempDir
  let service: ServiceProcess
  beforeAll(async () => {
    data = tempDataDir()
    service = await startServiceProcess({ DATA_DIR: data.dir })
  })
  afterAll(async () => {
    await service?.stop('SIGTERM')
    data?.remove()
    await killLeftovers()
  })

  it('runs as written, and every block prints what the README shows', async () => {
    const blocks = tryItBlocks()
    expect(blocks.length).toBeGreaterThanOrEqual(6)
    const marker = (i: number) => `@@@ block ${i} done @@@`
    const script = [
      'set -euo pipefail',
      ...blocks.flatMap((block, i) => [block.script, `echo '${marker(i)}'`]),
    ].join('\n')
    const result = await run('bash', ['-c', script], {
      env: { DATA_DIR: data.dir, BASE: service.url },
      timeoutMs: 60_000,
    })
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0)
    let rest = result.stdout
    blocks.forEach((block, i) => {
      const at = rest.indexOf(marker(i))
      expect(
        at,
        `block ${i} did not finish:\n${result.stdout}\n${result.stderr}`,
      ).toBeGreaterThanOrEqual(0)
      const printed = rest
        .slice(0, at)
        .split('\n')
        .filter((l) => l.trim() !== '')
      rest = rest.slice(at + marker(i).length)
      expect(printed.length, `block ${i} printed:\n${JSON.stringify(printed)}`).toBe(
        block.expected.length,
      )
      block.expected.forEach((line, j) => {
        expect(printed[j], `block ${i}, line ${j}`).toMatch(pattern(line))
      })
    })
  })
})
