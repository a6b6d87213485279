/**
 * How every GraphQL request is parsed, validated, given a context and has its errors masked: one
 * object that both ways a request can take use, yoga (through `useGraphQLOptions`) and the direct
 * path of src/http/graphql-direct.ts. A rule added here (a limit, introspection off) holds on both;
 * a rule given to yoga alone as an envelop plugin would miss the direct path, which answers most
 * requests, so runtime/app.ts refuses to start with a yoga plugin the direct path does not honour.
 */
import {
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type GraphQLSchema,
  type ParseOptions,
  type ValidationRule,
} from 'graphql'
import { named, type NamedPlugin } from '../http/named-plugin.ts'
import type { Deps } from '../services/deps.ts'
import { createContext, type GraphQLContext } from './context.ts'
import { createMaskError } from './errors.ts'
import { limitRules, rewordTokenLimit } from './limits.ts'
import { schema } from './schema.ts'

export interface GraphQLOptions {
  readonly schema: GraphQLSchema
  /** Everything a document must pass: graphql's specified rules and ours. */
  readonly validationRules: readonly ValidationRule[]
  readonly parseOptions: ParseOptions
  readonly limits: Deps['config']['graphqlLimits']
  /** The context of a request, from its Authorization header. */
  readonly context: (authorization: string | null) => Promise<GraphQLContext>
  readonly maskError: (error: unknown, message: string) => GraphQLError
  /** Parsed documents by query text, bounded in size; shared so a text is parsed once. */
  readonly documentCache: QueryCache<DocumentNode>
  /** yoga's cache of texts that failed to parse. */
  readonly errorCache: QueryCache<Error>
  /** Strip "Did you mean" suggestions from validation errors (introspection off). */
  readonly hideSuggestions: boolean
}

/**
 * Parsed documents (and yoga's parse errors) are kept by query text, and clients send a handful
 * of fixed queries. Only queries up to QUERY_CACHE_MAX_CHARS are kept, so that anyone sending many
 * large distinct queries cannot fill memory with their texts and syntax trees (a tree is some 20
 * times its text): at most about 500 x 4 KiB x 20 = 40 MB per cache. Larger queries are parsed
 * and validated on every request.
 */
const QUERY_CACHE_SIZE = 500
const QUERY_CACHE_MAX_CHARS = 4096

/** What was made of a query text, for short texts only; the oldest entry is dropped first. */
export class QueryCache<T> {
  readonly #entries = new Map<string, T>()

  get(query: string): T | undefined {
    return this.#entries.get(query)
  }

  set(query: string, value: T): void {
    if (query.length > QUERY_CACHE_MAX_CHARS) return
    if (this.#entries.size >= QUERY_CACHE_SIZE) {
      const oldest = this.#entries.keys().next()
      if (!oldest.done) this.#entries.delete(oldest.value)
    }
    this.#entries.set(query, value)
  }

  get size(): number {
    return this.#entries.size
  }
}

export function createGraphQLOptions(deps: Deps): GraphQLOptions {
  const validationRules: ValidationRule[] = [...specifiedRules]
  // GRAPHQL_INTROSPECTION (default: outside production only, for GraphiQL and codegen).
  if (!deps.config.introspection) validationRules.push(NoSchemaIntrospectionCustomRule)
  // Depth, aliases, directives and cost (graphql/limits.ts); tokens are the parser's.
  const limits = deps.config.graphqlLimits
  validationRules.push(...limitRules(limits, schema))
  return {
    schema,
    validationRules,
    parseOptions: { maxTokens: limits.maxTokens },
    limits,
    context: (authorization) => createContext(deps, authorization),
    maskError: createMaskError(deps.logger),
    documentCache: new QueryCache<DocumentNode>(),
    errorCache: new QueryCache<Error>(),
    hideSuggestions: !deps.config.introspection,
  }
}

/** Parses a query text with the shared options (throws graphql's GraphQLError on a bad one). */
export function parseWith(options: GraphQLOptions, query: string): DocumentNode {
  try {
    return parse(query, options.parseOptions)
  } catch (error) {
    throw rewordTokenLimit(error, options.limits)
  }
}

/**
 * Validates a document with the shared rules. Without introspection, graphql's "Did you mean
 * …?" hints go too: they would spell out the schema one guess at a time.
 */
export function validateWith(
  options: GraphQLOptions,
  document: DocumentNode,
): readonly GraphQLError[] {
  const errors = validate(options.schema, document, options.validationRules)
  if (!options.hideSuggestions) return errors
  return errors.map((error) =>
    / Did you mean /.test(error.message)
      ? new GraphQLError(error.message.replace(/ Did you mean .*$/s, ''), {
          nodes: error.nodes ?? null,
          ...(error.extensions ? { extensions: error.extensions } : {}),
        })
      : error,
  )
}

/** Makes yoga parse and validate exactly as the direct path does. */
export function useGraphQLOptions(options: GraphQLOptions): NamedPlugin {
  return named('graphql-options', {
    onParse({ setParseFn }) {
      setParseFn((source) => parseWith(options, typeof source === 'string' ? source : source.body))
    },
    onValidate({ setValidationFn }) {
      setValidationFn((schema, document) => validateWith({ ...options, schema }, document))
    },
  })
}
