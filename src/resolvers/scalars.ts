/** DateTime: an instant as an ISO 8601 / RFC 3339 string in UTC (`Date.prototype.toISOString`). */
import { GraphQLError, GraphQLScalarType, Kind } from 'graphql';

// RFC 3339 date-time: a date, a time, and a zone (Z or ±hh:mm); JavaScript's Date parses it exactly.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

function fromString(s: string): Date {
  const d = new Date(s);
  if (!RFC3339.test(s) || Number.isNaN(d.getTime()))
    throw new GraphQLError(`DateTime cannot represent "${s}": use an RFC 3339 date-time such as 2026-01-31T12:00:00Z.`);
  return d;
}

export const DateTime = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  description: 'An instant as an ISO 8601 / RFC 3339 string in UTC.',
  serialize: (value) => (value instanceof Date ? value : fromString(String(value))).toISOString(),
  parseValue: (value) => {
    if (typeof value !== 'string') throw new GraphQLError('DateTime must be given as a string.');
    return fromString(value);
  },
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw new GraphQLError('DateTime must be given as a string.', { nodes: ast });
    return fromString(ast.value);
  },
});
