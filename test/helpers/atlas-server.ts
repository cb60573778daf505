/**
 * Starts the real HTTP server in-process on a free port, on either backend, for integration tests:
 * PGlite in a temp dir, or a fresh PostgreSQL database (skipped with a notice when unreachable).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { before, after, it } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Database } from '../../src/db/client.js';
import { serverSettings, startServer, type RunningServer } from '../../src/server.js';
import { createServices, type Services } from '../../src/app/services.js';
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
  services: Services;
  url: string;
  gql<T = any>(query: string, variables?: Record<string, unknown>): Promise<GqlResult<T>>;
  close(): Promise<void>;
}

/**
 * Opens a database on the backend, or returns why it cannot (PostgreSQL not reachable); migrate: false
 * leaves it empty (a test of migrations applies them itself).
 */
export async function openTestDatabase(
  backend: Backend,
  { migrate = true }: { migrate?: boolean } = {},
): Promise<{ database: Database; cleanup(): Promise<void> } | { skip: string }> {
  if (backend === 'pglite') {
    const dir = mkdtempSync(join(tmpdir(), 'atlas-pglite-'));
    const database = await openDatabase({ dataDir: dir, migrate });
    return {
      database,
      cleanup: async () => {
        await database.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const pg = await createTestDatabase();
  if ('skip' in pg) return { skip: pg.skip };
  const database = await openDatabase({ databaseUrl: pg.url, dataDir: tmpdir(), migrate });
  return {
    database,
    cleanup: async () => {
      await database.close();
      await pg.drop();
    },
  };
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
  return serveTestAtlas(backend, database, config, cleanup);
}

/**
 * The real server over an open database, closed with `cleanup` after it; two over one PostgreSQL
 * database with different data folders are two replicas.
 */
export async function serveTestAtlas(
  backend: Backend,
  database: Database,
  config: Config,
  cleanup: () => Promise<void>,
): Promise<TestAtlas> {
  const services = await createServices(config, database);
  const server = await startServer(
    {
      database,
      services,
      ...serverSettings(config),
      log: () => undefined,
    },
    { port: 0, host: '127.0.0.1' },
  );
  return {
    backend,
    database,
    server,
    services,
    url: server.url,
    async gql(query, variables) {
      const res = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query, variables }),
      });
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

/** A test that receives the suite's fixture (a server, a database, a browser…). */
export type FixtureTest<T> = (name: string, fn: (fixture: T) => Promise<void>) => void;
export type AtlasTest = FixtureTest<TestAtlas>;

/**
 * The one harness of the backend suites: starts the block's fixture before it (or records the reason
 * it cannot start, announced once), closes it after, and returns a `test` that hands the fixture to
 * each test or skips it with that reason.
 */
export function useFixture<T>(
  title: string,
  start: () => Promise<T | { skip: string }>,
  close: (fixture: T) => Promise<void>,
): FixtureTest<T> {
  let fixture: T | null = null;
  let skip: string | null = null;
  before(async () => {
    const started = await start();
    if (started !== null && typeof started === 'object' && 'skip' in started) {
      skip = (started as { skip: string }).skip;
      announceSkip(title, skip);
    } else {
      fixture = started as T;
    }
  });
  after(async () => {
    if (fixture !== null) await close(fixture);
  });
  return (name, fn) =>
    it(name, async (t) => {
      if (fixture === null) return t.skip(skip ?? 'not started');
      await fn(fixture);
    });
}

/** useFixture for a started server; `cleanup` runs after it closes. */
export function useTestAtlas(
  title: string,
  start: () => Promise<TestAtlas | { skip: string }>,
  cleanup?: () => void,
): AtlasTest {
  const test = useFixture(title, start, (atlas) => atlas.close());
  if (cleanup) after(cleanup);
  return test;
}
