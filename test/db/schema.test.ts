/**
 * src/db/schema.ts is written by hand; this test holds it to the migrated database. Two checks:
 *  1. a written list of tables and columns (what the code relies on) must exist with that type,
 *     nullability and default;
 *  2. every interface of schema.ts (read with the TypeScript parser) must match the database
 *     table for table and column for column, both ways: a migration that adds a column without
 *     schema.ts (or the reverse) fails here.
 */
import { readFileSync } from 'node:fs'
import type { ColumnMetadata } from 'kysely'
import { sql } from 'kysely'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROLES } from '../../src/core/api-key.ts'
import { AUTH_SESSION_STATUSES, CONTACT_UPDATES } from '../../src/core/auth-session.ts'
import { TOKEN_ENDPOINT_AUTH_METHODS } from '../../src/core/integration-rules.ts'
import { REDIRECT_ROUTE_NAMES } from '../../src/core/redirect-urls.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/test-db.ts'

/** `type[ null][ default]`, as the database reports it (udt names). */
const EXPECTED: Record<string, Record<string, string>> = {
  tenants: {
    id: 'uuid default',
    slug: 'text',
    name: 'text',
    created_at: 'timestamptz default',
  },
  api_keys: {
    id: 'uuid default',
    tenant_id: 'uuid',
    key_id: 'text',
    secret_hash: 'bytea',
    role: 'text',
    label: 'text null',
    created_at: 'timestamptz default',
    revoked_at: 'timestamptz null',
  },
  oauth_integrations: {
    id: 'uuid default',
    tenant_id: 'uuid',
    name: 'text',
    client_id: 'text',
    client_secret_sealed: 'text null',
    scope: 'text null',
    authorization_url: 'text',
    authorization_host: 'text null',
    token_url: 'text',
    whoami_url: 'text null',
    whoami_mapping: 'text null',
    token_endpoint_auth_method: 'text default',
    pkce: 'bool default',
    issuer: 'text null',
    split_full_name: 'bool default',
    overwrite_contact: 'bool default',
    session_ttl_seconds: 'int4 default',
    message_text: 'text null',
    message_button_label: 'text null',
    created_at: 'timestamptz default',
    updated_at: 'timestamptz default',
    deleted_at: 'timestamptz null',
    callback_key: 'text',
    shared_redirect_urls: 'bool default',
    require_confirmation_code: 'bool default',
    trust_unverified_email: 'bool default',
    verification_ttl_seconds: 'int4 null',
    provider_metadata: 'jsonb null',
    metadata_fetched_at: 'timestamptz null',
  },
  auth_sessions: {
    id: 'uuid default',
    tenant_id: 'uuid',
    integration_id: 'uuid',
    conversation_id: 'text',
    contact_id: 'text',
    redirect_route: 'text',
    status: 'text',
    link_hash: 'bytea',
    binding_hash: 'bytea null',
    state_hash: 'bytea null',
    code_verifier_sealed: 'text null',
    identity: 'jsonb null',
    failure: 'jsonb null',
    expires_at: 'timestamptz',
    opened_at: 'timestamptz null',
    exchange_claimed_at: 'timestamptz null',
    completed_at: 'timestamptz null',
    created_at: 'timestamptz default',
    updated_at: 'timestamptz default',
    redirect_uri: 'text null',
    openid: 'bool default',
    callback_issuer: 'text null',
    prompt: 'text null',
    max_age_seconds: 'int4 null',
    login_hint: 'text null',
    acr_values: 'jsonb null',
    confirmation_code_sealed: 'text null',
    confirmation_code_hash: 'bytea null',
    confirmation_shown_at: 'timestamptz null',
    confirmation_attempts_left: 'int4 null',
    contact_update: 'text null',
  },
  contacts: {
    tenant_id: 'uuid',
    contact_id: 'text',
    email: 'text null',
    user_name: 'text null',
    full_name: 'text null',
    first_name: 'text null',
    last_name: 'text null',
    verified_session_id: 'uuid null',
    verified_integration_id: 'uuid null',
    verified_at: 'timestamptz null',
    verified_subject: 'text null',
    verified_issuer: 'text null',
    verified_until: 'timestamptz null',
    created_at: 'timestamptz default',
    updated_at: 'timestamptz default',
  },
  audit_events: {
    id: 'int8 default',
    tenant_id: 'uuid',
    actor_key_id: 'uuid null',
    action: 'text',
    target_type: 'text',
    target_id: 'text',
    details: 'jsonb default',
    created_at: 'timestamptz default',
  },
  rate_limit_counters: {
    bucket: 'text',
    window_start: 'int8',
    hits: 'int4',
  },
  rate_limit_instances: {
    id: 'text',
    seen_at: 'timestamptz',
  },
}

