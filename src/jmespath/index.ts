/**
 * A bounded JMESPath engine. `@jmespath-community/jmespath` parses an expression (its `compile`);
 * `prepareExpression` checks the tree and copies it; `evaluateExpression` runs it on JSON data
 * under a step allowance, a time budget and a bound on the strings it builds.
 *
 * This file is the module's only surface: nothing outside src/jmespath imports another of its
 * files, and the engine imports nothing from the rest of src (test/boundaries.test.ts checks).
 */
export type { Node } from './ast.ts'
export { evaluateExpression } from './evaluate.ts'
export type { JsonArray, JsonObject, JsonValue } from './json.ts'
export { prepareExpression, type ExpressionLimits } from './prepare.ts'
export { EvaluationError, type EvaluationLimits } from './runtime.ts'
