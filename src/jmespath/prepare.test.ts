import { compile } from '@jmespath-community/jmespath'
import { describe, expect, it } from 'vitest'
import { prepareExpression, type Node } from './index.ts'

const LIMITS = { maxNodes: 500, maxDepth: 4 }

function literal(expression: string): unknown {
  const prepared = prepareExpression(compile(expression), LIMITS)
  if (!prepared.ok) throw new Error(prepared.problem)
  const ast: Node = prepared.ast
  if (ast.type !== 'Literal') throw new Error(`${expression} is not a literal`)
  return ast.value
}

const problem = (expression: string): string | null => {
  const prepared = prepareExpression(compile(expression), LIMITS)
  return prepared.ok ? null : prepared.problem
}

describe('literals', () => {
  it('are copied into null-prototype objects, so "__proto__" is a key like any other', () => {
    const value = literal('`{"__proto__": {"a": [1]}}`') as Record<string, unknown>
    expect(Object.getPrototypeOf(value)).toBeNull()
    expect(Object.keys(value)).toEqual(['__proto__'])
    expect(Object.getPrototypeOf(value['__proto__'])).toBeNull()
  })

  it('nest at most maxDepth levels', () => {
    expect(literal('`[[[{}]]]`')).toEqual([[[{}]]])
    expect(problem('`[[[[[]]]]]`')).toBe('has a literal that is nested deeper than 4 levels')
  })

  it('hold finite numbers only', () => {
    expect(problem('`1e400`')).toBe('has a literal that contains a number that is not finite')
  })
})