function describeColumn(column: ColumnMetadata): string {
  return [column.dataType, column.isNullable && 'null', column.hasDefaultValue && 'default']
    .filter(Boolean)
    .join(' ')
}

// ---------------------------------------------------------------------------------------------
// Reading src/db/schema.ts

type Base = 'string' | 'number' | 'boolean' | 'Date' | 'Uint8Array' | 'json'

interface DeclaredColumn {
  readonly base: Base
  readonly nullable: boolean
  /** `Generated<T>`: the database fills it in. */
  readonly generated: boolean
  /** Inserts may leave it out (Generated, or a ColumnType whose insert type allows undefined). */
  readonly optionalOnInsert: boolean
}

/** Which database types each TypeScript type may stand for (pg returns int8 as a string). */
const DATA_TYPES: Record<Base, readonly string[]> = {
  string: ['text', 'varchar', 'uuid', 'int8', 'citext'],
  number: ['int2', 'int4', 'float4', 'float8'],
  boolean: ['bool'],
  Date: ['timestamptz', 'timestamp', 'date'],
  Uint8Array: ['bytea'],
  json: ['jsonb', 'json'],
}

const SCHEMA_TS = readFileSync(new URL('../../src/db/schema.ts', import.meta.url), 'utf8')

function readDeclaredSchema(text: string): Map<string, Map<string, DeclaredColumn>> {
  const source = ts.createSourceFile('schema.ts', text, ts.ScriptTarget.ES2022, true)
  const aliases = new Map<string, ts.TypeAliasDeclaration>()
  const interfaces = new Map<string, ts.InterfaceDeclaration>()
  /** Types imported from core/: each is a union of string literals (a column's value set). */
  const valueSets = new Set<string>()
  for (const statement of source.statements) {
    if (ts.isTypeAliasDeclaration(statement)) aliases.set(statement.name.text, statement)
    if (ts.isInterfaceDeclaration(statement)) interfaces.set(statement.name.text, statement)
    if (
      ts.isImportDeclaration(statement) &&
      ts.isStringLiteral(statement.moduleSpecifier) &&
      statement.moduleSpecifier.text.startsWith('../core/')
    ) {
      const bindings = statement.importClause?.namedBindings
      if (bindings && ts.isNamedImports(bindings)) {
        for (const element of bindings.elements) valueSets.add(element.name.text)
      }
    }
  }

  const properties = (decl: ts.InterfaceDeclaration) =>
    decl.members.filter(ts.isPropertySignature).map((m) => {
      if (!m.type) throw new Error(`schema.ts: ${decl.name.text}.${m.name.getText()} has no type`)
      return { name: m.name.getText(source), type: m.type }
    })

  /** Replaces a local alias's type parameters (e.g. `Json<T>`) by the arguments given. */
  const expand = (ref: ts.TypeReferenceNode): ts.TypeNode | null => {
    const alias = aliases.get(ref.typeName.getText(source))
    if (!alias) return null
    if (!alias.typeParameters?.length) return alias.type
    // Only `T` used directly as an argument is substituted: enough for Json<T> = ColumnType<T, ...>.
    const args = new Map(alias.typeParameters.map((p, i) => [p.name.text, ref.typeArguments?.[i]]))
    const body = alias.type
    if (ts.isTypeReferenceNode(body) && body.typeArguments) {
      const substituted = body.typeArguments.map((a) =>
        ts.isTypeReferenceNode(a) && args.get(a.typeName.getText(source))
          ? args.get(a.typeName.getText(source))!
          : a,
      )
      return ts.factory.updateTypeReferenceNode(
        body,
        body.typeName,
        ts.factory.createNodeArray(substituted),
      )
    }
    return body
  }

  const includesUndefined = (node: ts.TypeNode): boolean =>
    node.kind === ts.SyntaxKind.UndefinedKeyword ||
    (ts.isUnionTypeNode(node) && node.types.some(includesUndefined))

  const isNull = (node: ts.TypeNode) =>
    ts.isLiteralTypeNode(node) && node.literal.kind === ts.SyntaxKind.NullKeyword

  const analyse = (node: ts.TypeNode, where: string): DeclaredColumn => {
    if (ts.isUnionTypeNode(node)) {
      const rest = node.types.filter((t) => !isNull(t))
      const nullable = rest.length < node.types.length
      if (rest.length === 1) {
        const inner = analyse(rest[0]!, where)
        return { ...inner, nullable: inner.nullable || nullable }
      }
      // A union of string literals ('ADMIN' | 'AGENT').
      if (rest.every((t) => ts.isLiteralTypeNode(t) && ts.isStringLiteral(t.literal))) {
        return { base: 'string', nullable, generated: false, optionalOnInsert: false }
      }
      throw new Error(`schema.ts: ${where}: cannot read the union ${node.getText(source)}`)
    }
    const plain = (base: Base): DeclaredColumn => ({
      base,
      nullable: false,
      generated: false,
      optionalOnInsert: false,
    })
    switch (node.kind) {
      case ts.SyntaxKind.StringKeyword:
        return plain('string')
      case ts.SyntaxKind.NumberKeyword:
        return plain('number')
      case ts.SyntaxKind.BooleanKeyword:
        return plain('boolean')
      case ts.SyntaxKind.UnknownKeyword:
        return plain('json')
    }
    if (ts.isTypeLiteralNode(node) || ts.isArrayTypeNode(node)) return plain('json')
    if (ts.isTypeReferenceNode(node)) {
      const name = node.typeName.getText(source)
      const args = node.typeArguments ?? []
      if (name === 'Generated') {
        return { ...analyse(args[0]!, where), generated: true, optionalOnInsert: true }
      }
      if (name === 'ColumnType') {
        const select = analyse(args[0]!, where)
        return { ...select, optionalOnInsert: args[1] !== undefined && includesUndefined(args[1]) }
      }
      if (name === 'Date' || name === 'Uint8Array') return plain(name)
      if (valueSets.has(name)) return plain('string')
      if (name === 'Record' || name === 'Array') return plain('json')
      const expanded = expand(node)
      if (expanded) return analyse(expanded, where)
    }
    throw new Error(
      `schema.ts: ${where}: unknown column type ${node.getText(source)} (teach this test)`,
    )
  }

  const database = interfaces.get('Database')
  if (!database) throw new Error('schema.ts has no `interface Database`')
  const tables = new Map<string, Map<string, DeclaredColumn>>()
  for (const { name: table, type } of properties(database)) {
    const decl = interfaces.get(type.getText(source))
    if (!decl) throw new Error(`schema.ts: Database.${table} is not an interface of the file`)
    tables.set(
      table,
      new Map(
        properties(decl).map(({ name, type: t }) => [
          name,
          analyse(t, `${decl.name.text}.${name}`),
        ]),
      ),
    )
  }
  return tables
}

