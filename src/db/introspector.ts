/**
 * Kysely's PostgreSQL introspector, limited to the connection's current schema.
 *
 * Kysely's own `getTables` reads every schema in the database and calls
 * `pg_get_serial_sequence('schema.table', …)` for each column. Those name lookups use the newest
 * catalogue, so a schema another client drops while the query runs fails the whole query with
 * `schema "…" does not exist` — and the Migrator calls `getTables` before every migration. Test
 * files (each in its own schema, dropped when done) hit this in CI; an operator sharing a database
 * with other schemas could too. This service only ever reads its own schema (migrations run in
 * `current_schema()`), so looking at that one alone is also what it means.
 */
import {
  DEFAULT_MIGRATION_LOCK_TABLE,
  DEFAULT_MIGRATION_TABLE,
  sql,
  type DatabaseIntrospector,
  type DatabaseMetadata,
  type DatabaseMetadataOptions,
  type ColumnMetadata,
  type Kysely,
  type SchemaMetadata,
  type TableMetadata,
} from 'kysely'

interface ColumnRow {
  column: string
  not_null: boolean
  has_default: boolean
  table: string
  table_type: string
  schema: string
  type: string
  type_schema: string
  column_description: string | null
  auto_incrementing: string | null
}

export class CurrentSchemaIntrospector implements DatabaseIntrospector {
  readonly #db: Kysely<unknown>

  constructor(db: Kysely<unknown>) {
    this.#db = db
  }

  async getSchemas(): Promise<SchemaMetadata[]> {
    const result = await sql<{
      name: string
    }>`select nspname as name from pg_catalog.pg_namespace`.execute(this.#db)
    return result.rows.map((row) => ({ name: row.name }))
  }

  async getTables(
    options: DatabaseMetadataOptions = { withInternalKyselyTables: false },
  ): Promise<TableMetadata[]> {
    // The same columns Kysely's PostgresIntrospector reads, restricted to current_schema() in the
    // join so that no function is ever evaluated with another schema's name.
    const internal = options.withInternalKyselyTables
      ? sql``
      : sql`and c.relname not in (${DEFAULT_MIGRATION_TABLE}, ${DEFAULT_MIGRATION_LOCK_TABLE})`
    const result = await sql<ColumnRow>`
      select a.attname as "column", a.attnotnull as not_null, a.atthasdef as has_default,
             c.relname as "table", c.relkind as table_type, ns.nspname as "schema",
             typ.typname as "type", dtns.nspname as type_schema,
             col_description(a.attrelid, a.attnum) as column_description,
             pg_get_serial_sequence(quote_ident(ns.nspname) || '.' || quote_ident(c.relname), a.attname)
               as auto_incrementing
      from pg_catalog.pg_namespace ns
      join pg_catalog.pg_class c on c.relnamespace = ns.oid
      join pg_catalog.pg_attribute a on a.attrelid = c.oid
      join pg_catalog.pg_type typ on typ.oid = a.atttypid
      join pg_catalog.pg_namespace dtns on dtns.oid = typ.typnamespace
      where ns.nspname = current_schema()
        and c.relkind in ('r', 'v', 'p')
        and a.attnum >= 0 and not a.attisdropped
        ${internal}
      order by c.relname, a.attnum`.execute(this.#db)

    const tables = new Map<string, { meta: TableMetadata; columns: ColumnMetadata[] }>()
    for (const row of result.rows) {
      let table = tables.get(row.table)
      if (!table) {
        const columns: ColumnMetadata[] = []
        table = {
          columns,
          meta: { name: row.table, schema: row.schema, isView: row.table_type === 'v', columns },
        }
        tables.set(row.table, table)
      }
      table.columns.push({
        name: row.column,
        dataType: row.type,
        dataTypeSchema: row.type_schema,
        isNullable: !row.not_null,
        hasDefaultValue: row.has_default,
        isAutoIncrementing: row.auto_incrementing !== null,
        ...(row.column_description === null ? {} : { comment: row.column_description }),
      })
    }
    return [...tables.values()].map((t) => t.meta)
  }

  async getMetadata(options?: DatabaseMetadataOptions): Promise<DatabaseMetadata> {
    return { tables: await this.getTables(options) }
  }
}
