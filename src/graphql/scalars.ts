import { GraphQLError, Kind, type ValueNode } from 'graphql'
import { builder } from './builder.ts'

builder.scalarType('DateTime', {
  description: 'An instant, as an ISO 8601 string in UTC (e.g. 2026-11-27T10:00:00.000Z).',
  serialize: (value) => {
    const date = value instanceof Date ? value : new Date(String(value))
    if (Number.isNaN(date.getTime()))
      throw new GraphQLError('DateTime cannot represent an invalid date')
    return date.toISOString()
  },
  parseValue: (value) => {
    const date = typeof value === 'string' ? new Date(value) : new Date(Number.NaN)
    if (Number.isNaN(date.getTime())) throw new GraphQLError('DateTime must be an ISO 8601 string')
    return date
  },
})

function literalToJson(
  node: ValueNode,
  variables: Record<string, unknown> | null | undefined,
): unknown {
  switch (node.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return node.value
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value)
    case Kind.NULL:
      return null
    case Kind.LIST:
      return node.values.map((v) => literalToJson(v, variables))
    case Kind.OBJECT: {
      // Null prototype: keys such as __proto__ stay plain data.
      const object: Record<string, unknown> = Object.create(null)
      for (const field of node.fields)
        object[field.name.value] = literalToJson(field.value, variables)
      return object
    }
    case Kind.VARIABLE:
      return variables?.[node.name.value]
    default:
      throw new GraphQLError('JSON cannot represent this literal')
  }
}

builder.scalarType('JSON', {
  description: 'Any JSON value.',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (node, variables) => literalToJson(node, variables),
})
