/** Opening the configured database (PGlite under ATLAS_DATA_DIR, or PostgreSQL at DATABASE_URL). */
import { loadConfig, type Config } from '../config.js';
import { databaseError, openDatabase, type Database } from '../db/client.js';
import { pendingMigrations } from '../db/readiness.js';

export type { Database };
/** The coded error (DATABASE_UNAVAILABLE, DEADLINE_EXCEEDED…) behind a failure from the database, or null. */
export { databaseError };

/** `statementTimeoutMs`: PostgreSQL's statement_timeout for a server (its per-request deadline). */
export function openConfiguredDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir'>,
  opts: { statementTimeoutMs?: number } = {},
): Promise<Database> {
  return openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, ...opts });
}

/** Runs one command with the database open, and closes it after, also on failure. */
export async function withDatabase<T>(fn: (database: Database, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const database = await openConfiguredDatabase(config);
  try {
    return await fn(database, config);
  } finally {
    await database.close();
  }
}

/** Whether the database can serve this build (GET /readyz): reachable, with every shipped migration applied. */
export async function readiness(database: Database): Promise<{ ready: boolean; problem?: string }> {
  let pending: number;
  try {
    pending = await pendingMigrations(database);
  } catch (e) {
    return { ready: false, problem: `the database does not answer: ${(databaseError(e) ?? (e as Error)).message}` };
  }
  if (pending > 0) return { ready: false, problem: `${pending} migration(s) of this build are not applied yet` };
  return { ready: true };
}
