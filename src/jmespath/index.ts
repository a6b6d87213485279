/**
 * A bounded JMESPath engine: the expression is parsed by `@jmespath-community/jmespath`, checked
 * and copied by `prepareExpression`, and evaluated by `evaluateExpression` under a step
 * allowance, a time budget and a bound on built strings. This file is the module's only surface:
 * code outside src/jmespath imports nothing else from it (test/boundaries.test.ts checks).
 */
export { evaluateExpression } from './evaluate.ts'
export { prepareExpression, type ExpressionLimits, type Node } from './prepare.ts'
export { EvaluationError, type EvaluationLimits } from './runtime.ts'
