/**
 * What load balancers, monitoring and browsers on other origins need from a server, beside GraphQL:
 * - GET /healthz: 200 while the process serves HTTP.
 * - GET /readyz: 200 when the database answers and has every migration this build ships, else 503
 *   with the reason.
 * - GET /metrics: Prometheus text (prom-client, one registry per server): requests by operation (the
 *   first root field) and outcome (`ok` or the first error's code), latency histograms, queue depth and
 *   batch counts of the model, encoder and exact-search batchers, resident bytes and entries, resident
 *   hits, misses and evictions, and the process's own figures (RSS, heap, event-loop lag).
 * - CORS for ATLAS_CORS_ORIGINS (a list, or `*`); preflight answered with 204. Off when unset.
 * It also reports each nearestFeatures search's plan in the response's `extensions.nearestSearch`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApolloServerPlugin } from '@apollo/server';
import cors from 'cors';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from './config.js';
import type { Context } from './resolvers/context.js';
import type { Services } from './app/services.js';
import { readiness, type Database } from './app/database.js';

export interface Operations {
  /** Answers /healthz, /readyz and /metrics; false for any other path. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean>;
  /** Sets the CORS headers of an allowed origin; true when it has answered a preflight (OPTIONS). */
  cors(req: IncomingMessage, res: ServerResponse): boolean;
  /** Counts and times GraphQL requests, and reports search plans in `extensions`. */
  plugin: ApolloServerPlugin<Context>;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** A JSON response (the server's errors and the probes). */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function metrics(services: Services) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'atlas_' });
  const requests = new Counter({
    name: 'atlas_requests_total',
    help: 'GraphQL requests by operation (first root field) and outcome (ok, or the first error code).',
    labelNames: ['operation', 'outcome'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'atlas_request_duration_seconds',
    help: 'GraphQL request latency by operation, from receipt to response.',
    labelNames: ['operation'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const queues = () => ({ ...services.encoding.queues(), nearest: services.nearest.queue() });
  new Gauge({
    name: 'atlas_queue_depth',
    help: 'Requests waiting or running in the batchers (model runs, encoder runs, exact searches).',
    labelNames: ['queue'],
    registers: [registry],
    collect() {
      for (const [queue, q] of Object.entries(queues())) this.set({ queue }, q.depth);
    },
  });
  new Counter({
    name: 'atlas_batches_total',
    help: 'Batched runs; atlas_batched_requests_total / atlas_batches_total is the mean batch size.',
    labelNames: ['queue'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [queue, q] of Object.entries(queues())) this.inc({ queue }, q.runs);
    },
  });
  new Counter({
    name: 'atlas_batched_requests_total',
    help: 'Requests served by batched runs.',
    labelNames: ['queue'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [queue, q] of Object.entries(queues())) this.inc({ queue }, q.requests);
    },
  });
  new Gauge({
    name: 'atlas_batch_largest',
    help: 'Most requests in one batch so far.',
    labelNames: ['queue'],
    registers: [registry],
    collect() {
      for (const [queue, q] of Object.entries(queues())) this.set({ queue }, q.largest);
    },
  });
  const resident = services.resident;
  new Gauge({
    name: 'atlas_resident_bytes',
    help: 'Bytes of loaded models, encoders and decoder matrices (estimated from their weights).',
    registers: [registry],
    collect() {
      this.set(resident.bytes);
    },
  });
  new Gauge({
    name: 'atlas_resident_max_bytes',
    help: 'Bound of the resident set (ATLAS_MAX_RESIDENT_MB).',
    registers: [registry],
    collect() {
      this.set(resident.maxBytes);
    },
  });
  new Gauge({
    name: 'atlas_resident_entries',
    help: 'Loaded entries by kind (model, encoder, decoders).',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const kind of ['model', 'encoder', 'decoders']) this.set({ kind }, 0);
      for (const e of resident.list()) this.inc({ kind: e.key.slice(0, e.key.indexOf(':')) });
    },
  });
  new Counter({
    name: 'atlas_resident_lookups_total',
    help: 'Uses of the resident set: hit (already loaded or loading) or miss (loaded for the request).',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ result: 'hit' }, resident.counts.hits);
      this.inc({ result: 'miss' }, resident.counts.misses);
    },
  });
  new Counter({
    name: 'atlas_resident_evictions_total',
    help: 'Entries evicted to keep the resident set within its bound.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(resident.counts.evictions);
    },
  });
  return { registry, requests, latency };
}

export function createOperations(opts: {
  database: Database;
  services: Services;
  corsOrigins: Config['corsOrigins'];
}): Operations {
  const { registry, requests, latency } = metrics(opts.services);
  const corsOn = opts.corsOrigins === '*' || opts.corsOrigins.length > 0;
  const corsMiddleware = cors({
    origin: opts.corsOrigins,
    methods: ['GET', 'POST'],
    allowedHeaders: ['content-type', 'authorization', 'apollo-require-preflight', 'x-apollo-operation-name'],
    maxAge: 600,
  });

  const plugin: ApolloServerPlugin<Context> = {
    async requestDidStart() {
      const started = performance.now();
      let operation = 'unknown';
      return {
        async didResolveOperation({ operation: op }) {
          const first = op?.selectionSet.selections.find((s) => s.kind === 'Field');
          if (first && first.kind === 'Field') operation = first.name.value;
        },
        async willSendResponse({ response, contextValue, errors: raw }) {
          // The formatted errors carry the codes clients see (formatError in src/server.ts).
          const errors = response.body.kind === 'single' ? response.body.singleResult.errors : raw;
          const code = errors?.[0]?.extensions?.code;
          const outcome = !errors?.length ? 'ok' : typeof code === 'string' ? code : 'error';
          requests.inc({ operation, outcome });
          latency.observe({ operation }, (performance.now() - started) / 1000);
          if (!contextValue.searchPlans?.length || response.body.kind !== 'single') return;
          response.body.singleResult.extensions = {
            ...response.body.singleResult.extensions,
            nearestSearch: contextValue.searchPlans,
          };
        },
      };
    },
  };

  return {
    plugin,
    async handle(req, res, path) {
      if (path === '/healthz') {
        sendJson(res, 200, { ok: true });
      } else if (path === '/readyz') {
        const state = await readiness(opts.database);
        sendJson(res, state.ready ? 200 : 503, state);
      } else if (path === '/metrics') {
        const text = await registry.metrics();
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
      } else return false;
      return true;
    },
    cors(req, res) {
      if (!corsOn || req.headers.origin === undefined) return false;
      // With fixed origins cors runs synchronously: it ends a preflight itself (204) and calls next()
      // for any other request.
      let passed = false;
      corsMiddleware(req, res, () => {
        passed = true;
      });
      return !passed;
    },
  };
}
