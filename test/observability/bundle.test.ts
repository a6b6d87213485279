/**
 * What `npm start`'s bundle loads before main.ts decides about tracing: the modules main.js
 * imports statically (and theirs) are loaded before any of its code runs. None of them may import
 * OpenTelemetry (without an OTLP endpoint nothing of it loads), nor pg or undici (with one,
 * tracing must start before they load).
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ensureBuilt, ROOT } from '../helpers/spawn.ts'

/** Every module specifier a bundle file imports statically (top-level `import`). */
function staticImports(source: string): string[] {
  return [...source.matchAll(/^import\s(?:[^'"]*?\sfrom\s*)?["']([^"']+)["'];?$/gms)].map(
    (m) => m[1]!,
  )
}

describe('the bundle npm start runs', () => {
  it('loads neither OpenTelemetry nor the modules it instruments before main.ts runs', async () => {
    await ensureBuilt()
    const seen = new Set<string>()
    const packages = new Set<string>()
    const visit = (file: string) => {
      if (seen.has(file)) return
      seen.add(file)
      for (const spec of staticImports(readFileSync(file, 'utf8'))) {
        if (spec.startsWith('.')) visit(path.resolve(path.dirname(file), spec))
        else packages.add(spec)
      }
    }
    const main = path.join(ROOT, 'dist', 'main.js')
    visit(main)
    expect([...packages].filter((p) => /^(@opentelemetry\/|pg$|undici$)/.test(p))).toEqual([])
    expect([...packages]).toContain('node:path')
    // The rest, tracing included, is imported when main.ts asks for it.
    const source = readFileSync(main, 'utf8')
    expect(source).toMatch(/import\("\.\/chunks\/tracing-[\w-]+\.js"\)/)
    expect(source).toMatch(/import\("\.\/chunks\/server-[\w-]+\.js"\)/)
  })
})
