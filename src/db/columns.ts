/**
 * Select lists for the raw-SQL queries (unnest joins, keyset pages, full text) built from the drizzle
 * schema, so the schema stays the one list of columns: `alias.column_name AS "key"` for each column.
 */
import { getTableColumns, type Table } from 'drizzle-orm';

export function selectList<T extends Table>(
  table: T,
  alias: string,
  opts: { omit?: readonly (keyof T['_']['columns'])[]; rename?: Partial<Record<keyof T['_']['columns'], string>> } = {},
): string {
  return Object.entries(getTableColumns(table))
    .filter(([key]) => !opts.omit?.includes(key))
    .map(([key, column]) => `${alias}.${column.name} AS "${opts.rename?.[key] ?? key}"`)
    .join(', ');
}
