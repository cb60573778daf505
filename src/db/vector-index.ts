/**
 * pgvector HNSW needs one fixed dimension per index, while the feature_decoders table holds dictionaries
 * of many widths. Each dictionary gets a partial index over `decoder::vector(d_in)` (or halfvec above
 * 2,000 dims, where vector HNSW stops and halfvec goes to 4,000), and every search repeats exactly that
 * expression and predicate so the planner can use it.
 */
import type { Database, Query } from './client.js';
import { AtlasError } from '../errors.js';

const HNSW_VECTOR_MAX = 2000;
const HNSW_HALFVEC_MAX = 4000;

export function vectorType(dIn: number): string {
  if (dIn > HNSW_HALFVEC_MAX) {
    throw new AtlasError(
      'UNSUPPORTED',
      `Dictionaries wider than ${HNSW_HALFVEC_MAX} dims cannot be indexed by pgvector HNSW (d_in = ${dIn}).`,
    );
  }
  return dIn > HNSW_VECTOR_MAX ? `halfvec(${dIn})` : `vector(${dIn})`;
}

function opclass(dIn: number): string {
  return dIn > HNSW_VECTOR_MAX ? 'halfvec_cosine_ops' : 'vector_cosine_ops';
}

/** Dictionary ids are validated to [A-Za-z0-9._-], so quoting them as literals is safe. */
export function literal(id: string): string {
  return `'${id.replace(/'/g, "''")}'`;
}

export function indexName(dictionaryId: string): string {
  return `features_hnsw_${dictionaryId
    .replace(/[^A-Za-z0-9_]/g, '_')
    .toLowerCase()
    .slice(0, 40)}_${hash(dictionaryId)}`;
}

function hash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0).toString(36);
}

/**
 * HNSW builds several times faster when the whole graph fits in maintenance_work_mem (64 MB by
 * default, less than a 24,576 × 768 dictionary needs), so the build sizes it for its transaction:
 * per feature the vector (4 bytes a dim, 2 for halfvec) plus about 1 KB of graph (pgvector's element
 * and its m = 16 neighbour lists), with 10% headroom, between 64 MB and 1 GB, and never below what
 * the server is configured with nor below the 32 MB per participant that PostgreSQL wants before it
 * starts a parallel worker.
 *
 * PostgreSQL builds with up to max_parallel_maintenance_workers helpers (the server's setting: its
 * cores, not ours; PGlite builds alone), but only for a table whose heap is over
 * min_parallel_table_scan_size. Decoders are stored out of line (TOAST), which leaves the heap at
 * about 100 bytes a feature, so the build lowers that threshold to 0 for itself.
 *
 * m and ef_construction stay at pgvector's defaults (16, 64). Smaller ones build faster (ef_construction
 * 32: about 1.5×, m = 8: 2×) but lose recall on clustered decoder-like rows: at 65,536 × 768,
 * ef_construction 32 gave recall@10 0.91 with queries that found none of their true top 10
 * (bench/scale.ts).
 */
const MIN_BUILD_MB = 64;
const MAX_BUILD_MB = 1024;
const MB_PER_PARTICIPANT = 32;

export function buildMemoryMb(dSae: number, dIn: number): number {
  const bytesPerFeature = (dIn > HNSW_VECTOR_MAX ? 2 : 4) * dIn + 1024;
  return Math.min(MAX_BUILD_MB, Math.max(MIN_BUILD_MB, Math.ceil((1.1 * dSae * bytesPerFeature) / 2 ** 20)));
}

export async function createHnswIndex(
  database: Database,
  dictionaryId: string,
  dIn: number,
  dSae: number,
): Promise<void> {
  await database.transaction((q) => buildHnswIndex(q, dictionaryId, dIn, dSae));
}

/** The index build inside a caller's transaction (`--replace` swaps dictionaries in one). */
export async function buildHnswIndex(q: Query, dictionaryId: string, dIn: number, dSae: number): Promise<void> {
  const type = vectorType(dIn);
  const [{ mb, workers }] = await q<{ mb: number; workers: number }>(
    "SELECT (pg_size_bytes(current_setting('maintenance_work_mem')) / 1048576)::int AS mb, " +
      "current_setting('max_parallel_maintenance_workers')::int AS workers",
  );
  const buildMb = Math.max(mb, buildMemoryMb(dSae, dIn), MB_PER_PARTICIPANT * (workers + 1));
  await q(`SET LOCAL maintenance_work_mem = '${buildMb}MB'`);
  await q('SET LOCAL min_parallel_table_scan_size = 0');
  await q(`DROP INDEX IF EXISTS ${indexName(dictionaryId)}`);
  await q(
    `CREATE INDEX ${indexName(dictionaryId)} ON feature_decoders USING hnsw ((decoder::${type}) ${opclass(dIn)}) ` +
      `WHERE dictionary_id = ${literal(dictionaryId)}`,
  );
}

export async function dropHnswIndex(query: Query | Database['query'], dictionaryId: string): Promise<void> {
  await query(`DROP INDEX IF EXISTS ${indexName(dictionaryId)}`);
}
