/**
 * What this server's schema offers, read once by introspection. Fields arrive issue by issue
 * (dashboards, search, explanations); pages ask for a field only when the server has it and say
 * what is missing otherwise, so one UI build works against older and newer servers.
 */
import { gql } from './api.js';

interface TypeRef {
  name: string | null;
  kind: string;
  ofType: TypeRef | null;
}

interface IntrospectedType {
  name: string;
  kind: string;
  fields: { name: string; type: TypeRef }[] | null;
}

export interface Schema {
  has(type: string, field: string): boolean;
  /** The named type of a field, lists and non-null unwrapped. */
  typeOf(type: string, field: string): string | null;
  fields(type: string): string[];
  /** The root mutation type's name, when the server takes mutations. */
  mutation: string | null;
}

const INTROSPECT = `{ __schema { queryType { name } mutationType { name }
  types { name kind fields { name type { name kind ofType { name kind ofType { name kind ofType { name kind } } } } }
  } } }`;

function named(t: TypeRef | null): string | null {
  while (t && !t.name) t = t.ofType;
  return t?.name ?? null;
}

let cached: Promise<Schema> | null = null;

export function loadSchema(): Promise<Schema> {
  cached ??= gql<{
    __schema: { queryType: { name: string }; mutationType: { name: string } | null; types: IntrospectedType[] };
  }>(INTROSPECT).then(
    ({ __schema: s }) => {
      const types = new Map(
        s.types.map((t) => [t.name, new Map((t.fields ?? []).map((f) => [f.name, named(f.type)]))]),
      );
      // Query fields are looked up as type "Query" whatever the root is called.
      const query = types.get(s.queryType.name);
      if (query) types.set('Query', query);
      return {
        has: (type, field) => types.get(type)?.has(field) ?? false,
        typeOf: (type, field) => types.get(type)?.get(field) ?? null,
        fields: (type) => [...(types.get(type)?.keys() ?? [])],
        mutation: s.mutationType?.name ?? null,
      };
    },
    (e: unknown) => {
      cached = null;
      throw e;
    },
  );
  return cached;
}

/** `fields` of `type` that the schema has, as a selection set body (scalar fields only). */
export function pick(schema: Schema, type: string, fields: string[]): string {
  return fields.filter((f) => schema.has(type, f)).join(' ');
}
