/**
 * Opens the catalog database: PostgreSQL through `pg` when DATABASE_URL is set, otherwise an
 * embedded PGlite with pgvector under the data dir. Both are wrapped in one drizzle type, and
 * migrations run at open.
 *
 * Lost connections (a terminated backend, a database restart) never crash the process: every pooled
 * client has an error listener for its whole life, a client that failed is destroyed rather than
 * returned to the pool, reads are retried once on a fresh connection, and what still fails becomes a
 * coded DATABASE_UNAVAILABLE (a statement cancelled by statement_timeout: DEADLINE_EXCEEDED).
 */
import { mkdirSync, openSync, closeSync, writeSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS_DIR } from '../paths.js';
import { seedFromTemplate } from './pglite-template.js';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { AtlasError } from '../errors.js';
import * as schema from './schema.js';
import { COPY_HEADER, COPY_TRAILER } from './copy.js';

export type Schema = typeof schema;
export type Drizzle = PgDatabase<PgQueryResultHKT, Schema>;

export type Query = <T = Record<string, unknown>>(text: string, params?: unknown[]) => Promise<T[]>;

/** `COPY table (columns) FROM STDIN WITH (FORMAT binary)` fed with `tuples` (binaryTuples' chunks). */
export type CopyIn = (
  table: string,
  columns: string[],
  tuples: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
) => Promise<void>;

const copySql = (table: string, columns: string[], source: string) =>
  `COPY ${table} (${columns.join(', ')}) FROM ${source} WITH (FORMAT binary)`;

/** PostgreSQL: the stream goes through pg-copy-streams on one client, honouring back-pressure. */
async function copyOnClient(client: pg.PoolClient, ...[table, columns, tuples]: Parameters<CopyIn>): Promise<void> {
  const { from } = await import('pg-copy-streams');
  const sink = client.query(from(copySql(table, columns, 'STDIN')));
  const done = new Promise<void>((resolve, reject) => {
    sink.on('finish', resolve);
    sink.on('error', reject);
  });
  const write = async (chunk: Uint8Array) => {
    if (!sink.write(chunk)) await Promise.race([new Promise((r) => sink.once('drain', r)), done]);
  };
  try {
    await write(COPY_HEADER);
    for await (const chunk of tuples) await write(chunk);
    await write(COPY_TRAILER);
  } catch (e) {
    // A failing producer must not leave the connection inside COPY: abort it server-side.
    sink.destroy(e as Error);
    await done.catch(() => undefined);
    throw e;
  }
  sink.end();
  await done;
}

/** PGlite copies from an in-memory blob, so the tuples go in blobs of a few MB to keep memory flat. */
async function copyOnPglite(
  run: (sql: string, blob: Blob) => Promise<unknown>,
  ...[table, columns, tuples]: Parameters<CopyIn>
): Promise<void> {
  const sql = copySql(table, columns, "'/dev/blob'");
  let parts: Uint8Array[] = [];
  let size = 0;
  const flush = async () => {
    await run(sql, new Blob([COPY_HEADER, ...parts, COPY_TRAILER]));
    parts = [];
    size = 0;
  };
  for await (const chunk of tuples) {
    parts.push(chunk);
    size += chunk.length;
    if (size > PGLITE_COPY_CHUNK) await flush();
  }
  if (size > 0) await flush();
}

export interface Database {
  kind: 'pglite' | 'postgres';
  /** Where the data lives, without credentials, for logs and serverInfo. */
  description: string;
  /** Statements sent so far (drizzle's and raw), so tests can prove reads are batched. */
  readonly queryCount: number;
  db: Drizzle;
  /** Raw parameterised SQL; rows as plain objects. */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /**
   * Runs fn on one connection inside a transaction (SET LOCAL and multi-statement atomicity).
   * readOnly: a transaction that only reads, retried once when its connection is lost.
   */
  transaction<T>(fn: (query: Query, copy: CopyIn) => Promise<T>, opts?: { readOnly?: boolean }): Promise<T>;
  /** Bulk-loads rows with binary COPY (src/db/copy.ts makes the stream) on a connection of its own. */
  copyIn: CopyIn;
  /**
   * The same database for one request: once `signal` aborts (the request ended, failed or ran out of
   * time) no new statement starts, and on PostgreSQL a running query() or transaction() statement is
   * cancelled (pg_cancel_backend). drizzle's `db` is not covered: it serves small catalog reads.
   */
  forRequest(signal: AbortSignal): Database;
  close(): Promise<void>;
}

