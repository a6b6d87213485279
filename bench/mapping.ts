/**
 * Mappings per second: the README's example mapping, compiled once, applied to its WhoAmI payload
 * the way a sign-in applies it (`applyMapping`: payload bounds and copy, metered evaluation,
 * result bounds, identity cleaning and name split), against the library's own interpreter
 * running the same expression on the same payload with none of that (`TreeInterpreter.search`
 * on a tree compiled once). Both run in the same process, alternating in short slices so that
 * CPU frequency and GC drift affect them alike.
 *
 * Run alone with `npx tsx bench/mapping.ts [durationMs]`.
 */
import { pathToFileURL } from 'node:url'
import { compile, TreeInterpreter } from '@jmespath-community/jmespath'
import { applyMapping, compileMapping } from '../src/core/whoami-mapping.ts'

export interface MappingBenchResult {
  readonly name: string
  readonly opsPerSec: number
  readonly baselineOpsPerSec: number
  readonly ratio: number
}

const SEED_MAPPING = '{"userName": user.id, "fullName": user.name, "email": user.email}'
const SEED_PAYLOAD = {
  user: { id: 'billy.bob', name: 'Billy Bob', email: 'billy.bob@example.com', other: 'stuff' },
  roles: ['SomeRole', 'OtherRole'],
  other: 'stuff',
}

/** Runs `work` repeatedly for about `ms` milliseconds; returns how many runs and how long. */
function timeSlice(ms: number, work: () => unknown): { runs: number; elapsed: number } {
  let runs = 0
  let sink: unknown
  const started = performance.now()
  let now = started
  while (now - started < ms) {
    for (let i = 0; i < 256; i++) sink = work()
    runs += 256
    now = performance.now()
  }
  if (sink === Symbol.for('never')) console.log(sink)
  return { runs, elapsed: now - started }
}

export async function benchMapping(opts: { durationMs: number }): Promise<MappingBenchResult> {
  const compiled = compileMapping(SEED_MAPPING)
  if (!compiled.ok) throw new Error(`seed mapping does not compile: ${compiled.error.message}`)
  const mapping = compiled.value
  const ast = compile(SEED_MAPPING)
  const options = { splitFullName: true }

  const guarded = (): unknown => {
    const outcome = applyMapping(mapping, SEED_PAYLOAD, options)
    if (outcome.identity === null) throw new Error('seed mapping failed')
    return outcome
  }
  const raw = (): unknown => TreeInterpreter.search(ast, SEED_PAYLOAD)

  // Warm up both so the JIT has compiled them before anything is counted.
  timeSlice(Math.min(200, opts.durationMs / 10), guarded)
  timeSlice(Math.min(200, opts.durationMs / 10), raw)

  const slices = 10
  const slice = Math.max(opts.durationMs / (2 * slices), 1)
  let ours = { runs: 0, elapsed: 0 }
  let base = { runs: 0, elapsed: 0 }
  for (let i = 0; i < slices; i++) {
    const a = timeSlice(slice, guarded)
    const b = timeSlice(slice, raw)
    ours = { runs: ours.runs + a.runs, elapsed: ours.elapsed + a.elapsed }
    base = { runs: base.runs + b.runs, elapsed: base.elapsed + b.elapsed }
    // Let the event loop breathe between slices when run inside a larger suite.
    await new Promise((resolve) => setImmediate(resolve))
  }
  const opsPerSec = Math.round((ours.runs / ours.elapsed) * 1000)
  const baselineOpsPerSec = Math.round((base.runs / base.elapsed) * 1000)
  return {
    name: 'whoami mapping (seed, compile once, applyMapping vs raw TreeInterpreter.search)',
    opsPerSec,
    baselineOpsPerSec,
    ratio: Number((opsPerSec / baselineOpsPerSec).toFixed(3)),
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const durationMs = Number(process.argv[2] ?? 3000)
  console.log(await benchMapping({ durationMs }))
}
