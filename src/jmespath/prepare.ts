/**
 * The checks a parsed expression passes before it can be evaluated.
 *
 * `@jmespath-community/jmespath` parses the expression; its tree is checked and copied into the
 * `Node` type of ast.ts (the library does not export its node types). Checks, in order:
 *
 * 1. Size and depth, by a walk without recursion: at most `maxNodes` nodes and `maxDepth`
 *    levels. The evaluator recurses once per level, so this bounds its stack; the node count
 *    bounds the cost of the later checks and of one pass over the expression.
 * 2. Every function is one of functions.ts, with a number of arguments it accepts, and
 *    `&expr` exactly where the function takes an expression.
 * 3. `&expr` appears only as a function argument (the library would otherwise leak the syntax
 *    tree into the result), `$name` only inside a `let` that binds it.
 * 4. No slice has a step of 0; literals nest at most `maxDepth` levels and are copied into
 *    null-prototype JSON.
 *
 * What passes can only fail on the data: a function given a value of the wrong type, or the
 * evaluation budget.
 */
import type { compile } from '@jmespath-community/jmespath'
import type { Node } from './ast.ts'
import { arityProblem, FUNCTIONS, takesExpression } from './functions.ts'
import { copyJson } from './json.ts'

type LibraryNode = ReturnType<typeof compile>
type LibraryPart =
  | LibraryNode
  | { readonly type: 'KeyValuePair'; readonly name: string; readonly value: LibraryNode }

export interface ExpressionLimits {
  readonly maxNodes: number
  readonly maxDepth: number
}

/** Children of a library node; null for a node type this module does not know. */
function childrenOf(node: LibraryPart): readonly LibraryPart[] | null {
  switch (node.type) {
    case 'Field':
    case 'Literal':
    case 'Index':
    case 'Slice':
    case 'Current':
    case 'Identity':
    case 'Root':
    case 'Variable':
      return []
    case 'Subexpression':
    case 'IndexExpression':
    case 'Pipe':
    case 'Projection':
    case 'ValueProjection':
    case 'OrExpression':
    case 'AndExpression':
    case 'Comparator':
    case 'Arithmetic':
      return [node.left, node.right]
    case 'FilterProjection':
      return [node.left, node.right, node.condition]
    case 'Flatten':
    case 'NotExpression':
    case 'ExpressionReference':
      return [node.child]
    case 'Unary':
      return [node.operand]
    case 'MultiSelectList':
    case 'Function':
      return node.children
    case 'MultiSelectHash':
      return node.children as readonly LibraryPart[]
    case 'KeyValuePair':
      return [node.value]
    case 'LetExpression':
      return [...node.bindings, node.expression]
    case 'Binding':
      return [node.reference]
    case 'Ternary':
      return [node.condition, node.trueExpr, node.falseExpr]
    default:
      return null
  }
}

class ExpressionProblem extends Error {}

/**
 * Checks a parsed expression and returns the tree the evaluator runs, or the first problem
 * found, phrased to follow the field name ("… is nested too deeply").
 */
export function prepareExpression(
  root: LibraryNode,
  limits: ExpressionLimits,
): { readonly ok: true; readonly ast: Node } | { readonly ok: false; readonly problem: string } {
  // Size and depth first, without recursion: the tree may be deep until this has run.
  const pending: [LibraryPart, number][] = [[root, 1]]
  let count = 0
  while (pending.length > 0) {
    const [node, depth] = pending.pop() as [LibraryPart, number]
    if (++count > limits.maxNodes) {
      return { ok: false, problem: `is too large (more than ${limits.maxNodes} syntax nodes)` }
    }
    if (depth > limits.maxDepth) {
      return { ok: false, problem: `is nested too deeply (more than ${limits.maxDepth} levels)` }
    }
    const children = childrenOf(node)
    if (children === null) {
      return { ok: false, problem: `uses an unsupported construct (${String(node.type)})` }
    }
    for (const child of children) pending.push([child, depth + 1])
  }
  try {
    return { ok: true, ast: rebuild(root, null, false, limits) }
  } catch (cause) {
    if (cause instanceof ExpressionProblem) return { ok: false, problem: cause.message }
    throw cause
  }
}

interface StaticScope {
  readonly names: ReadonlySet<string>
  readonly parent: StaticScope | null
}

function isBound(scope: StaticScope | null, name: string): boolean {
  for (let s = scope; s !== null; s = s.parent) if (s.names.has(name)) return true
  return false
}

