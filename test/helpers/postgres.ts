import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const DEFAULT_TEST_PG_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  /** Connection URL of the new database (same server, user and options as the admin URL). */
  url: string;
  /** Its name, atlas_test_<random hex>. */
  name: string;
  /** Drops the database, ending any session still connected to it; safe to call twice. */
  drop(): Promise<void>;
}

/** Same URL with the password masked, for messages. */
function redact(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password) copy.password = '***';
  return copy.href;
}

/** Connects, or returns why not (server down, wrong port, authentication refused, no such database). */
async function connect(url: URL): Promise<pg.Client | string> {
  const client = new pg.Client({ connectionString: url.href, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    return client;
  } catch (e) {
    return `PostgreSQL at ${redact(url)} is unreachable (${(e as Error).message})`;
  }
}

/**
 * Creates a fresh database (random name) on the server in ATLAS_TEST_PG_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres), ensures pgvector is available in it (CREATE EXTENSION vector),
 * returns its URL and a drop() that removes it; returns the reason instead when PostgreSQL is unreachable or
 * lacks pgvector, so a test can skip with a visible notice. Other failures (e.g. the user may not create
 * databases) throw, so a misconfigured server is not silently skipped.
 */
export async function createTestDatabase(): Promise<TestDatabase | { skip: string }> {
  const adminUrl = new URL(process.env.ATLAS_TEST_PG_URL || DEFAULT_TEST_PG_URL);
  const admin = await connect(adminUrl);
  if (typeof admin === 'string') return { skip: `${admin}; set ATLAS_TEST_PG_URL to a reachable server` };

  const name = `atlas_test_${randomBytes(6).toString('hex')}`;
  try {
    const available = await admin.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'vector'`);
    if (available.rowCount === 0) {
      return {
        skip: `pgvector is not installed on PostgreSQL at ${redact(adminUrl)}; run scripts/install-pgvector.sh as root`,
      };
    }
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }

  const dbUrl = new URL(adminUrl.href);
  dbUrl.pathname = `/${name}`;
  const drop = async (): Promise<void> => {
    const client = await connect(adminUrl);
    if (typeof client === 'string') throw new Error(`cannot drop test database ${name}: ${client}`);
    try {
      // FORCE (PostgreSQL 13+) so a pool a failed test left open does not block the drop.
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await client.end();
    }
  };

  const db = await connect(dbUrl);
  try {
    if (typeof db === 'string') throw new Error(`created test database ${name} but cannot connect to it: ${db}`);
    try {
      await db.query('CREATE EXTENSION IF NOT EXISTS vector');
    } finally {
      await db.end();
    }
  } catch (e) {
    await drop();
    throw e;
  }
  return { url: dbUrl.href, name, drop };
}
