/**
 * Whether this database can serve: reachable, and every migration this build ships applied. drizzle
 * records each applied migration in drizzle.__drizzle_migrations with created_at = the journal's
 * `when` of that migration (migrations/meta/_journal.json).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS_DIR } from '../paths.js';
import type { Database } from './client.js';

const SHIPPED: number[] = (
  JSON.parse(readFileSync(join(MIGRATIONS_DIR, 'meta', '_journal.json'), 'utf8')) as { entries: { when: number }[] }
).entries.map((e) => e.when);

/** How many of the shipped migrations are not applied to the database; throws when the database cannot be reached. */
export async function pendingMigrations(database: Database): Promise<number> {
  const [{ present }] = await database.query<{ present: boolean }>(
    "SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS present",
  );
  if (!present) return SHIPPED.length;
  const rows = await database.query<{ at: string }>('SELECT created_at::text AS at FROM drizzle.__drizzle_migrations');
  const applied = new Set(rows.map((r) => Number(r.at)));
  return SHIPPED.filter((when) => !applied.has(when)).length;
}
