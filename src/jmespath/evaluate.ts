/**
 * A metered JMESPath evaluator over the checked syntax tree of prepare.ts.
 *
 * `@jmespath-community/jmespath` parses (it passes 907 of the 908 official compliance cases);
 * this module evaluates, because evaluation has to be bounded (runtime.ts) and
 * prototype-safe, and the library's interpreter is neither:
 *
 * - A field is read only as an own property, and every object built here has a null
 *   prototype, so `constructor` or `__proto__` in the data or an expression is plain data.
 *   (The library reads `value[name]`, so `{}`.constructor gives a function, and builds
 *   multi-select hashes in ordinary objects, where a `"__proto__"` key replaces the prototype.)
 * - Every visit pays one step; projections and flattens pay for the elements they create
 *   before creating them; functions pay in functions.ts.
 *
 * Semantics follow the library's interpreter node by node, except: arithmetic refuses results
 * that are not finite numbers (division by zero, overflow) instead of returning them, and
 * `&expr` keeps its `let` scope inside functions (JEP-18; the library loses it).
 */
import type { Node } from './ast.ts'
import { checkArguments, FUNCTIONS, type FunctionContext } from './functions.ts'
import { emptyObject, isJsonObject, type JsonValue } from './json.ts'
import {
  article,
  deepEqual,
  EvaluationError,
  Expref,
  isFalse,
  Meter,
  typeName,
  type Argument,
  type EvaluationLimits,
  type Scope,
} from './runtime.ts'

/**
 * Evaluates a prepared expression on `data`. Throws EvaluationError when the data does not fit
 * the expression (a function given the wrong type) or the evaluation goes over its budget.
 *
 * The data must be JSON nested no deeper than the caller is willing to recurse: deep equality
 * and `to_string` walk values recursively. `clock` gives milliseconds, for the time budget.
 */
export function evaluateExpression(
  ast: Node,
  data: JsonValue,
  limits: EvaluationLimits,
  clock: () => number,
): { value: JsonValue; steps: number } {
  const evaluator = new Evaluator(data, new Meter(limits, clock))
  const value = evaluator.visit(ast, data, null)
  return { value, steps: evaluator.meter.stepsUsed }
}

class Evaluator implements FunctionContext {
  readonly meter: Meter
  private readonly root: JsonValue

  constructor(root: JsonValue, meter: Meter) {
    this.root = root
    this.meter = meter
  }

  applyExpref(expref: Expref, value: JsonValue): JsonValue {
    return this.visit(expref.node, value, expref.scope)
  }

  visit(node: Node, value: JsonValue, scope: Scope | null): JsonValue {
    this.meter.step(1)
    switch (node.type) {
      case 'Field':
        return isJsonObject(value) && Object.hasOwn(value, node.name)
          ? (value[node.name] as JsonValue)
          : null
      case 'Current':
      case 'Identity':
        return value
      case 'Root':
        return this.root
      case 'Literal':
        return node.value
      case 'Subexpression': {
        const left = this.visit(node.left, value, scope)
        return left === null ? null : this.visit(node.right, left, scope)
      }
      case 'IndexExpression':
      case 'Pipe':
        return this.visit(node.right, this.visit(node.left, value, scope), scope)
      case 'Index': {
        if (!Array.isArray(value)) return null
        const index = node.value < 0 ? value.length + node.value : node.value
        return (value[index] as JsonValue | undefined) ?? null
      }
      case 'Slice':
        return this.slice(node, value)
      case 'Projection': {
        const base = this.visit(node.left, value, scope)
        // `'text'[::-1]` slices a string; the library applies the right side to it directly.
        if (
          typeof base === 'string' &&
          node.left.type === 'IndexExpression' &&
          node.left.right.type === 'Slice'
        ) {
          return this.visit(node.right, base, scope)
        }
        return Array.isArray(base) ? this.project(base, node.right, null, scope) : null
      }
      case 'ValueProjection': {
        const base = this.visit(node.left, value, scope)
        if (!isJsonObject(base)) return null
        const values = Object.values(base)
        return this.project(values, node.right, null, scope)
      }
      case 'FilterProjection': {
        const base = this.visit(node.left, value, scope)
        return Array.isArray(base) ? this.project(base, node.right, node.condition, scope) : null
      }
      case 'Flatten': {
        const base = this.visit(node.child, value, scope)
        if (!Array.isArray(base)) return null
        let total = 0
        for (const item of base) total += Array.isArray(item) ? item.length : 1
        this.meter.step(base.length + total)
        const flat: JsonValue[] = []
        for (const item of base) {
          if (Array.isArray(item)) for (const inner of item) flat.push(inner)
          else flat.push(item)
        }
        return flat
      }
      case 'Comparator': {
        const left = this.visit(node.left, value, scope)
        const right = this.visit(node.right, value, scope)
        switch (node.name) {
          case 'EQ':
            return deepEqual(left, right, this.meter)
          case 'NE':
            return !deepEqual(left, right, this.meter)
        }
        if (typeof left !== 'number' || typeof right !== 'number') return null
        switch (node.name) {
          case 'GT':
            return left > right
          case 'GTE':
            return left >= right
          case 'LT':
            return left < right
          case 'LTE':
            return left <= right
        }
        return null
      }
      case 'OrExpression': {
        const left = this.visit(node.left, value, scope)
        return isFalse(left, this.meter) ? this.visit(node.right, value, scope) : left
      }
      case 'AndExpression': {
        const left = this.visit(node.left, value, scope)
        return isFalse(left, this.meter) ? left : this.visit(node.right, value, scope)
      }
      case 'NotExpression':
        return isFalse(this.visit(node.child, value, scope), this.meter)
      case 'Ternary':
        return isFalse(this.visit(node.condition, value, scope), this.meter)
          ? this.visit(node.falseExpr, value, scope)
          : this.visit(node.trueExpr, value, scope)
      case 'MultiSelectList': {
        const list: JsonValue[] = []
        for (const child of node.children) list.push(this.visit(child, value, scope))
        return list
      }
      case 'MultiSelectHash': {
        const hash = emptyObject()
        for (const pair of node.children) hash[pair.name] = this.visit(pair.value, value, scope)
        return hash
      }
      case 'Function': {
        const spec = FUNCTIONS.get(node.name)
        if (spec === undefined) throw new EvaluationError(`unknown function ${node.name}()`)
        const args: Argument[] = node.children.map((child) =>
          child.type === 'ExpressionReference'
            ? new Expref(child.child, scope)
            : this.visit(child, value, scope),
        )
        checkArguments(node.name, spec, args, this.meter)
        return spec.call(args, this)
      }
      case 'Arithmetic':
        return this.arithmetic(
          node.operator,
          this.visit(node.left, value, scope),
          this.visit(node.right, value, scope),
        )
      case 'Unary': {
        const operand = this.visit(node.operand, value, scope)
        if (typeof operand !== 'number') {
          throw new EvaluationError(`unary ${node.operator === 'Minus' ? '-' : '+'} needs a number`)
        }
        return node.operator === 'Minus' ? -operand : operand
      }
      case 'LetExpression': {
        const variables = new Map<string, JsonValue>()
        for (const binding of node.bindings) {
          variables.set(binding.variable, this.visit(binding.reference, value, scope))
        }
        return this.visit(node.expression, value, { variables, parent: scope })
      }
      case 'Variable': {
        for (let s = scope; s !== null; s = s.parent) {
          const found = s.variables.get(node.name)
          if (found !== undefined || s.variables.has(node.name)) return found ?? null
        }
        throw new EvaluationError(`$${node.name} is not defined`)
      }
      default:
        throw new EvaluationError(`cannot evaluate ${String(node.type)} here`)
    }
  }

