/**
 * The HTTP server: GraphQL at /graphql (Apollo Server on a plain node:http server, so the body size
 * cap, static pages and draining are ours), the browser UI (src/web.ts) at / and its routes, the
 * operational endpoints and CORS (src/operations.ts), and subscriptions over WebSocket on the same
 * path (src/subscriptions.ts).
 */
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { ApolloServer, HeaderMap, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import { schema } from './resolvers/index.js';
import type { Context } from './resolvers/context.js';
import type { Services } from './app/services.js';
import type { Database } from './db/client.js';
import { hidePaths } from './app/client-view.js';
import { createLoaders } from './app/loaders.js';
import { AtlasError, isAtlasError } from './errors.js';
import { armor, formatError, PARSE_OPTIONS, refuseSubscriptions } from './http/errors.js';
import { endCompressed, unsupportedContentType } from './http/transport.js';
import { jitGateway } from './http/executor.js';
import { createWebUi } from './web.js';
import { requestAuth } from './app/auth.js';
import { attachSubscriptions } from './subscriptions.js';
import { createOperations, sendJson } from './operations.js';
import type { Config } from './config.js';

export interface ServerOptions {
  database: Database;
  services: Services;
  maxBodyBytes: number;
  /**
   * Time a client has to send its headers, and its whole request (ATLAS_HTTP_HEADERS_TIMEOUT_MS,
   * ATLAS_HTTP_REQUEST_TIMEOUT_MS).
   */
  httpHeadersTimeoutMs?: number;
  httpRequestTimeoutMs?: number;
  /** Per-request deadline (ATLAS_REQUEST_TIMEOUT_MS): past it the request's database statements are cancelled. */
  deadlineMs?: number;
  /** ATLAS_CORS_ORIGINS; CORS is off when absent or empty. */
  corsOrigins?: Config['corsOrigins'];
  /** ATLAS_COMPRESS_LOOPBACK: compress responses to unproxied loopback peers too (off when absent). */
  compressLoopback?: boolean;
  log?: (line: string) => void;
}

/** The server's settings from a configuration: one mapping for `atlas serve` and the tests. */
export function serverSettings(
  config: Pick<
    Config,
    | 'maxBodyBytes'
    | 'requestTimeoutMs'
    | 'httpHeadersTimeoutMs'
    | 'httpRequestTimeoutMs'
    | 'corsOrigins'
    | 'compressLoopback'
  >,
): Pick<
  ServerOptions,
  'maxBodyBytes' | 'deadlineMs' | 'httpHeadersTimeoutMs' | 'httpRequestTimeoutMs' | 'corsOrigins' | 'compressLoopback'
> {
  return {
    maxBodyBytes: config.maxBodyBytes,
    deadlineMs: config.requestTimeoutMs,
    httpHeadersTimeoutMs: config.httpHeadersTimeoutMs,
    httpRequestTimeoutMs: config.httpRequestTimeoutMs,
    corsOrigins: config.corsOrigins,
    compressLoopback: config.compressLoopback,
  };
}

export interface RunningServer {
  httpServer: Server;
  url: string;
  /** Stops accepting requests, lets in-flight ones finish, then resolves. */
  stop(): Promise<void>;
}

/** Lists the dictionaries a search left out in the response's `extensions.skippedDictionaries`. */
function reportSkipped(log: (l: string) => void): ApolloServerPlugin<Context> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ response, contextValue }) {
          const skipped = contextValue.skippedDictionaries;
          if (!skipped.length || response.body.kind !== 'single') return;
          for (const s of skipped) log(`search skipped dictionary ${s.dictionary}: ${s.code}: ${s.message}`);
          const unique = [...new Map(skipped.map((s) => [s.dictionary, s])).values()];
          response.body.singleResult.extensions = {
            ...response.body.singleResult.extensions,
            skippedDictionaries: unique.map((s) => ({ ...s, message: hidePaths(s.message) })),
          };
        },
      };
    },
  };
}

