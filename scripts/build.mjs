// `npm run build` (and the first half of `npm start`): bundles src/main.ts into dist/main.js.
//
// The service runs as plain JavaScript on node, not through tsx: tsx's loader runs in a thread
// of its own with its own V8 heap, which cost about 58 MB of resident memory in the running
// service (166 vs 108 MB idle, measured under `npm run bench`). Packages stay in node_modules
// (external); only our own modules are bundled, with a source map so stack traces name src/.
// The files are written under a temporary name and renamed, so that a service starting while
// another builds never loads half a file.
import { build } from 'esbuild'
import { randomBytes } from 'node:crypto'
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const outdir = path.join(root, 'dist')

try {
  const result = await build({
    entryPoints: [path.join(root, 'src', 'main.ts')],
    outdir,
    entryNames: '[name]',
    // Each dynamic import of main.ts is a chunk of its own, loaded when imported: the packages a
    // chunk imports are then loaded at that point too, not when main.js starts. Tracing relies on
    // it (it must start before pg and node:http are loaded; see src/main.ts). Chunk names carry
    // their content's hash, so a build never changes a chunk a running service may still load.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    sourcesContent: false,
    write: false,
    logLevel: 'silent',
  })
  mkdirSync(outdir, { recursive: true })
  // Chunks first, then maps, main.js last: a process loading the new main.js finds its chunks
  // and maps already in place.
  const rank = (file) =>
    file.path === path.join(outdir, 'main.js') ? 2 : file.path.endsWith('.map') ? 1 : 0
  mkdirSync(path.join(outdir, 'chunks'), { recursive: true })
  const files = [...result.outputFiles].sort((a, b) => rank(a) - rank(b))
  for (const file of files) {
    const temporary = `${file.path}.${randomBytes(6).toString('hex')}.tmp`
    writeFileSync(temporary, file.contents)
    renameSync(temporary, file.path)
  }
} catch (error) {
  const messages = error?.errors?.map(
    (e) => `${e.location?.file ?? ''}:${e.location?.line ?? ''} ${e.text}`,
  )
  process.stderr.write(`build failed: ${messages?.join('\n') ?? String(error)}\n`)
  process.exit(1)
}