  private project(
    items: readonly JsonValue[],
    right: Node,
    condition: Node | null,
    scope: Scope | null,
  ): JsonValue[] {
    this.meter.step(items.length)
    const collected: JsonValue[] = []
    for (const item of items) {
      if (condition !== null && isFalse(this.visit(condition, item, scope), this.meter)) continue
      const result = this.visit(right, item, scope)
      if (result !== null) collected.push(result)
    }
    return collected
  }

  private slice(node: Extract<Node, { type: 'Slice' }>, value: JsonValue): JsonValue {
    let items: readonly JsonValue[]
    if (typeof value === 'string') {
      this.meter.step(value.length)
      items = Array.from(value)
    } else if (Array.isArray(value)) items = value
    else return null
    const step = node.step ?? 1
    if (step === 0) throw new EvaluationError('slice step cannot be 0')
    const length = items.length
    const clamp = (at: number): number => {
      if (at < 0) return Math.max(at + length, step < 0 ? -1 : 0)
      return at >= length ? (step < 0 ? length - 1 : length) : at
    }
    const start = node.start === null ? (step < 0 ? length - 1 : 0) : clamp(node.start)
    const stop = node.stop === null ? (step < 0 ? -1 : length) : clamp(node.stop)
    const count = step > 0 ? Math.ceil((stop - start) / step) : Math.ceil((start - stop) / -step)
    this.meter.step(Math.max(count, 0))
    const out: JsonValue[] = []
    if (step > 0) for (let i = start; i < stop; i += step) out.push(items[i] as JsonValue)
    else for (let i = start; i > stop; i += step) out.push(items[i] as JsonValue)
    return typeof value === 'string' ? (out as string[]).join('') : out
  }

  private arithmetic(operator: string, left: JsonValue, right: JsonValue): number {
    if (typeof left !== 'number' || typeof right !== 'number') {
      throw new EvaluationError(
        `arithmetic needs numbers, got ${article(typeName(left))} and ${article(typeName(right))}`,
      )
    }
    let result: number
    switch (operator) {
      case 'Plus':
        result = left + right
        break
      case 'Minus':
        result = left - right
        break
      case 'Multiply':
      case 'Star':
        result = left * right
        break
      case 'Divide':
      case 'Div':
      case 'Modulo':
        if (right === 0) throw new EvaluationError('division by zero')
        result =
          operator === 'Divide'
            ? left / right
            : operator === 'Div'
              ? Math.floor(left / right)
              : left % right
        break
      default:
        throw new EvaluationError(`unknown arithmetic operator ${operator}`)
    }
    if (!Number.isFinite(result)) throw new EvaluationError('arithmetic gave a number out of range')
    return result
  }
}
