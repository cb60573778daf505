/** The committed schema snapshot (test/fixtures/schema/schema.graphql) and the schema as the SDL prints it now. */
import { fileURLToPath } from 'node:url';
import { buildSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { typeDefs } from '../../src/schema/index.js';

export const SNAPSHOT = fileURLToPath(new URL('../fixtures/schema/schema.graphql', import.meta.url));

export function printedSchema(): string {
  return printSchema(lexicographicSortSchema(buildSchema(typeDefs))) + '\n';
}
