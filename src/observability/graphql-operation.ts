/**
 * One place that sees every executed GraphQL operation, on yoga (the plugin below) and on the
 * direct path (src/http/graphql-direct.ts calls `run` around its executor): it counts and times
 * the operation (metrics.ts) and, when traces are on, runs it inside a span (tracing.ts).
 *
 * An operation is named by its root field, not by the client's operation name: the client chooses
 * the latter freely, while root fields come from the schema. A name outside the schema's root
 * fields (only `__typename` and introspection can be) is "other"; several root fields give the
 * first one's name.
 */
import {
  getOperationAST,
  Kind,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql'
import { named, type NamedPlugin } from '../http/named-plugin.ts'
import { recordGraphQLOperation, type OperationType } from './metrics.ts'

export interface OperationLabel {
  readonly type: OperationType
  readonly name: string
}

/** Set by tracing.ts when traces are on. */
export type GraphQLOperationTracer = <T>(
  operation: OperationLabel,
  call: () => Promise<T>,
  failed: (result: T) => boolean,
) => Promise<T>

let operationTracer: GraphQLOperationTracer | null = null

export function setGraphQLOperationTracer(tracer: GraphQLOperationTracer | null): void {
  operationTracer = tracer
}

export interface GraphQLObserver {
  /** The bounded label of an operation of `document`. */
  label(document: DocumentNode, operationName: string | null | undefined): OperationLabel
  /** Runs one query or mutation, counting, timing and (with traces) tracing it. */
  run<T>(
    document: DocumentNode,
    operationName: string | null | undefined,
    execute: () => Promise<T> | T,
  ): Promise<T>
}

export function createGraphQLObserver(schema: GraphQLSchema): GraphQLObserver {
  const rootFields = new Set<string>(
    [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].flatMap(
      (type) => (type ? Object.keys(type.getFields()) : []),
    ),
  )
  const label = (document: DocumentNode, operationName: string | null | undefined) => {
    const operation = getOperationAST(document, operationName)
    const type: OperationType = operation?.operation ?? 'query'
    const first = operation?.selectionSet.selections.find((s) => s.kind === Kind.FIELD)
    const field = first?.kind === Kind.FIELD ? first.name.value : ''
    return { type, name: rootFields.has(field) ? field : 'other' }
  }
  return {
    label,
    async run(document, operationName, execute) {
      const operation = label(document, operationName)
      const started = process.hrtime.bigint()
      const timed = async () => {
        let ok = false
        let counted = true
        try {
          const result = await execute()
          ok = !hasErrors(result)
          // No `data`: a request error (variables) before any resolver ran; the direct path hands
          // such a request to yoga, so it is not counted here at all (nor twice).
          counted = typeof result !== 'object' || result === null || 'data' in result
          return result
        } finally {
          const seconds = Number(process.hrtime.bigint() - started) / 1e9
          if (counted) recordGraphQLOperation({ ...operation, ok, seconds })
        }
      }
      return operationTracer ? operationTracer(operation, timed, hasErrors) : timed()
    },
  }
}

function hasErrors(result: unknown): boolean {
  const errors = (result as ExecutionResult | null)?.errors
  return Array.isArray(errors) && errors.length > 0
}

/** The yoga side: every execution and subscription goes through the observer. */
export function useGraphQLObserver(observer: GraphQLObserver): NamedPlugin {
  return named('graphql-observer', {
    onExecute({ executeFn, setExecuteFn }) {
      setExecuteFn((args) => observer.run(args.document, args.operationName, () => executeFn(args)))
    },
    onSubscribe({ args }) {
      const operation = observer.label(args.document, args.operationName)
      recordGraphQLOperation({ ...operation, ok: true })
    },
  })
}
