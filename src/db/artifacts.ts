/**
 * Content-addressed files kept in PostgreSQL, so that every replica can fetch what it serves:
 * artifact_chunks holds a file's bytes as bytea pieces of at most CHUNK_BYTES, written and read one
 * at a time (no file is ever whole in memory), and the artifact_blobs row, written in the same
 * transaction after the last chunk, marks the file complete. Hashing and checking belong to the
 * caller (src/app/artifacts.ts); this module moves bytes and prunes blobs no catalog row names.
 */
import type { Database } from './client.js';

/** Big enough that a 10 GB checkpoint is 2,560 statements, small enough to stay far below bytea's 1 GB. */
export const CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Whether a complete file has that hash, claiming it for a writer about to refer to it: its
 * created_at restarts, so pruning (which spares blobs younger than its grace period) leaves it to the
 * row being written. A prune that deletes it first makes this false, and the writer stores it again.
 */
export async function claimBlob(database: Database, sha256: string): Promise<boolean> {
  const rows = await database.query('UPDATE artifact_blobs SET created_at = now() WHERE sha256 = $1 RETURNING 1', [
    sha256,
  ]);
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

/** Serialises prunes of one database (one statement each, but two at once would only repeat the work). */
const PRUNE_LOCK = "hashtext('atlas:prune-artifacts')";

/** The sha256 of every file a model or dictionary row (in any state) names: its manifest and converted graph. */
const REFERENCED = `
  SELECT f->>'sha256' AS sha256 FROM models, jsonb_array_elements(artifacts->'files') f WHERE artifacts IS NOT NULL
  UNION
  SELECT f->>'sha256' FROM models, jsonb_array_elements(artifacts->'converted'->'files') f
   WHERE artifacts->'converted' IS NOT NULL
  UNION
  SELECT f->>'sha256' FROM dictionaries, jsonb_array_elements(artifacts->'files') f WHERE artifacts IS NOT NULL`;

export async function referencedBlobs(database: Database): Promise<Set<string>> {
  return new Set((await database.query<{ sha256: string }>(REFERENCED)).map((r) => r.sha256));
}

/**
 * Deletes, in one statement, the blobs (and their chunks) that no row names and that were written or
 * claimed more than `graceMinutes` ago: an importer claims or writes its blobs before it writes the
 * row that names them, so a grace longer than that gap spares every import in flight.
 */
export async function pruneBlobs(database: Database, graceMinutes: number): Promise<{ blobs: number; bytes: number }> {
  return database.transaction(async (q) => {
    await q(`SELECT pg_advisory_xact_lock(${PRUNE_LOCK})`);
    const [row] = await q<{ blobs: number; bytes: string }>(
      `WITH referenced AS (${REFERENCED}),
       gone AS (
         DELETE FROM artifact_blobs b
          WHERE b.created_at < now() - make_interval(secs => $1::float8 * 60)
            AND NOT EXISTS (SELECT 1 FROM referenced r WHERE r.sha256 = b.sha256)
         RETURNING b.sha256, b.size),
       chunks AS (DELETE FROM artifact_chunks c USING gone WHERE c.sha256 = gone.sha256)
       SELECT count(*)::int AS blobs, coalesce(sum(size), 0)::text AS bytes FROM gone`,
      [graceMinutes],
    );
    return { blobs: row.blobs, bytes: Number(row.bytes) };
  });
}
