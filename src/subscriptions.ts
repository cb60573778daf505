/**
 * GraphQL over WebSocket (the graphql-ws protocol) on the HTTP server's port and path /graphql, for
 * subscriptions (generateStream); queries work there too. The schema is the same SDL and resolver map
 * Apollo serves over HTTP; documents pass the same validation rules (graphql-armor's limits), errors
 * the same formatting (coded, paths hidden), and with ATLAS_REQUIRE_KEY=1 the connection needs
 * `authorization: Bearer …` in its connection_init payload.
 */
import type { Server } from 'node:http';
import {
  GraphQLError,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type GraphQLFormattedError,
  type ValidationRule,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { schema } from './resolvers/index.js';
import { PARSE_OPTIONS } from './http/errors.js';
import type { Context } from './resolvers/context.js';
import type { Services } from './app/services.js';
import type { Database } from './db/client.js';
import { createLoaders } from './app/loaders.js';
import { requestAuth } from './app/auth.js';

export interface SubscriptionOptions {
  database: Database;
  services: Services;
  validationRules: readonly ValidationRule[];
  formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
}

/** Serves graphql-ws on `httpServer`; the returned function closes every socket. */
export function attachSubscriptions(httpServer: Server, opts: SubscriptionOptions): () => Promise<void> {
  const wss = new WebSocketServer({ server: httpServer, path: '/graphql' });
  const authOf = (params: Record<string, unknown> | undefined) =>
    requestAuth(opts.database, typeof params?.authorization === 'string' ? params.authorization : undefined);
  const format = (errors: readonly GraphQLError[]) => errors.map((e) => opts.formatError(e.toJSON(), e));
  const server = useServer<Record<string, unknown> | undefined>(
    {
      schema,
      onConnect: async (ctx) => {
        if (!opts.services.requireKey) return true;
        try {
          await authOf(ctx.connectionParams).require();
          return true;
        } catch {
          return false;
        }
      },
      onSubscribe: (_ctx, _id, payload) => {
        let document: DocumentNode;
        try {
          document = parse(payload.query, PARSE_OPTIONS);
        } catch (e) {
          if (e instanceof GraphQLError) return [e];
          throw e;
        }
        const errors = validate(schema, document, [...specifiedRules, ...opts.validationRules]);
        if (errors.length > 0) return errors;
        return { schema, document, variableValues: payload.variables, operationName: payload.operationName };
      },
      context: (ctx): Context => ({
        database: opts.database,
        loaders: createLoaders(opts.database),
        services: opts.services,
        auth: authOf(ctx.connectionParams),
        skippedDictionaries: [],
        searchPlans: [],
      }),
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors ? { ...result, errors: format(result.errors) } : undefined,
      onError: (_ctx, _id, _payload, errors) => format(errors),
    },
    wss,
  );
  return async () => {
    await server.dispose();
  };
}
