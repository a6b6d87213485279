/**
 * The syntax tree the evaluator runs: the library's tree after prepare.ts has checked it, with
 * literals copied into null-prototype JSON. A file of its own that imports only the JSON types,
 * so that any part of the engine can name a node without importing prepare.ts (which imports
 * the functions, which import runtime.ts), and the engine's files form no import cycle.
 */
import type { JsonValue } from './json.ts'

export type Node =
  | { readonly type: 'Field'; readonly name: string }
  | { readonly type: 'Literal'; readonly value: JsonValue }
  | { readonly type: 'Index'; readonly value: number }
  | {
      readonly type: 'Slice'
      readonly start: number | null
      readonly stop: number | null
      readonly step: number | null
    }
  | { readonly type: 'Current' | 'Identity' | 'Root' }
  | { readonly type: 'Variable'; readonly name: string }
  | {
      readonly type:
        | 'Subexpression'
        | 'IndexExpression'
        | 'Pipe'
        | 'Projection'
        | 'ValueProjection'
        | 'OrExpression'
        | 'AndExpression'
      readonly left: Node
      readonly right: Node
    }
  | {
      readonly type: 'Comparator'
      readonly name: 'EQ' | 'NE' | 'GT' | 'GTE' | 'LT' | 'LTE'
      readonly left: Node
      readonly right: Node
    }
  | {
      readonly type: 'Arithmetic'
      readonly operator: string
      readonly left: Node
      readonly right: Node
    }
  | {
      readonly type: 'FilterProjection'
      readonly left: Node
      readonly right: Node
      readonly condition: Node
    }
  | { readonly type: 'Flatten' | 'NotExpression' | 'ExpressionReference'; readonly child: Node }
  | { readonly type: 'Unary'; readonly operator: 'Plus' | 'Minus'; readonly operand: Node }
  | { readonly type: 'MultiSelectList'; readonly children: readonly Node[] }
  | {
      readonly type: 'MultiSelectHash'
      readonly children: readonly { readonly name: string; readonly value: Node }[]
    }
  | { readonly type: 'Function'; readonly name: string; readonly children: readonly Node[] }
  | {
      readonly type: 'LetExpression'
      readonly bindings: readonly { readonly variable: string; readonly reference: Node }[]
      readonly expression: Node
    }
  | {
      readonly type: 'Ternary'
      readonly condition: Node
      readonly trueExpr: Node
      readonly falseExpr: Node
    }
