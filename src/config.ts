/** Settings read from the environment, in one place; README's configuration table mirrors this. */
import { totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { AtlasError } from './errors.js';

/**
 * The one integer check for settings: environment variables and command-line options alike. `name` is
 * what the user typed (ATLAS_THREADS, --port), so the message points at it.
 */
export function parseInteger(name: string, raw: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(v) || v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer from ${min} to ${max}`;
    throw new AtlasError('BAD_USER_INPUT', `${name} must be ${range}, got "${raw}".`);
  }
  return v;
}

/** A commander argument parser for an integer option (`--tokens <n>`), checked by parseInteger. */
export function integerOption(flag: string, min = 1, max?: number): (raw: string) => number {
  return (raw) => parseInteger(flag, raw, min, max);
}

/** A commander argument parser for a finite number option (`--temperature <t>`) within [min, max]. */
export function numberOption(flag: string, min: number, max: number): (raw: string) => number {
  return (raw) => {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v) || v < min || v > max) {
      throw new AtlasError('BAD_USER_INPUT', `${flag} must be a number from ${min} to ${max}, got "${raw}".`);
    }
    return v;
  };
}

export const MAX_PORT = 65535;

/** recall@10 0.91 at p50 17 ms on 100k × 768 decoder-like vectors (bench/api.ts); 100 gave 0.82. */
export const DEFAULT_HNSW_EF_SEARCH = 200;

/**
 * Full-text search work grows with (query terms × matching rows); a query keeps its first 32 distinct
 * lexemes of at most 64 characters (src/db/text-search.ts), which bounds any query to milliseconds.
 */
export const MAX_SEARCH_TERMS = 32;
export const MAX_SEARCH_TERM_CHARS = 64;
/** Longest id (model, dictionary, explanation) an argument may carry; stored ids are far shorter. */
export const MAX_ID_CHARS = 256;

/**
 * Default of ATLAS_MAX_RESIDENT_MB: half of the memory this process may use (the cgroup limit in a
 * container, else the machine's), leaving the rest to the heap, requests and the database client.
 */
export function defaultMaxResidentMb(): number {
  const limit = process.constrainedMemory();
  const memory = limit > 0 && limit < totalmem() ? limit : totalmem();
  return Math.max(64, Math.floor(memory / 2 / 2 ** 20));
}

export type DeviceSetting = 'auto' | 'cpu' | 'cuda';

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  /** ATLAS_CACHE_DIR: where a server keeps the model and dictionary files it fetched; absent: <dataDir>/cache. */
  cacheDir?: string;
  device: DeviceSetting;
  threads: number;
  maxBodyBytes: number;
  demo: boolean;
  requireKey: boolean;
  maxQueue: number;
  /** Floor of pgvector's hnsw.ef_search (candidates per index scan); raised to 4·k for large k. */
  hnswEfSearch: number;
  batching: boolean;
  batchTokens: number;
  /** Vector budget of one batched SAE encoder run (encodeVectors, encode). */
  batchVectors: number;
  requestTimeoutMs: number;
  maxInputTokens: number;
  maxInputChars: number;
  /** Most tokens one `generate` may sample (ATLAS_MAX_GENERATE_TOKENS). */
  maxGenerateTokens: number;
  /** Time a client has to send its headers, and its whole request (node:http headersTimeout, requestTimeout). */
  httpHeadersTimeoutMs: number;
  httpRequestTimeoutMs: number;
  /** Bound of what stays loaded (models, encoders, decoder matrices), ATLAS_MAX_RESIDENT_MB in bytes. */
  maxResidentBytes: number;
  /** Origins allowed to call the API from a browser (ATLAS_CORS_ORIGINS): a list, '*', or none (CORS off). */
  corsOrigins: string[] | '*';
  /**
   * ATLAS_COMPRESS_LOOPBACK=1: compress responses to clients on this machine too. By default a loopback peer
   * whose request no proxy forwarded gets them as they are: its bytes never cross a network, so compression
   * would only cost both sides CPU (a 64-token encode: about 0.5 ms of gzip against 27 KB of loopback copy).
   */
  compressLoopback: boolean;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const int = (name: string, fallback: number, min = 0, max?: number): number => {
    const raw = env[name];
    return raw === undefined || raw === '' ? fallback : parseInteger(name, raw, min, max);
  };
  const device = (env.ATLAS_DEVICE ?? 'auto').toLowerCase();
  if (device !== 'auto' && device !== 'cpu' && device !== 'cuda') {
    throw new AtlasError('BAD_USER_INPUT', `ATLAS_DEVICE must be auto, cpu or cuda, got "${env.ATLAS_DEVICE}".`);
  }
  return {
    port: int('PORT', 4000, 0, MAX_PORT),
    host: env.HOST || '127.0.0.1',
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: resolve(env.ATLAS_DATA_DIR || './data'),
    ...(env.ATLAS_CACHE_DIR && { cacheDir: resolve(env.ATLAS_CACHE_DIR) }),
    device,
    threads: int('ATLAS_THREADS', 0),
    maxBodyBytes: int('ATLAS_MAX_BODY_BYTES', 1024 * 1024),
    demo: env.ATLAS_DEMO !== '0',
    requireKey: env.ATLAS_REQUIRE_KEY === '1',
    maxQueue: int('ATLAS_MAX_QUEUE', 64),
    hnswEfSearch: int('ATLAS_HNSW_EF_SEARCH', DEFAULT_HNSW_EF_SEARCH),
    batching: env.ATLAS_BATCHING !== '0',
    batchTokens: int('ATLAS_BATCH_TOKENS', 4096, 1),
    batchVectors: int('ATLAS_BATCH_VECTORS', 4096, 1),
    requestTimeoutMs: int('ATLAS_REQUEST_TIMEOUT_MS', 30000),
    maxInputTokens: int('ATLAS_MAX_INPUT_TOKENS', 1024),
    maxInputChars: int('ATLAS_MAX_INPUT_CHARS', 20000),
    maxGenerateTokens: int('ATLAS_MAX_GENERATE_TOKENS', 256, 1),
    httpHeadersTimeoutMs: int('ATLAS_HTTP_HEADERS_TIMEOUT_MS', 10000),
    httpRequestTimeoutMs: int('ATLAS_HTTP_REQUEST_TIMEOUT_MS', 30000),
    maxResidentBytes: int('ATLAS_MAX_RESIDENT_MB', defaultMaxResidentMb(), 1) * 2 ** 20,
    corsOrigins: corsOrigins(env.ATLAS_CORS_ORIGINS),
    compressLoopback: env.ATLAS_COMPRESS_LOOPBACK === '1',
  };
}

/** The artifact cache folder of a configuration (src/app/artifacts.ts). */
export function cacheDirOf(config: Pick<Config, 'dataDir' | 'cacheDir'>): string {
  return config.cacheDir ?? join(config.dataDir, 'cache');
}

/** ATLAS_CORS_ORIGINS: `*`, or a comma list of origins (scheme://host[:port]); empty or unset: CORS off. */
function corsOrigins(raw: string | undefined): string[] | '*' {
  const items = (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 1 && items[0] === '*') return '*';
  return items.map((o) => {
    let url: URL | null = null;
    try {
      url = new URL(o);
    } catch {
      // reported below
    }
    if (!url || !/^https?:$/.test(url.protocol) || url.origin !== o.replace(/\/$/, '')) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        `ATLAS_CORS_ORIGINS must be "*" or a comma list of origins like https://app.example.org, got "${o}".`,
      );
    }
    return url.origin;
  });
}