/** What differs between schema.ts and the database, one line per problem. */
function compare(
  declared: Map<string, Map<string, DeclaredColumn>>,
  actual: Map<string, Map<string, ColumnMetadata>>,
): string[] {
  const problems: string[] = []
  for (const table of actual.keys()) {
    if (!declared.has(table)) problems.push(`${table}: in the database, not in schema.ts`)
  }
  for (const [table, columns] of declared) {
    const real = actual.get(table)
    if (!real) {
      problems.push(`${table}: in schema.ts, not in the database`)
      continue
    }
    for (const name of real.keys()) {
      if (!columns.has(name)) problems.push(`${table}.${name}: in the database, not in schema.ts`)
    }
    for (const [name, column] of columns) {
      const meta = real.get(name)
      const where = `${table}.${name}`
      if (!meta) {
        problems.push(`${where}: in schema.ts, not in the database`)
        continue
      }
      if (!DATA_TYPES[column.base].includes(meta.dataType)) {
        problems.push(`${where}: schema.ts says ${column.base}, the database has ${meta.dataType}`)
      }
      if (column.nullable !== meta.isNullable) {
        problems.push(
          `${where}: schema.ts says ${column.nullable ? '' : 'not '}nullable, the database disagrees`,
        )
      }
      if (column.generated && !meta.hasDefaultValue) {
        problems.push(`${where}: Generated<> in schema.ts, but the database has no default`)
      }
      if (meta.hasDefaultValue && !column.optionalOnInsert && !column.nullable) {
        problems.push(`${where}: the database has a default; make it Generated<> in schema.ts`)
      }
    }
  }
  return problems
}

