/**
 * GraphQL execution by graphql-jit (decision 0009): each operation is compiled once into JavaScript that
 * resolves and completes exactly its fields, instead of graphql-js walking the query for every value. An
 * encode's response is ~2,000 numbers in packed lists (or ~1,000 small objects), each of which graphql-js
 * completes through several generic calls. Apollo Server takes another executor only through its gateway
 * interface, so this is a gateway serving one fixed schema. Compiled operations are kept per parsed
 * document, which Apollo's document store hands back for a repeated query; parsing and validation stay
 * Apollo's (the armor rules included). graphql-jit's errors are not graphql-js GraphQLErrors (read-only
 * messages, not instances), so the result's are rebuilt as GraphQLErrors around what was thrown, as
 * graphql-js would have made them, for Apollo's and armor's plugins and formatError.
 */
import type { GatewayInterface } from '@apollo/server-gateway-interface';
import { GraphQLError, type DocumentNode, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';

export function jitGateway(schema: GraphQLSchema): GatewayInterface {
  // Per document, per operation name ('' for the only one).
  const compiled = new WeakMap<DocumentNode, Map<string, CompiledQuery>>();
  return {
    onSchemaLoadOrUpdate(callback) {
      callback({ apiSchema: schema, coreSupergraphSdl: '' });
      return () => undefined;
    },
    async load() {
      return {
        executor: async ({ document, operationName, request, context }) => {
          let byName = compiled.get(document);
          if (!byName) compiled.set(document, (byName = new Map()));
          let query = byName.get(operationName ?? '');
          if (!query) {
            const made = compileQuery(schema, document, operationName ?? undefined);
            if (!isCompiledQuery(made)) return asGraphqlJs(made);
            byName.set(operationName ?? '', (query = made));
          }
          return asGraphqlJs(await query.query(undefined, context, request.variables ?? {}));
        },
      };
    },
    async stop() {},
  };
}

/** The result with each error a graphql-js GraphQLError: same message, locations, path and extensions. */
function asGraphqlJs(result: ExecutionResult): ExecutionResult {
  if (!result.errors?.length) return result;
  const errors = result.errors.map((e) => {
    const error = new GraphQLError(e.message, {
      path: e.path,
      originalError: e.originalError ?? undefined,
      extensions: e.extensions,
    });
    return Object.assign(error, { locations: e.locations });
  });
  return { ...result, errors };
}
