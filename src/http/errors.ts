/**
 * The GraphQL error contract over HTTP: every error leaves with a machine-readable `extensions.code`;
 * AtlasErrors keep their message (paths cut to `…/name`), errors about the request itself (a parse or
 * validation failure, an APQ hash that does not match, a subscription sent over HTTP) keep theirs, and
 * anything else is masked as INTERNAL_SERVER_ERROR with the details in the server log. Also the limits
 * on the document: graphql-js counts tokens while parsing (Apollo's parseOptions.maxTokens), so a
 * malformed or oversized document is a 400 GRAPHQL_PARSE_FAILED / QUERY_TOO_COMPLEX with `locations`;
 * graphql-armor checks depth, aliases, cost and directives as validation rules.
 */
import { GraphQLError, type GraphQLFormattedError, type ParseOptions, type ValidationContext } from 'graphql';
import { HeaderMap, type ApolloServerPlugin } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import { databaseError } from '../app/database.js';
import { hidePaths } from '../app/client-view.js';
import { isAtlasError } from '../errors.js';

/** Codes Apollo and graphql-js already attach that are safe and useful to pass through. */
const PASS_THROUGH = new Set([
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_USER_INPUT',
  'BAD_REQUEST',
  'OPERATION_RESOLUTION_FAILURE',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
]);

export const MAX_TOKENS = 2000;

/** Passed to Apollo as parseOptions: the token limit is checked by the parser itself. */
export const PARSE_OPTIONS: ParseOptions = { maxTokens: MAX_TOKENS };

/** The validation errors of graphql-armor's rejections (they carry no code of their own). */
const limitRejections = new WeakSet<object>();

/**
 * graphql-armor's onReject: report the rejection as a validation error recorded in limitRejections
 * (armor's own reporter would mark it BAD_USER_INPUT, which Apollo replaces with GRAPHQL_VALIDATION_FAILED).
 */
const reportLimit = () => ({
  propagateOnRejection: false,
  onReject: [
    (ctx: ValidationContext | null, error: GraphQLError) => {
      const rejection = new GraphQLError(error.message.replace(/^Syntax Error: /, ''));
      limitRejections.add(rejection);
      ctx?.reportError(rejection);
    },
  ],
});

/** Limits on the document (as validation rules): depth, aliases, cost, directives; no field suggestions. */
export function armor() {
  return new ApolloArmor({
    maxDepth: { n: 10, ...reportLimit() },
    maxAliases: { n: 15, ...reportLimit() },
    costLimit: { maxCost: 50000, ...reportLimit() },
    maxTokens: { enabled: false },
    maxDirectives: { n: 20, ...reportLimit() },
    blockFieldSuggestion: { enabled: true },
  }).protect();
}

/**
 * A document over a limit: refused by graphql-armor, or by graphql-js's token count while parsing,
 * which says so only in its message (a fixed sentence of graphql-js).
 */
function isLimitRejection(error: unknown, message: string): boolean {
  const underlying = error instanceof GraphQLError ? (error.originalError ?? error) : error;
  if (typeof underlying === 'object' && underlying !== null && limitRejections.has(underlying)) return true;
  return /^Syntax Error: Document contains more th(?:an|at) \d+ tokens/.test(message);
}

/** `details` as a client may see them: no `path` entry, paths in strings cut to `…/name`. */
function clientDetails(details: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(details)
      .filter(([k]) => k !== 'path')
      .map(([k, v]) => [k, typeof v === 'string' ? hidePaths(v) : v]),
  );
}

/**
 * An error graphql-js or Apollo raised about the request itself (no resolver threw it, nothing
 * underneath it): its message describes what the client sent, so it is safe and useful to show.
 */
function isRequestError(error: unknown): error is GraphQLError {
  return error instanceof GraphQLError && !error.originalError && !error.path;
}

export function formatError(log: (l: string) => void) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const unwrapped = unwrapResolverError(error);
    // Statements sent through drizzle reach here as the driver's errors.
    const original = databaseError(unwrapped) ?? unwrapped;
    if (isAtlasError(original)) {
      const message = hidePaths(original.message);
      const details = clientDetails(original.details ?? {});
      if (message !== original.message || 'path' in (original.details ?? {}))
        log(`${original.code}: ${original.message}`);
      return {
        message,
        path: formatted.path,
        locations: formatted.locations,
        extensions: { code: original.code, ...details },
      };
    }
    if (isLimitRejection(error, formatted.message)) {
      return {
        message: formatted.message.replace(/^Syntax Error: /, ''),
        locations: formatted.locations,
        extensions: { code: 'QUERY_TOO_COMPLEX' },
      };
    }
    const code = formatted.extensions?.code;
    if (typeof code === 'string' && PASS_THROUGH.has(code)) {
      return { message: formatted.message, locations: formatted.locations, path: formatted.path, extensions: { code } };
    }
    if (isRequestError(original)) {
      return {
        message: hidePaths(formatted.message),
        locations: formatted.locations,
        extensions: { code: 'BAD_REQUEST' },
      };
    }
    log(`internal error: ${(original as Error)?.stack ?? String(original)}`);
    return {
      message: 'Internal server error. The server log has the details.',
      path: formatted.path,
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    };
  };
}

/**
 * A subscription sent over HTTP is refused as a 400 BAD_REQUEST naming the problem: the HTTP
 * transport answers one response per request and cannot deliver a stream of events.
 */
export function refuseSubscriptions<C extends object>(): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation }) {
          if (operation?.operation !== 'subscription') return;
          throw new GraphQLError(
            'Subscriptions are not served over HTTP (one response per request); send queries and mutations ' +
              'to /graphql, and subscriptions over a WebSocket (graphql-ws protocol).',
            { extensions: { code: 'BAD_REQUEST', http: { status: 400, headers: new HeaderMap() } } },
          );
        },
      };
    },
  };
}