class BodyTooLarge extends Error {}

/**
 * Reads the body, keeping at most `limit` bytes. Past the limit (or with a larger Content-Length) the
 * rest is read and dropped, and BodyTooLarge comes once the body has ended: Node closes a connection
 * whose request is still arriving when the response ends, and a socket closed with unread data sends
 * a TCP reset, which loses the 413 on the client's side. The request timeout
 * (ATLAS_HTTP_REQUEST_TIMEOUT_MS) bounds how long a client may keep sending.
 */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let tooLarge = Number(req.headers['content-length'] ?? 0) > limit;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      tooLarge ||= size > limit;
      if (!tooLarge) chunks.push(c);
    });
    req.on('end', () => (tooLarge ? reject(new BodyTooLarge()) : resolve(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

/**
 * Why the statements of a request that has ended are cancelled: one shared error, as nobody reads it once the
 * response is gone, and capturing a stack per request cost about 0.1 ms of every request.
 */
const REQUEST_ENDED = new AtlasError('DEADLINE_EXCEEDED', 'The request ended.');

function payloadTooLarge(res: ServerResponse, limit: number): void {
  res.setHeader('connection', 'close');
  sendJson(res, 413, {
    errors: [
      {
        message: `The request body exceeds ${limit} bytes (ATLAS_MAX_BODY_BYTES).`,
        extensions: { code: 'PAYLOAD_TOO_LARGE' },
      },
    ],
  });
}

export async function startServer(opts: ServerOptions, listen: { port: number; host: string }): Promise<RunningServer> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  // Node checks both timeouts every connectionsCheckingInterval (30 s by default): check every second.
  const httpServer = createServer({
    headersTimeout: opts.httpHeadersTimeoutMs ?? 10_000,
    requestTimeout: opts.httpRequestTimeoutMs ?? 30_000,
    connectionsCheckingInterval: 1000,
  });
  const protection = armor();
  const operations = createOperations({ ...opts, corsOrigins: opts.corsOrigins ?? [] });
  const apollo = new ApolloServer<Context>({
    gateway: jitGateway(schema),
    formatError: formatError(log),
    includeStacktraceInErrorResponses: false,
    // The schema is public (the UI, codegen and GraphiQL read it), whatever NODE_ENV says.
    introspection: true,
    // atlas serve drains and closes the database itself on SIGINT/SIGTERM.
    stopOnTerminationSignals: false,
    parseOptions: PARSE_OPTIONS,
    validationRules: protection.validationRules,
    plugins: [
      ...(protection.plugins as ApolloServerPlugin<Context>[]),
      refuseSubscriptions<Context>(),
      ApolloServerPluginLandingPageDisabled() as ApolloServerPlugin<Context>,
      // No type or field has a cache hint, so the default plugin only wraps every field resolver (a third of
      // a large encode's execution time) to arrive at "no-store", which the handler below sets itself.
      ApolloServerPluginCacheControlDisabled() as ApolloServerPlugin<Context>,
      reportSkipped(log),
      operations.plugin,
      ApolloServerPluginDrainHttpServer({ httpServer }) as ApolloServerPlugin<Context>,
    ],
  });
  await apollo.start();
  const closeSubscriptions = attachSubscriptions(httpServer, {
    database: opts.database,
    services: opts.services,
    validationRules: protection.validationRules,
    formatError: formatError(log),
  });

  const graphql = async (req: IncomingMessage, res: ServerResponse) => {
    let body: unknown;
    if (req.method === 'POST') {
      let raw: string;
      try {
        raw = await readBody(req, opts.maxBodyBytes);
      } catch (e) {
        if (e instanceof BodyTooLarge) return payloadTooLarge(res, opts.maxBodyBytes);
        throw e;
      }
      const refused = unsupportedContentType(req);
      if (refused)
        return sendJson(res, 415, { errors: [{ message: refused, extensions: { code: 'UNSUPPORTED_MEDIA_TYPE' } }] });
      try {
        body = raw ? JSON.parse(raw) : {};
      } catch {
        return sendJson(res, 400, {
          errors: [{ message: 'The request body is not valid JSON.', extensions: { code: 'BAD_REQUEST' } }],
        });
      }
    }
    const headers = new HeaderMap();
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const auth = requestAuth(opts.database, req.headers.authorization);
    if (opts.services.requireKey) {
      // ATLAS_REQUIRE_KEY=1: refuse before any GraphQL work, as for an oversized body.
      try {
        await auth.require();
      } catch (e) {
        if (!isAtlasError(e)) throw e;
        return sendJson(res, e.code === 'FORBIDDEN' ? 403 : 401, {
          errors: [{ message: e.message, extensions: { code: e.code } }],
        });
      }
    }
    // Statements still running when the response has gone (a failed sibling in Promise.all, a client
    // that hung up) or past the deadline are cancelled rather than left to hold the database.
    const ended = new AbortController();
    const deadlineMs = opts.deadlineMs ?? 30_000;
    const deadline = setTimeout(
      () =>
        ended.abort(
          new AtlasError(
            'DEADLINE_EXCEEDED',
            `The request did not finish within ${deadlineMs} ms (ATLAS_REQUEST_TIMEOUT_MS); its database statements ` +
              `were cancelled.`,
          ),
        ),
      deadlineMs,
    );
    res.once('close', () => {
      clearTimeout(deadline);
      ended.abort(REQUEST_ENDED);
    });
    const database = opts.database.forRequest(ended.signal);
    const result = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: req.method ?? 'GET', headers, search: url.search, body },
      context: async () => ({
        database,
        loaders: createLoaders(database),
        services: opts.services,
        auth,
        skippedDictionaries: [],
        searchPlans: [],
      }),
    });
    res.setHeader('cache-control', 'no-store');
    for (const [k, v] of result.headers) res.setHeader(k, v);
    res.statusCode = result.status ?? 200;
    if (result.body.kind === 'complete') {
      await endCompressed(req, res, result.body.string, opts.compressLoopback ?? false);
    } else {
      for await (const chunk of result.body.asyncIterator) res.write(chunk);
      res.end();
    }
  };

  // A client that asks first (Expect: 100-continue) with a Content-Length over the cap hears 413 before sending it.
  httpServer.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (Number(req.headers['content-length'] ?? 0) > opts.maxBodyBytes) return payloadTooLarge(res, opts.maxBodyBytes);
    res.writeContinue();
    httpServer.emit('request', req, res);
  });

  const web = createWebUi();
  httpServer.on('request', (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const handle = async () => {
      if (operations.cors(req, res)) return;
      if (path === '/graphql') return graphql(req, res);
      if (await operations.handle(req, res, path)) return;
      if (web.handle(req, res, path)) return;
      sendJson(res, 404, {
        errors: [
          { message: `Nothing at ${path}; the GraphQL endpoint is /graphql.`, extensions: { code: 'NOT_FOUND' } },
        ],
      });
    };
    handle().catch((e) => {
      log(`request failed: ${(e as Error).stack ?? e}`);
      if (!res.headersSent)
        sendJson(res, 500, {
          errors: [{ message: 'Internal server error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
        });
      else res.end();
    });
  });

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new AtlasError(
              'CONFLICT',
              `Port ${listen.port} on ${listen.host} is in use; pick another with --port or PORT.`,
            )
          : e,
      ),
    );
    httpServer.listen(listen.port, listen.host, resolve);
  });
  const address = httpServer.address();
  const port = typeof address === 'object' && address ? address.port : listen.port;
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return {
    httpServer,
    url: `http://${host}:${port}/graphql`,
    stop: async () => {
      await closeSubscriptions();
      await apollo.stop();
    },
  };
}
