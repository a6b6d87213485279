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
import { isPromise } from 'graphql-yoga'
import { named, type NamedPlugin } from '../http/named-plugin.ts'
import {
  graphQLOperationCounts,
  recordGraphQLOperation,
  type OperationCounts,
  type OperationType,
} from './metrics.ts'

export interface OperationLabel {
  readonly type: OperationType
  readonly name: string
}

/** A label and where its operations are counted. */
export type Labelled = OperationLabel & { readonly counts: OperationCounts }

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
  label(document: DocumentNode, operationName: string | null | undefined): Labelled
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
  // Documents come from the shared document cache, so most requests find their label here. Only
  // the operations a document has are remembered: a client's made-up operation names are not.
  const labels = new WeakMap<DocumentNode, Map<string, Labelled>>()
  const label = (document: DocumentNode, operationName: string | null | undefined): Labelled => {
    const key = operationName ?? ''
    const known = labels.get(document)?.get(key)
    if (known !== undefined) return known
    const operation = getOperationAST(document, operationName)
    const type: OperationType = operation?.operation ?? 'query'
    const first = operation?.selectionSet.selections.find((s) => s.kind === Kind.FIELD)
    const field = first?.kind === Kind.FIELD ? first.name.value : ''
    const name = rootFields.has(field) ? field : 'other'
    const labelled = { type, name, counts: graphQLOperationCounts(type, name) }
    if (operation !== null) {
      let byName = labels.get(document)
      if (byName === undefined) labels.set(document, (byName = new Map()))
      byName.set(key, labelled)
    }
    return labelled
  }
  return {
    label,
    run<T>(
      document: DocumentNode,
      operationName: string | null | undefined,
      execute: () => Promise<T> | T,
    ): Promise<T> {
      const operation = label(document, operationName)
      // Not an async function: a result the executor has at once (`{ __typename }`) is counted
      // without waiting for a promise, and no timer object is made per operation.
      const timed = (): Promise<T> => {
        const started = performance.now()
        const settle = (result: T | undefined, ok: boolean): void => {
          // No `data`: a request error (variables) before any resolver ran; the direct path
          // hands such a request to yoga, so it is not counted here at all (nor twice).
          if (ok && typeof result === 'object' && result !== null && !('data' in result)) return
          const seconds = (performance.now() - started) / 1000
          recordGraphQLOperation(operation.counts, ok && !hasErrors(result), seconds)
        }
        let answer: Promise<T> | T
        try {
          answer = execute()
        } catch (error) {
          settle(undefined, false)
          return Promise.reject(error)
        }
        if (!isPromise(answer)) {
          settle(answer, true)
          return Promise.resolve(answer)
        }
        return Promise.resolve(answer).then(
          (result) => {
            settle(result, true)
            return result
          },
          (error: unknown) => {
            settle(undefined, false)
            throw error
          },
        )
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
      recordGraphQLOperation(observer.label(args.document, args.operationName).counts, true)
    },
  })
}
