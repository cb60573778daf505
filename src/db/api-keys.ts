/**
 * API keys for writes (and for reads under ATLAS_REQUIRE_KEY=1). A key is shown once when created;
 * only its sha256 is stored, so a leaked database does not leak usable keys. The prefix stays
 * readable so people can tell keys apart and revoke one by it.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Database } from './client.js';
import { AtlasError } from '../errors.js';

export interface ApiKeyRow {
  id: number;
  name: string;
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

const KEY_PREFIX = 'atlas_';
/** The part of the key kept in clear: `atlas_` and 8 characters, 48 bits, enough to tell keys apart. */
const SHOWN = KEY_PREFIX.length + 8;

/** A prefix must go past `atlas_` by a few characters, so a slip cannot revoke every key. */
const MIN_PREFIX = KEY_PREFIX.length + 3;

const COLUMNS = 'id, name, prefix, created_at AS "createdAt", revoked_at AS "revokedAt"';

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Makes a key with 256 random bits; returns it in clear (the only time it exists) with its row. */
export async function createApiKey(database: Database, name: string): Promise<{ key: string; row: ApiKeyRow }> {
  const trimmed = name.trim();
  if (!trimmed || trimmed.length > 200) throw new AtlasError('BAD_USER_INPUT', 'A key needs a name of 1–200 characters (--name), saying who or what uses it.');
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  const [row] = await database.query<ApiKeyRow>(
    `INSERT INTO api_keys (name, key_hash, prefix) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`,
    [trimmed, hashKey(key), key.slice(0, SHOWN)],
  );
  return { key, row };
}

export async function listApiKeys(database: Database): Promise<ApiKeyRow[]> {
  return database.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys ORDER BY id`);
}

/** Revokes by numeric id, by the key itself, or by a unique start of its prefix; revoking twice is harmless. */
export async function revokeApiKey(database: Database, idOrPrefix: string): Promise<ApiKeyRow> {
  const matches = /^\d+$/.test(idOrPrefix)
    ? await database.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1`, [Number(idOrPrefix)])
    : await database.query<ApiKeyRow>(
      `SELECT ${COLUMNS} FROM api_keys WHERE key_hash = $2 OR (length($1) >= $3 AND starts_with(prefix, $1)) ORDER BY id`,
      [idOrPrefix, hashKey(idOrPrefix), MIN_PREFIX],
    );
  if (matches.length === 0) throw new AtlasError('NOT_FOUND', `No API key with id or prefix "${idOrPrefix}" (a prefix needs at least ${MIN_PREFIX} characters); \`atlas keys list\` shows them.`);
  if (matches.length > 1) {
    throw new AtlasError('BAD_USER_INPUT', `"${idOrPrefix}" matches ${matches.length} keys (${matches.map((k) => `${k.id} ${k.prefix}`).join(', ')}); give the id.`);
  }
  const [row] = await database.query<ApiKeyRow>(
    `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${COLUMNS}`,
    [matches[0].id],
  );
  return row;
}

export type KeyCheck = { ok: true; id: number; name: string } | { ok: false; reason: 'unknown' | 'revoked' };

export async function verifyApiKey(database: Database, key: string): Promise<KeyCheck> {
  const [row] = await database.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE key_hash = $1`, [hashKey(key)]);
  if (!row) return { ok: false, reason: 'unknown' };
  if (row.revokedAt) return { ok: false, reason: 'revoked' };
  return { ok: true, id: row.id, name: row.name };
}
