/**
 * Who is calling: the API key in `Authorization: Bearer <key>`, checked at most once per request and
 * only when something asks (a write, or any request under ATLAS_REQUIRE_KEY=1).
 */
import type { Database } from '../db/client.js';
import { verifyApiKey } from './keys.js';
import { AtlasError } from '../errors.js';

export interface Caller {
  keyId: number;
  keyName: string;
}

export interface Auth {
  /** The caller's key, or an UNAUTHENTICATED (no key) / FORBIDDEN (unknown or revoked key) error. */
  require(): Promise<Caller>;
}

export function requestAuth(database: Database, authorization: string | undefined): Auth {
  let checked: Promise<Caller> | undefined;
  const check = async (): Promise<Caller> => {
    const m = authorization?.match(/^\s*Bearer\s+(\S+)\s*$/i);
    if (!authorization || !authorization.trim()) {
      throw new AtlasError(
        'UNAUTHENTICATED',
        'This operation needs an API key: send "Authorization: Bearer <key>" (create one with `atlas keys create ' +
          '--name NAME`).',
      );
    }
    if (!m) throw new AtlasError('UNAUTHENTICATED', 'The Authorization header must read "Bearer <key>".');
    const result = await verifyApiKey(database, m[1]);
    if (!result.ok) {
      throw new AtlasError(
        'FORBIDDEN',
        result.reason === 'revoked'
          ? 'This API key has been revoked; ask for a new one.'
          : 'This API key is not known to this server.',
      );
    }
    return { keyId: result.id, keyName: result.name };
  };
  return {
    require() {
      checked ??= check();
      return checked;
    },
  };
}
