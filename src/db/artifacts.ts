/**
 * Content-addressed files kept in PostgreSQL, so that every replica can fetch what it serves:
 * artifact_chunks holds a file's bytes as bytea pieces of at most CHUNK_BYTES, written and read one
 * at a time (no file is ever whole in memory), and the artifact_blobs row, written in the same
 * transaction after the last chunk, marks the file complete. Hashing and checking belong to the
 * caller (src/app/artifacts.ts); this module only moves bytes.
 */
import type { Database } from './client.js';

/** Big enough that a 10 GB checkpoint is 2,560 statements, small enough to stay far below bytea's 1 GB. */
export const CHUNK_BYTES = 4 * 1024 * 1024;

export async function hasBlob(database: Database, sha256: string): Promise<boolean> {
  const rows = await database.query('SELECT 1 FROM artifact_blobs WHERE sha256 = $1', [sha256]);
  return rows.length > 0;
}

/**
 * Stores `chunks` under `sha256` unless another process already has. A transaction-scoped advisory
 * lock on the hash serialises two writers of one file; chunks left by a killed writer are replaced.
 * `chunks` may throw (a hash that does not match), which rolls everything back.
 */
export async function writeBlob(
  database: Database,
  sha256: string,
  size: number,
  chunks: () => AsyncIterable<Buffer>,
): Promise<void> {
  await database.transaction(async (q) => {
    await q('SELECT pg_advisory_xact_lock(hashtext($1))', [sha256]);
    if ((await q('SELECT 1 FROM artifact_blobs WHERE sha256 = $1', [sha256])).length > 0) return;
    await q('DELETE FROM artifact_chunks WHERE sha256 = $1', [sha256]);
    let seq = 0;
    for await (const chunk of chunks()) {
      await q('INSERT INTO artifact_chunks (sha256, seq, data) VALUES ($1, $2, $3)', [sha256, seq++, chunk]);
    }
    await q('INSERT INTO artifact_blobs (sha256, size, chunks) VALUES ($1, $2, $3)', [sha256, size, seq]);
  });
}

/** The chunks of a stored file in order, or null when no complete file has that hash. */
export async function readBlob(database: Database, sha256: string): Promise<AsyncIterable<Buffer> | null> {
  const [blob] = await database.query<{ chunks: number }>('SELECT chunks FROM artifact_blobs WHERE sha256 = $1', [
    sha256,
  ]);
  if (!blob) return null;
  return (async function* () {
    for (let seq = 0; seq < blob.chunks; seq++) {
      const [row] = await database.query<{ data: Buffer }>(
        'SELECT data FROM artifact_chunks WHERE sha256 = $1 AND seq = $2',
        [sha256, seq],
      );
      if (row) yield row.data;
    }
  })();
}