function rebuild(
  node: LibraryNode,
  scope: StaticScope | null,
  asArgument: boolean,
  limits: ExpressionLimits,
): Node {
  const again = (child: LibraryNode): Node => rebuild(child, scope, false, limits)
  switch (node.type) {
    case 'Field':
      return { type: 'Field', name: node.name }
    case 'Index':
      return { type: 'Index', value: node.value }
    case 'Current':
    case 'Identity':
    case 'Root':
      return { type: node.type }
    case 'Literal': {
      const copy = copyJson(node.value, limits.maxDepth)
      if (!copy.ok) throw new ExpressionProblem(`has a literal that ${copy.problem}`)
      return { type: 'Literal', value: copy.value }
    }
    case 'Slice':
      if (node.step === 0) throw new ExpressionProblem('has a slice with a step of 0')
      return { type: 'Slice', start: node.start, stop: node.stop, step: node.step }
    case 'Variable':
      if (!isBound(scope, node.name)) {
        throw new ExpressionProblem(`uses $${node.name}, which no enclosing let defines`)
      }
      return { type: 'Variable', name: node.name }
    case 'ExpressionReference':
      if (!asArgument) {
        throw new ExpressionProblem('uses &expr outside a function argument that takes one')
      }
      return { type: 'ExpressionReference', child: again(node.child) }
    case 'Function': {
      const spec = FUNCTIONS.get(node.name)
      if (spec === undefined) throw new ExpressionProblem(unknownFunction(node.name))
      const problem = arityProblem(node.name, spec, node.children.length)
      if (problem !== null) throw new ExpressionProblem(problem)
      const children = node.children.map((child, i) => {
        const wantsExpression = takesExpression(spec, i)
        if (wantsExpression !== (child.type === 'ExpressionReference')) {
          throw new ExpressionProblem(
            wantsExpression
              ? `${node.name}() argument ${i + 1} must be an expression reference such as &name`
              : `${node.name}() argument ${i + 1} cannot be an expression reference (&)`,
          )
        }
        return rebuild(child, scope, true, limits)
      })
      return { type: 'Function', name: node.name, children }
    }
    case 'LetExpression': {
      const bindings = node.bindings.map((binding) => ({
        variable: binding.variable,
        reference: again(binding.reference),
      }))
      const inner: StaticScope = { names: new Set(bindings.map((b) => b.variable)), parent: scope }
      return {
        type: 'LetExpression',
        bindings,
        expression: rebuild(node.expression, inner, false, limits),
      }
    }
    case 'MultiSelectHash':
      return {
        type: 'MultiSelectHash',
        children: node.children.map((pair) => ({ name: pair.name, value: again(pair.value) })),
      }
    case 'MultiSelectList':
      return { type: 'MultiSelectList', children: node.children.map(again) }
    case 'Subexpression':
    case 'IndexExpression':
    case 'Pipe':
    case 'Projection':
    case 'ValueProjection':
    case 'OrExpression':
    case 'AndExpression':
      return { type: node.type, left: again(node.left), right: again(node.right) }
    case 'Comparator':
      return { type: node.type, name: node.name, left: again(node.left), right: again(node.right) }
    case 'Arithmetic':
      return {
        type: node.type,
        operator: node.operator,
        left: again(node.left),
        right: again(node.right),
      }
    case 'FilterProjection':
      return {
        type: node.type,
        left: again(node.left),
        right: again(node.right),
        condition: again(node.condition),
      }
    case 'Flatten':
    case 'NotExpression':
      return { type: node.type, child: again(node.child) }
    case 'Unary':
      return { type: node.type, operator: node.operator, operand: again(node.operand) }
    case 'Ternary':
      return {
        type: node.type,
        condition: again(node.condition),
        trueExpr: again(node.trueExpr),
        falseExpr: again(node.falseExpr),
      }
    default:
      throw new ExpressionProblem(`uses an unsupported construct (${String(node.type)})`)
  }
}

function unknownFunction(name: string): string {
  const close = [...FUNCTIONS.keys()].filter((known) => editDistance(name, known) <= 2)
  const hint = close.length > 0 ? ` (did you mean ${close.map((c) => `${c}()`).join(' or ')}?)` : ''
  return `uses an unknown function ${name}()${hint}`
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || a.length > 64) return 3
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      current.push(
        Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost),
      )
    }
    previous = current
  }
  return previous[b.length] ?? 3
}