// ---------------------------------------------------------------------------------------------

describe('src/db/schema.ts against the migrated database', () => {
  let database: TestDatabase
  let actual: Map<string, Map<string, ColumnMetadata>>

  beforeAll(async () => {
    database = await createTestDatabase()
    const schema = await sql<{ s: string }>`select current_schema() as s`.execute(database.db)
    const tables = await database.db.introspection.getTables()
    actual = new Map(
      tables
        .filter((t) => !t.isView && t.schema === schema.rows[0]!.s)
        .map((t) => [t.name, new Map(t.columns.map((c) => [c.name, c]))]),
    )
  })
  afterAll(() => database.close())

  it('has every table and column the code relies on, with its type, nullability and default', () => {
    const found: Record<string, Record<string, string>> = {}
    for (const [table, columns] of Object.entries(EXPECTED)) {
      found[table] = {}
      for (const column of Object.keys(columns)) {
        const meta = actual.get(table)?.get(column)
        found[table][column] = meta ? describeColumn(meta) : '(missing)'
      }
    }
    expect(found).toEqual(EXPECTED)
  })

  it('declares exactly the tables and columns of the database, with matching types', () => {
    expect(compare(readDeclaredSchema(SCHEMA_TS), actual)).toEqual([])
  })

  it('has CHECK constraints that allow exactly the value sets core/ lists', async () => {
    const checks = await sql<{ table: string; definition: string }>`
      select c.conrelid::regclass::text as table, pg_get_constraintdef(c.oid) as definition
      from pg_constraint c
      where c.contype = 'c' and c.connamespace = current_schema()::regnamespace`.execute(
      database.db,
    )
    /** The values a `column in (...)` / `column = ANY (ARRAY[...])` CHECK allows. */
    const allowed = (table: string, column: string): string[] => {
      const found = checks.rows.filter(
        (r) => r.table === table && new RegExp(`^CHECK \\(\\(\\(?${column}\\b`).test(r.definition),
      )
      expect(found, `${table}.${column}`).toHaveLength(1)
      return [...found[0]!.definition.matchAll(/'([^']*)'/g)].map((m) => m[1]!).sort()
    }
    const sorted = (values: readonly string[]) => [...values].sort()
    expect(allowed('api_keys', 'role')).toEqual(sorted(ROLES))
    expect(allowed('oauth_integrations', 'token_endpoint_auth_method')).toEqual(
      sorted(TOKEN_ENDPOINT_AUTH_METHODS),
    )
    expect(allowed('auth_sessions', 'redirect_route')).toEqual(sorted(REDIRECT_ROUTE_NAMES))
    expect(allowed('auth_sessions', 'status')).toEqual(sorted(AUTH_SESSION_STATUSES))
    expect(allowed('auth_sessions', 'contact_update')).toEqual(sorted(CONTACT_UPDATES))
  })

  it('would notice schema.ts drifting from the migrations (this test checks itself)', () => {
    const drifted = SCHEMA_TS.replace(/^(\s*)label: string \| null$/m, '$1label: string')
      .replace(/^\s*revoked_at: Date \| null$/m, '')
      .replace(
        /^(\s*)pkce: Generated<boolean>$/m,
        '$1pkce: Generated<boolean>\n$1pkce_method: string',
      )
      .replace(/^(\s*)key_id: string$/m, '$1key_id: number')
    expect(drifted).not.toBe(SCHEMA_TS)
    expect(compare(readDeclaredSchema(drifted), actual).sort()).toEqual([
      'api_keys.key_id: schema.ts says number, the database has text',
      'api_keys.label: schema.ts says not nullable, the database disagrees',
      'api_keys.revoked_at: in the database, not in schema.ts',
      'oauth_integrations.pkce_method: in schema.ts, not in the database',
    ])
  })
})
