/**
 * How much one GraphQL document may ask for: validation rules and parse options that
 * graphql/options.ts gives to both ways a request can take (yoga and the direct path), so a
 * request over a limit is refused before any resolver runs, whichever path answers it.
 *
 * - tokens: graphql's own parser stops at GRAPHQL_MAX_TOKENS, so a huge document costs no more
 *   than lexing that many tokens (and OverlappingFieldsCanBeMerged, quadratic in the number of
 *   fields, never sees thousands of them);
 * - depth, aliases, directives: graphql-armor's rules;
 * - cost: ours, below, because it must know which fields do expensive work (a new session, a call
 *   to a tenant's provider), which graphql-armor's structural cost cannot express.
 */
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases'
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth'
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives'
import {
  GraphQLError,
  getNamedType,
  getNullableType,
  isListType,
  isObjectType,
  isInterfaceType,
  isInputObjectType,
  isEnumType,
  isAbstractType,
  isCompositeType,
  getIntrospectionQuery,
  parse,
  Kind,
  SchemaMetaFieldDef,
  TypeMetaFieldDef,
  type ASTVisitor,
  type FieldNode,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLNamedType,
  type GraphQLObjectType,
  type OperationDefinitionNode,
  type GraphQLSchema,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql'
import type { GraphQLLimits } from '../config.ts'

/**
 * Fields that cost more than a read, by schema coordinate. A plain field costs 1; a list of
 * objects costs its selection times LIST_SIZE. The weights are chosen against the default budget
 * (GRAPHQL_MAX_COST 1,000): one request may start at most 5 sessions, save at most 2
 * integrations (each may read an issuer's metadata), and test one mapping: an evaluation may
 * take the mapping engine's whole time budget (100 ms) on a 1 MiB payload, which is all one
 * request may hold the event loop for.
 */
export const FIELD_COSTS: Readonly<Record<string, number>> = {
  'Mutation.startEndUserAuth': 180,
  'Mutation.createOAuthIntegration': 450,
  'Mutation.updateOAuthIntegration': 450,
  'Mutation.testWhoAmIMapping': 550,
  'Mutation.confirmEndUserAuth': 50,
  'Mutation.cancelEndUserAuth': 20,
  'Mutation.deleteOAuthIntegration': 50,
  'Mutation.createApiKey': 50,
  'Mutation.revokeApiKey': 50,
}

/**
 * `testWhoAmIMapping` calls the integration's WhoAmI URL when its input has an `integrationId`
 * and an `accessToken`; an input given as a variable may, so it is counted as live too.
 */
export const LIVE_MAPPING_COST = 700

/** What a list of objects is assumed to hold, for its selection's cost. */
export const LIST_SIZE = 10

/**
 * How many entries an introspection list holds on average in this schema, so introspection is
 * costed at about what it really resolves: `types` is every type, a type's `fields` the mean over
 * types that have fields, and so on.
 */
function introspectionSizes(schema: GraphQLSchema): Record<string, number> {
  const types = Object.values(schema.getTypeMap())
  const mean = (counts: number[]) =>
    counts.length === 0
      ? 1
      : Math.max(1, Math.ceil(counts.reduce((a, b) => a + b, 0) / counts.length))
  const fields: number[] = []
  const args: number[] = []
  const values: number[] = []
  const interfaces: number[] = []
  const possible: number[] = []
  for (const type of types) {
    if (isObjectType(type) || isInterfaceType(type)) {
      const list = Object.values(type.getFields())
      fields.push(list.length)
      for (const field of list) args.push(field.args.length)
      interfaces.push(type.getInterfaces().length)
    } else if (isInputObjectType(type)) {
      fields.push(Object.keys(type.getFields()).length)
    } else if (isEnumType(type)) {
      values.push(type.getValues().length)
    }
    if (isAbstractType(type)) possible.push(schema.getPossibleTypes(type).length)
  }
  const directives = schema.getDirectives()
  for (const directive of directives) args.push(directive.args.length)
  return {
    '__Schema.types': types.length,
    '__Schema.directives': directives.length,
    '__Type.fields': mean(fields),
    '__Type.inputFields': mean(fields),
    '__Type.interfaces': mean(interfaces),
    '__Type.possibleTypes': mean(possible),
    '__Type.enumValues': mean(values),
    '__Field.args': mean(args),
    '__Directive.args': mean(args),
  }
}

/** What a document's operation costs: its own fields, and its introspection apart. */
export interface OperationCost {
  readonly fields: number
  readonly introspection: number
}

/**
 * Costs the operations of a document. A fragment's cost is worked out once, so fragments that
 * spread others twice over cannot make the walk exponential; fragments spread inside themselves
 * are refused by NoFragmentCycles, and `active` keeps this walk finite meanwhile.
 */
function operationCoster(
  schema: GraphQLSchema,
  document: DocumentNode,
  sizes: Record<string, number>,
) {
  const fragments = new Map<string, FragmentDefinitionNode>()
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION)
      fragments.set(definition.name.value, definition)
  }
  const active = new Set<string>()
  const fragmentCosts = new Map<string, number>()

  const selectionCost = (parent: GraphQLNamedType, selectionSet: SelectionSetNode): number => {
    let total = 0
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        total += fieldCost(parent, selection)
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const on = selection.typeCondition
          ? (schema.getType(selection.typeCondition.name.value) ?? parent)
          : parent
        total += selectionCost(on, selection.selectionSet)
      } else {
        const name = selection.name.value
        const fragment = fragments.get(name)
        if (!fragment || active.has(name)) continue
        let cost = fragmentCosts.get(name)
        if (cost === undefined) {
          active.add(name)
          const on = schema.getType(fragment.typeCondition.name.value) ?? parent
          cost = selectionCost(on, fragment.selectionSet)
          active.delete(name)
          fragmentCosts.set(name, cost)
        }
        total += cost
      }
    }
    return total
  }

  const fieldCost = (parent: GraphQLNamedType, node: FieldNode): number => {
    const name = node.name.value
    if (name === '__typename') return 0
    // Unknown fields are FieldsOnCorrectType's to report; unions are costed through their
    // inline fragments.
    if (!isObjectType(parent) && !isInterfaceType(parent)) return 0
    const field =
      name === '__schema'
        ? SchemaMetaFieldDef
        : name === '__type'
          ? TypeMetaFieldDef
          : parent.getFields()[name]
    if (!field) return 0
    const coordinate = `${parent.name}.${field.name}`
    const own =
      coordinate === 'Mutation.testWhoAmIMapping' && mayCallProvider(node)
        ? LIVE_MAPPING_COST
        : (FIELD_COSTS[coordinate] ?? 1)
    const named = getNamedType(field.type)
    if (!node.selectionSet || !isCompositeType(named)) return own
    const size = isListType(getNullableType(field.type)) ? (sizes[coordinate] ?? LIST_SIZE) : 1
    return own + size * selectionCost(named, node.selectionSet)
  }

  /** Root fields `__schema` and `__type` (also inside root fragments) count as introspection. */
  const rootCost = (root: GraphQLObjectType, selectionSet: SelectionSetNode, into: number[]) => {
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        const bucket =
          selection.name.value === '__schema' || selection.name.value === '__type' ? 1 : 0
        into[bucket] = (into[bucket] as number) + fieldCost(root, selection)
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        rootCost(root, selection.selectionSet, into)
      } else {
        const fragment = fragments.get(selection.name.value)
        if (!fragment || active.has(fragment.name.value)) continue
        active.add(fragment.name.value)
        rootCost(root, fragment.selectionSet, into)
        active.delete(fragment.name.value)
      }
    }
  }

  return (operation: OperationDefinitionNode): OperationCost => {
    const root = schema.getRootType(operation.operation)
    if (!root) return { fields: 0, introspection: 0 }
    const totals = [0, 0]
    rootCost(root, operation.selectionSet, totals)
    return { fields: totals[0] as number, introspection: totals[1] as number }
  }
}

