/**
 * Starts the real HTTP server in-process on a free port, on either backend, for integration tests:
 * PGlite in a temp dir, or a fresh PostgreSQL database (skipped with a notice when unreachable).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { before, after, it } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Database } from '../../src/db/client.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { createServices } from '../../src/services.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createTestDatabase } from './postgres.js';

export type Backend = 'pglite' | 'postgres';
export const BACKENDS: Backend[] = ['pglite', 'postgres'];

export interface GqlResult<T = any> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export interface TestAtlas {
  backend: Backend;
  database: Database;
  server: RunningServer;
  url: string;
  gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<GqlResult<T>>;
  close(): Promise<void>;
}

/** Opens a database on the backend, or returns why it cannot (PostgreSQL not reachable). */
export async function openTestDatabase(backend: Backend): Promise<{ database: Database; cleanup(): Promise<void> } | { skip: string }> {
  if (backend === 'pglite') {
    const dir = mkdtempSync(join(tmpdir(), 'atlas-pglite-'));
    const database = await openDatabase({ dataDir: dir });
    return { database, cleanup: async () => { await database.close(); rmSync(dir, { recursive: true, force: true }); } };
  }
  const pg = await createTestDatabase();
  if ('skip' in pg) return { skip: pg.skip };
  const database = await openDatabase({ databaseUrl: pg.url, dataDir: tmpdir() });
  return { database, cleanup: async () => { await database.close(); await pg.drop(); } };
}

export async function startTestAtlas(
  backend: Backend,
  seed?: (db: Database, dataDir: string) => Promise<unknown>,
  overrides: Partial<Config> = {},
): Promise<TestAtlas | { skip: string }> {
  const opened = await openTestDatabase(backend);
  if ('skip' in opened) return opened;
  const dataDir = mkdtempSync(join(tmpdir(), 'atlas-data-'));
  const { database } = opened;
  const cleanup = async () => {
    await opened.cleanup();
    rmSync(dataDir, { recursive: true, force: true });
  };
  if (seed) await seed(database, dataDir);
  const config: Config = { ...loadConfig({}), device: 'cpu', maxBodyBytes: 64 * 1024, dataDir, ...overrides };
  const services = await createServices(config, database);
  const server = await startServer({
    database, services, maxBodyBytes: config.maxBodyBytes, deadlineMs: config.requestTimeoutMs,
    httpHeadersTimeoutMs: config.httpHeadersTimeoutMs, httpRequestTimeoutMs: config.httpRequestTimeoutMs,
    log: () => undefined,
  }, { port: 0, host: '127.0.0.1' });
  return {
    backend,
    database,
    server,
    url: server.url,
    async gql(query, variables) {
      const res = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
      const body = (await res.json()) as GqlResult;
      return { ...body, status: res.status };
    },
    async close() {
      await server.stop();
      await services.close();
      await cleanup();
    },
  };
}

/** Prints a visible notice for a skipped backend (CI greps for nothing; people read it). */
export function announceSkip(what: string, reason: string): void {
  console.log(`\n*** SKIPPED ${what}: ${reason} ***\n`);
}

export type AtlasTest = (name: string, fn: (atlas: TestAtlas) => Promise<void>) => void;

/**
 * Gives a describe block its server: started before the block (or the reason its backend is
 * unavailable, announced once), closed after it, and a `test` that hands it to each test or skips.
 */
export function useTestAtlas(title: string, start: () => Promise<TestAtlas | { skip: string }>, cleanup?: () => void): AtlasTest {
  let atlas: TestAtlas | null = null;
  let skip: string | null = null;
  before(async () => {
    const started = await start();
    if ('skip' in started) {
      skip = started.skip;
      announceSkip(title, skip);
    } else {
      atlas = started;
    }
  });
  after(async () => {
    await atlas?.close();
    cleanup?.();
  });
  return (name, fn) =>
    it(name, async (t) => {
      if (!atlas) return t.skip(skip ?? 'backend unavailable');
      await fn(atlas);
    });
}
