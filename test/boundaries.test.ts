import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const root = new URL('../src/', import.meta.url).pathname
const repository = path.dirname(root)
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

/** Static imports and re-exports, side-effect imports, and `import('…')` of a literal name. */
function imports(file: string): string[] {
  const source = readFileSync(file, 'utf8')
  return [
    ...source.matchAll(/^\s*(?:import|export)\s(?:[^'"]*?from\s+)?['"]([^'"]+)['"]/gm),
    ...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((m) => m[1] as string)
}

const inside = (dir: string, file: string): boolean => file.startsWith(dir + path.sep)

describe('layering', () => {
  it('keeps src/core pure: it imports only src/core, the JMESPath engine, and no I/O modules', () => {
    const offenders: string[] = []
    for (const file of files(path.join(root, 'core'))) {
      for (const spec of imports(file)) {
        const target = path.resolve(path.dirname(file), spec)
        const bad = spec.startsWith('.')
          ? !inside(path.join(root, 'core'), target) && target !== engineIndex
          : /^(node:)?(fs|http|https|net|dgram|dns|child_process|worker_threads)(\/|$)|^(pg|kysely|graphql|undici|pino)/.test(
              spec,
            )
        if (bad) offenders.push(`${path.relative(root, file)} imports ${spec}`)
      }
    }
    expect(offenders).toEqual([])
  })

  it('lets code outside src/jmespath use the engine only through its index.ts', () => {
    const offenders: string[] = []
    for (const dir of ['src', 'test', 'bench']) {
      for (const file of files(path.join(repository, dir))) {
        if (inside(engine, file)) continue
        for (const spec of imports(file)) {
          const target = path.resolve(path.dirname(file), spec)
          if (spec.startsWith('.') && inside(engine, target) && target !== engineIndex) {
            offenders.push(`${path.relative(repository, file)} imports ${spec}`)
          }
        }
      }
    }
    expect(offenders).toEqual([])
  })

  it('keeps src/jmespath generic: it imports only itself and the JMESPath parser', () => {
    const offenders: string[] = []
    for (const file of files(engine)) {
      // Its tests may also use the test runner and read their fixtures.
      const allowed = file.endsWith('.test.ts')
        ? /^(@jmespath-community\/jmespath|vitest|node:(fs|path|url))$/
        : /^@jmespath-community\/jmespath$/
      for (const spec of imports(file)) {
        const bad = spec.startsWith('.')
          ? !inside(engine, path.resolve(path.dirname(file), spec))
          : !allowed.test(spec)
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
