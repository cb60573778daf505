/** Stored API keys: their sha256, a readable prefix, a name and when they were revoked (src/app/keys.ts makes them). */
import type { Database } from './client.js';

export interface ApiKeyRow {
  id: number;
  name: string;
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

const COLUMNS = 'id, name, prefix, created_at AS "createdAt", revoked_at AS "revokedAt"';

export async function insertApiKey(
  database: Database,
  key: { name: string; keyHash: string; prefix: string },
): Promise<ApiKeyRow> {
  const [row] = await database.query<ApiKeyRow>(
    `INSERT INTO api_keys (name, key_hash, prefix) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`,
    [key.name, key.keyHash, key.prefix],
  );
  return row;
}

export async function listApiKeys(database: Database): Promise<ApiKeyRow[]> {
  return database.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys ORDER BY id`);
}

export async function getApiKeyById(database: Database, id: number): Promise<ApiKeyRow | undefined> {
  const [row] = await database.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1`, [id]);
  return row;
}

export async function getApiKeyByHash(database: Database, keyHash: string): Promise<ApiKeyRow | undefined> {
  const [row] = await database.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE key_hash = $1`, [keyHash]);
  return row;
}

/** Keys whose hash is keyHash or whose prefix starts with `prefix`, oldest first. */
export async function findApiKeys(database: Database, keyHash: string, prefix: string | null): Promise<ApiKeyRow[]> {
  return database.query<ApiKeyRow>(
    `SELECT ${COLUMNS} FROM api_keys WHERE key_hash = $1 OR ($2::text IS NOT NULL AND starts_with(prefix, $2)) ORDER BY id`,
    [keyHash, prefix],
  );
}

/** Marks a key revoked; revoking twice keeps the first time. */
export async function revokeApiKeyById(database: Database, id: number): Promise<ApiKeyRow> {
  const [row] = await database.query<ApiKeyRow>(
    `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`,
    [id],
  );
  return row;
}
