/** Stored API keys: their sha256, a readable prefix, a name and when they were revoked (src/app/keys.ts makes them). */
import { asc, eq, or, sql } from 'drizzle-orm';
import type { Database } from './client.js';
import { apiKeys } from './schema.js';

const ROW = {
  id: apiKeys.id,
  name: apiKeys.name,
  prefix: apiKeys.prefix,
  createdAt: apiKeys.createdAt,
  revokedAt: apiKeys.revokedAt,
};

/** A key's row without its hash, which never leaves this module. */
export type ApiKeyRow = Omit<typeof apiKeys.$inferSelect, 'keyHash'>;

export async function insertApiKey(
  database: Database,
  key: { name: string; keyHash: string; prefix: string },
): Promise<ApiKeyRow> {
  const [row] = await database.db.insert(apiKeys).values(key).returning(ROW);
  return row;
}

export async function listApiKeys(database: Database): Promise<ApiKeyRow[]> {
  return database.db.select(ROW).from(apiKeys).orderBy(asc(apiKeys.id));
}

export async function getApiKeyById(database: Database, id: number): Promise<ApiKeyRow | undefined> {
  const [row] = await database.db.select(ROW).from(apiKeys).where(eq(apiKeys.id, id));
  return row;
}

export async function getApiKeyByHash(database: Database, keyHash: string): Promise<ApiKeyRow | undefined> {
  const [row] = await database.db.select(ROW).from(apiKeys).where(eq(apiKeys.keyHash, keyHash));
  return row;
}

/** Keys whose hash is keyHash or whose prefix starts with `prefix`, oldest first. */
export async function findApiKeys(database: Database, keyHash: string, prefix: string | null): Promise<ApiKeyRow[]> {
  const byPrefix = prefix === null ? undefined : sql`starts_with(${apiKeys.prefix}, ${prefix})`;
  return database.db
    .select(ROW)
    .from(apiKeys)
    .where(or(eq(apiKeys.keyHash, keyHash), byPrefix))
    .orderBy(asc(apiKeys.id));
}

/** Marks a key revoked; revoking twice keeps the first time. */
export async function revokeApiKeyById(database: Database, id: number): Promise<ApiKeyRow> {
  const [row] = await database.db
    .update(apiKeys)
    .set({ revokedAt: sql`coalesce(${apiKeys.revokedAt}, now())` })
    .where(eq(apiKeys.id, id))
    .returning(ROW);
  return row;
}