const MIGRATIONS = MIGRATIONS_DIR;
/** Arbitrary constant naming the advisory lock that serialises migrations across servers. */
const MIGRATION_LOCK = 7_304_118_001;
const PGLITE_COPY_CHUNK = 8 * 1024 * 1024;

export interface OpenOptions {
  databaseUrl?: string;
  dataDir: string;
  /** Apply migrations (default true). */
  migrate?: boolean;
  /** PostgreSQL only: statement_timeout of every connection (the server's per-request deadline); 0 = none. */
  statementTimeoutMs?: number;
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  const database = opts.databaseUrl
    ? await openPostgres(opts.databaseUrl, opts.statementTimeoutMs ?? 0)
    : await openPglite(opts.dataDir);
  if (opts.migrate !== false) {
    try {
      await database.migrate();
    } catch (e) {
      await database.close();
      throw e;
    }
  }
  return database;
}

function countingLogger(counter: { n: number }): { logQuery(): void } {
  return {
    logQuery: () => {
      counter.n++;
    },
  };
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    return `PostgreSQL ${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return 'PostgreSQL';
  }
}

/** SQLSTATE classes and messages of a connection that is gone (terminated, restarted, unreachable). */
const CONNECTION_LOST_CODES = new Set(['57P01', '57P02', '57P03', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);
const CONNECTION_LOST_MESSAGE =
  /Connection terminated|connection error|Client was closed|not queryable|Connection ended/i;

export function isConnectionLost(e: unknown): boolean {
  // drizzle wraps the driver's error in its own, with the original as cause.
  if (e instanceof Error && e.cause && isConnectionLost(e.cause)) return true;
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'string' && (CONNECTION_LOST_CODES.has(code) || code.startsWith('08'))) return true;
  return CONNECTION_LOST_MESSAGE.test((e as Error)?.message ?? '');
}

/**
 * The coded error a database failure means to a client (an AtlasError in drizzle's cause chain, a
 * lost connection, a cancelled statement), or null for anything else (a bug: logged).
 */
export function databaseError(e: unknown): AtlasError | null {
  if (e instanceof AtlasError) return e;
  if (e instanceof Error && e.cause) {
    const inner = databaseError(e.cause);
    if (inner) return inner;
  }
  if (isConnectionLost(e)) {
    return new AtlasError(
      'DATABASE_UNAVAILABLE',
      'The connection to the database was lost (it may be restarting); retry the request.',
    );
  }
  if ((e as { code?: unknown })?.code === '57014') {
    return new AtlasError(
      'DEADLINE_EXCEEDED',
      'A database statement ran past the per-request deadline (ATLAS_REQUEST_TIMEOUT_MS) and was cancelled.',
    );
  }
  return null;
}

/** Reads are safe to run twice; anything that may have written is not retried. */
const READ_ONLY = /^\s*(SELECT|WITH)\b(?![\s\S]*\b(INSERT|UPDATE|DELETE|MERGE)\b)/i;

async function onceMore<T>(retry: boolean, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (!retry || !isConnectionLost(e)) throw databaseError(e) ?? e;
  }
  try {
    return await run();
  } catch (e) {
    throw databaseError(e) ?? e;
  }
}

async function openPostgres(url: string, statementTimeoutMs: number): Promise<Database & { migrate(): Promise<void> }> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const timeout = statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {};
  const pool = new pg.Pool({ connectionString: url, max: 10, ...timeout });
  // The pool listens to idle clients only; a checked-out client whose backend dies would otherwise
  // emit an unhandled 'error' and end the process. Its pending query rejects on its own.
  pool.on('connect', (client) => client.on('error', (e) => log(`database connection lost: ${e.message}`)));
  pool.on('error', (e) => log(`database pool error: ${e.message}`));
  try {
    await pool.query('SELECT 1');
  } catch (e) {
    await pool.end();
    throw new AtlasError(
      'BAD_USER_INPUT',
      `Cannot connect to ${redact(url)}: ${(e as Error).message}. Check DATABASE_URL.`,
    );
  }
  // drizzle sends its statements through pool.query too: reads retried once, failures coded, for both.
  const poolQuery = pool.query.bind(pool) as (config: unknown, values?: unknown) => Promise<pg.QueryResult>;
  pool.query = ((config: unknown, values?: unknown) => {
    const text = typeof config === 'string' ? config : ((config as { text?: string }).text ?? '');
    return onceMore(READ_ONLY.test(text), () => poolQuery(config, values));
  }) as typeof pool.query;
  const counter = { n: 0 };
  const db = drizzlePg(pool, { schema, logger: countingLogger(counter) }) as unknown as Drizzle;
  /**
   * Checks a client out and runs fn on it; when `signal` aborts meanwhile, the client's statement is
   * cancelled. A client whose connection failed, or that was cancelled (a late cancel must not hit
   * the next user's statement), is destroyed instead of pooled.
   */
  const withClient = async <T>(signal: AbortSignal | undefined, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> => {
    signal?.throwIfAborted();
    const client = await pool.connect();
    let failure: unknown;
    let cancelled = false;
    const cancel = () => {
      cancelled = true;
      const pid = (client as unknown as { processID: number }).processID;
      poolQuery('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
    };
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      return await fn(client);
    } catch (e) {
      failure = e;
      throw e;
    } finally {
      signal?.removeEventListener('abort', cancel);
      const discard = cancelled || (failure !== undefined && isConnectionLost(failure));
      client.release(discard ? new Error('connection discarded') : undefined);
    }
  };
  const view = (signal?: AbortSignal): Database & { migrate(): Promise<void> } => ({
    kind: 'postgres',
    description: redact(url),
    db,
    get queryCount() {
      return counter.n;
    },
    async query<T>(text: string, params: unknown[] = []) {
      counter.n++;
      const run = () => withClient(signal, async (client) => (await client.query(text, params)).rows as T[]);
      return onceMore(READ_ONLY.test(text), run);
    },
    transaction(fn, opts) {
      return onceMore(opts?.readOnly ?? false, () =>
        withClient(signal, async (client) => {
          try {
            await client.query(opts?.readOnly ? 'BEGIN READ ONLY' : 'BEGIN');
            const result = await fn(
              async (text, params = []) => {
                signal?.throwIfAborted();
                return (await client.query(text, params)).rows;
              },
              (...args) => copyOnClient(client, ...args),
            );
            await client.query('COMMIT');
            return result;
          } catch (e) {
            if (!isConnectionLost(e)) await client.query('ROLLBACK').catch(() => undefined);
            throw e;
          }
        }),
      );
    },
    copyIn(table, columns, tuples) {
      return onceMore(false, () => withClient(undefined, (client) => copyOnClient(client, table, columns, tuples)));
    },
    async migrate() {
      const client = await pool.connect();
      try {
        await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
        try {
          await migratePg(db as never, { migrationsFolder: MIGRATIONS });
        } finally {
          await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
        }
      } catch (e) {
        throw migrationError(e);
      } finally {
        client.release();
      }
    },
    forRequest: (s) => view(s),
    close: () => pool.end(),
  });
  return view();
}

function migrationError(e: unknown): AtlasError {
  const msg = (e as Error).message ?? String(e);
  if (/extension "vector"/.test(msg) || /could not open extension control file/.test(msg)) {
    return new AtlasError(
      'UNSUPPORTED',
      `The database has no pgvector extension (${msg}). Install it (scripts/install-pgvector.sh on Debian) and ` +
        `start again.`,
    );
  }
  return new AtlasError('INTERNAL_SERVER_ERROR', `Database migration failed: ${msg}`);
}

/**
 * PGlite keeps its files in one folder that only one process may open; a lock file turns a second
 * server on the same folder into a clear error instead of a corrupted database (docs/decisions/0002).
 * The file holds "<pid> <start time>": a pid alone is reused after a crash, so a lock counts as held
 * only while that pid is alive and started at the recorded time (field 22 of /proc/<pid>/stat, in
 * clock ticks since boot). Without /proc, or for a lock holding only a pid, a live pid counts.
 */
function lockDataDir(dir: string): () => void {
  const lock = join(dir, 'pglite.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, `${process.pid} ${processStartTime(process.pid) ?? ''}`.trim());
      closeSync(fd);
      return () => {
        try {
          unlinkSync(lock);
        } catch {
          /* already gone */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const [owner, started] = readFileSync(lock, 'utf8').trim().split(/\s+/);
      const pid = Number(owner);
      if (pid && pid !== process.pid && holdsLock(pid, started)) {
        throw new AtlasError(
          'CONFLICT',
          `The embedded database in ${dir} is in use by process ${pid}. ` +
            'Stop it, use another ATLAS_DATA_DIR, or set DATABASE_URL to share a PostgreSQL server.',
        );
      }
      unlinkSync(lock);
    }
  }
  throw new AtlasError('CONFLICT', `Could not lock ${lock}.`);
}

/** Start time of a process in clock ticks since boot, or null where /proc is not available. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function holdsLock(pid: number, started: string | undefined): boolean {
  if (!isAlive(pid)) return false;
  if (!started) return true;
  const now = processStartTime(pid);
  return now === null || now === started;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function openPglite(dataDir: string): Promise<Database & { migrate(): Promise<void> }> {
  mkdirSync(dataDir, { recursive: true });
  const unlock = lockDataDir(dataDir);
  let client: PGlite;
  try {
    await seedFromTemplate(join(dataDir, 'pglite'));
    client = await PGlite.create(join(dataDir, 'pglite'), { extensions: { vector } });
  } catch (e) {
    unlock();
    throw e;
  }
  const counter = { n: 0 };
  const db = drizzlePglite(client, { schema, logger: countingLogger(counter) }) as unknown as Drizzle;
  // PGlite runs one statement at a time on this thread and cannot interrupt one: an aborted request's
  // statements that have not started yet are skipped.
  const view = (signal?: AbortSignal): Database & { migrate(): Promise<void> } => ({
    kind: 'pglite',
    description: `PGlite ${join(dataDir, 'pglite')}`,
    db,
    get queryCount() {
      return counter.n;
    },
    async query<T>(text: string, params: unknown[] = []) {
      counter.n++;
      signal?.throwIfAborted();
      return (await client.query<T>(text, params)).rows;
    },
    async transaction(fn) {
      signal?.throwIfAborted();
      return client.transaction((tx) =>
        fn(
          async (text, params = []) => {
            signal?.throwIfAborted();
            return (await tx.query(text, params)).rows as never;
          },
          (...args) => copyOnPglite((sql, blob) => tx.query(sql, [], { blob }), ...args),
        ),
      );
    },
    copyIn(table, columns, tuples) {
      return copyOnPglite((sql, blob) => client.query(sql, [], { blob }), table, columns, tuples);
    },
    async migrate() {
      try {
        await migratePglite(db as never, { migrationsFolder: MIGRATIONS });
      } catch (e) {
        throw migrationError(e);
      }
    },
    forRequest: (s) => view(s),
    async close() {
      await client.close();
      unlock();
    },
  });
  return view();
}
