/**
 * API keys for writes (and for reads under ATLAS_REQUIRE_KEY=1). A key is shown once when created;
 * only its sha256 is stored, so a leaked database does not leak usable keys. The prefix stays
 * readable so people can tell keys apart and revoke one by it.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Database } from '../db/client.js';
import {
  findApiKeys,
  getApiKeyByHash,
  getApiKeyById,
  insertApiKey,
  listApiKeys as listRows,
  revokeApiKeyById,
  type ApiKeyRow,
} from '../db/api-keys.js';
import { AtlasError } from '../errors.js';

export type { ApiKeyRow };

const KEY_PREFIX = 'atlas_';
/** The part of the key kept in clear: `atlas_` and 8 characters, 48 bits, enough to tell keys apart. */
const SHOWN = KEY_PREFIX.length + 8;
/** A prefix must go past `atlas_` by a few characters, so a slip cannot revoke every key. */
const MIN_PREFIX = KEY_PREFIX.length + 3;

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Makes a key with 256 random bits; returns it in clear (the only time it exists) with its row. */
export async function createApiKey(database: Database, name: string): Promise<{ key: string; row: ApiKeyRow }> {
  const trimmed = name.trim();
  if (!trimmed || trimmed.length > 200) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      'A key needs a name of 1–200 characters (--name), saying who or what uses it.',
    );
  }
  const key = KEY_PREFIX + randomBytes(32).toString('base64url');
  const row = await insertApiKey(database, { name: trimmed, keyHash: hashKey(key), prefix: key.slice(0, SHOWN) });
  return { key, row };
}

export const listApiKeys = listRows;

/** Revokes by numeric id, by the key itself, or by a unique start of its prefix; revoking twice is harmless. */
export async function revokeApiKey(database: Database, idOrPrefix: string): Promise<ApiKeyRow> {
  const matches = /^\d+$/.test(idOrPrefix)
    ? [await getApiKeyById(database, Number(idOrPrefix))].filter((r) => r !== undefined)
    : await findApiKeys(database, hashKey(idOrPrefix), idOrPrefix.length >= MIN_PREFIX ? idOrPrefix : null);
  if (matches.length === 0) {
    throw new AtlasError(
      'NOT_FOUND',
      `No API key with id or prefix "${idOrPrefix}" (a prefix needs at least ${MIN_PREFIX} characters); ` +
        '`atlas keys list` shows them.',
    );
  }
  if (matches.length > 1) {
    const which = matches.map((k) => `${k.id} ${k.prefix}`).join(', ');
    throw new AtlasError('BAD_USER_INPUT', `"${idOrPrefix}" matches ${matches.length} keys (${which}); give the id.`);
  }
  return revokeApiKeyById(database, matches[0].id);
}

export type KeyCheck = { ok: true; id: number; name: string } | { ok: false; reason: 'unknown' | 'revoked' };

export async function verifyApiKey(database: Database, key: string): Promise<KeyCheck> {
  const row = await getApiKeyByHash(database, hashKey(key));
  if (!row) return { ok: false, reason: 'unknown' };
  if (row.revokedAt) return { ok: false, reason: 'revoked' };
  return { ok: true, id: row.id, name: row.name };
}
