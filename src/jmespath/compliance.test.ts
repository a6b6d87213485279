/**
 * The JMESPath compliance suite through this engine: the library parses each expression, our
 * `prepareExpression` and `evaluateExpression` run it (limits far above what any case needs, so
 * only the semantics are tested). A case expecting an error passes when parsing, preparing or
 * evaluating throws or refuses; every other case must give exactly the expected result.
 *
 * The suite is in ./compliance: the copy of the official tests that go-jmespath 0.4.0 vendors
 * (Debian's source package golang-github-jmespath-go-jmespath 0.4.0-2), 16 files, 862 cases,
 * under the Apache License 2.0 (./compliance/LICENSE). Newer upstream files add cases that are
 * not in this copy (the library's README counts 908).
 */
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { compile } from '@jmespath-community/jmespath'
import { describe, expect, it } from 'vitest'
import { evaluateExpression, prepareExpression } from './index.ts'
import { copyJson } from './json.ts'

const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'compliance')

interface Case {
  readonly expression: string
  readonly result?: unknown
  readonly error?: string
  readonly bench?: string
}

interface Group {
  readonly given: unknown
  readonly cases: readonly Case[]
}

/** Cases this engine fails, by `file#group.case`, with the reason; none today. */
const KNOWN_FAILURES: Readonly<Record<string, string>> = {}

const LIMITS = { maxNodes: 1e6, maxDepth: 1e4 }
const EVALUATION = { maxSteps: 1e9, maxMillis: 60_000, maxStringLength: 1e9 }

type Outcome = { readonly value: unknown } | { readonly error: string }

function run(expression: string, given: unknown): Outcome {
  try {
    const prepared = prepareExpression(compile(expression), LIMITS)
    if (!prepared.ok) return { error: prepared.problem }
    const data = copyJson(given, 1e4)
    if (!data.ok) return { error: data.problem }
    const { value } = evaluateExpression(prepared.ast, data.value, EVALUATION, () =>
      performance.now(),
    )
    // Through JSON: results use null-prototype objects, the suite's plain ones.
    return { value: JSON.parse(JSON.stringify(value)) as unknown }
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) }
  }
}

function passes(c: Case, outcome: Outcome): boolean {
  if (c.error !== undefined) return 'error' in outcome
  if (c.bench !== undefined) return !('error' in outcome)
  return (
    'value' in outcome &&
    JSON.stringify(sortKeys(outcome.value)) === JSON.stringify(sortKeys(c.result))
  )
}

/** Key order does not matter in JSON objects. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value === null || typeof value !== 'object') return value
  const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return Object.fromEntries(entries.map(([k, v]) => [k, sortKeys(v)]))
}

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
const cases = files.flatMap((file) =>
  (JSON.parse(readFileSync(path.join(DIR, file), 'utf8')) as Group[]).flatMap((group, g) =>
    group.cases.map((c, i) => ({ id: `${file}#${g}.${i}`, given: group.given, c })),
  ),
)

describe('the JMESPath compliance suite', () => {
  it('has the 862 cases of its 16 files', () => {
    expect(files).toHaveLength(16)
    expect(cases).toHaveLength(862)
  })

  it('passes every case but the known failures, and each known failure still fails', () => {
    const failing: Record<string, string> = {}
    for (const { id, given, c } of cases) {
      const outcome = run(c.expression, given)
      if (!passes(c, outcome)) {
        failing[id] =
          `${JSON.stringify(c.expression)}: expected ${c.error !== undefined ? `error ${c.error}` : JSON.stringify(c.result)}, got ${JSON.stringify(outcome)}`
      }
    }
    expect(Object.keys(failing).sort()).toEqual(Object.keys(KNOWN_FAILURES).sort())
    // Stated in README.md ("JMESPath").
    expect(cases.length - Object.keys(failing).length).toBe(862)
  })
})