/** The cost of each operation of a document, in document order (for tests and tuning). */
export function operationCosts(schema: GraphQLSchema, document: DocumentNode): OperationCost[] {
  const cost = operationCoster(schema, document, introspectionSizes(schema))
  return document.definitions
    .filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    .map((operation) => cost(operation))
}

/**
 * Introspection has a budget of its own: twice what the full standard introspection query
 * (GraphiQL's, with every option) costs on this schema, so tools work and nested
 * `types { fields { type { fields … } } }` do not.
 */
export function introspectionBudget(schema: GraphQLSchema): number {
  const standard = parse(
    getIntrospectionQuery({
      descriptions: true,
      specifiedByUrl: true,
      directiveIsRepeatable: true,
      schemaDescription: true,
      inputValueDeprecation: true,
    }),
  )
  const [cost] = operationCosts(schema, standard)
  return 2 * (cost?.introspection ?? 0)
}

function costRule(limit: number, schema: GraphQLSchema): ValidationRule {
  const sizes = introspectionSizes(schema)
  const introspectionLimit = introspectionBudget(schema)
  return (context: ValidationContext): ASTVisitor => {
    const cost = operationCoster(schema, context.getDocument(), sizes)
    return {
      OperationDefinition(operation) {
        const { fields, introspection } = cost(operation)
        if (fields > limit) {
          context.reportError(
            new GraphQLError(
              `Query cost limit of ${limit} exceeded, found ${fields} (a sign-in started counts ${FIELD_COSTS['Mutation.startEndUserAuth']}, a call to a provider ${LIVE_MAPPING_COST}, a field 1, a list of objects ${LIST_SIZE} times its selection).`,
              { nodes: [operation] },
            ),
          )
        }
        if (introspection > introspectionLimit) {
          context.reportError(
            new GraphQLError(
              `Introspection cost limit of ${introspectionLimit} exceeded, found ${introspection} (twice what the standard introspection query costs).`,
              { nodes: [operation] },
            ),
          )
        }
      },
    }
  }
}

