import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const root = new URL('../src/', import.meta.url).pathname
const engine = path.join(root, 'jmespath')
const engineIndex = path.join(engine, 'index.ts')

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? files(path.join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [path.join(dir, e.name)]
        : [],
  )
}

function imports(file: string): string[] {
  const source = readFileSync(file, 'utf8')
  return [...source.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map(
    (m) => m[1] as string,
  )
}

describe('layering', () => {
  it('keeps src/core pure: it imports only src/core, the JMESPath engine, and no I/O modules', () => {
    const offenders: string[] = []
    for (const file of files(path.join(root, 'core'))) {
      for (const spec of imports(file)) {
        const target = path.resolve(path.dirname(file), spec)
        const bad = spec.startsWith('.')
          ? !target.startsWith(path.join(root, 'core') + path.sep) && target !== engineIndex
          : /^(node:)?(fs|http|https|net|dgram|dns|child_process|worker_threads)(\/|$)|^(pg|kysely|graphql|undici|pino)/.test(
              spec,
            )
        if (bad) offenders.push(`${path.relative(root, file)} imports ${spec}`)
      }
    }
    expect(offenders).toEqual([])
  })

  it('keeps services free of GraphQL and HTTP', () => {
    const offenders: string[] = []
    for (const file of files(path.join(root, 'services'))) {
      for (const spec of imports(file)) {
        if (/\/(graphql|http)\/|^graphql/.test(spec))
          offenders.push(`${path.relative(root, file)} imports ${spec}`)
      }
    }
    expect(offenders).toEqual([])
  })
})