function mayCallProvider(node: FieldNode): boolean {
  const input = node.arguments?.find((argument) => argument.name.value === 'input')?.value
  if (!input) return false
  if (input.kind !== Kind.OBJECT) return true
  const given = new Set(input.fields.map((field) => field.name.value))
  return given.has('accessToken') || given.has('integrationId')
}

/** The rules every document must pass besides graphql's own, as graphql-armor reports them. */
export function limitRules(limits: GraphQLLimits, schema: GraphQLSchema): ValidationRule[] {
  // Report, do not throw: a rule that throws aborts validate() with an exception.
  const report = {
    propagateOnRejection: false,
    onReject: [
      (context: ValidationContext | null, error: GraphQLError) => context?.reportError(error),
    ],
  }
  return [
    // `__schema` is left to the introspection budget below, whose depth is that of the
    // standard introspection query's nested type references (21).
    maxDepthRule({ n: limits.maxDepth, ignoreIntrospection: true, ...report }),
    maxAliasesRule({ n: limits.maxAliases, ...report }),
    maxDirectivesRule({ n: limits.maxDirectives, ...report }),
    costRule(limits.maxCost, schema),
  ]
}

/**
 * graphql's own message for a document over `maxTokens` ("Document contains more that N tokens")
 * reworded; other syntax errors pass unchanged.
 */
export function rewordTokenLimit(error: unknown, limits: GraphQLLimits): unknown {
  if (error instanceof GraphQLError && / contains more that \d+ tokens/.test(error.message)) {
    return new GraphQLError(
      `Syntax Error: Token limit of ${limits.maxTokens} exceeded: the document has more tokens.`,
      { source: error.source ?? undefined, positions: error.positions ?? undefined },
    )
  }
  return error
}
