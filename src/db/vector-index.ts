/**
 * pgvector's indexes (IVFFlat and HNSW) need one fixed dimension per index, while the feature_decoders
 * table holds dictionaries of many widths. Each dictionary gets a partial index over
 * `decoder::vector(d_in)` (or halfvec above 2,000 dims, where pgvector stops indexing vector and indexes
 * halfvec up to 4,000), and every search repeats exactly that expression and predicate so the planner
 * can use it.
 */
import type { Database, Query } from './client.js';
import { AtlasError } from '../errors.js';

const INDEX_VECTOR_MAX = 2000;
const INDEX_HALFVEC_MAX = 4000;

export function vectorType(dIn: number): string {
  if (dIn > INDEX_HALFVEC_MAX) {
    throw new AtlasError(
      'UNSUPPORTED',
      `Dictionaries wider than ${INDEX_HALFVEC_MAX} dims cannot be indexed by pgvector (d_in = ${dIn}).`,
    );
  }
  return dIn > INDEX_VECTOR_MAX ? `halfvec(${dIn})` : `vector(${dIn})`;
}

function opclass(dIn: number): string {
  return dIn > INDEX_VECTOR_MAX ? 'halfvec_cosine_ops' : 'vector_cosine_ops';
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
 * The approximate index a dictionary gets, by its number of features:
 * - IVFFLAT up to IVFFLAT_MAX_FEATURES: k-means into lists = ⌈√n⌉ cells, and a search reads the
 *   vectors of its `probes` nearest cells. Dictionaries are written once and never updated in place,
 *   so the cells never go stale, which is IVFFlat's usual weakness. On decoder-like clustered rows
 *   (bench/scale.ts) it builds 7–9× faster than HNSW (16,384 × 768: 1.8 s vs 12.0 s; 65,536 × 768:
 *   9.2 s vs 84 s) with recall@10 0.998 and 1.0 at 16 probes, and answers within 2× of HNSW's time.
 * - HNSW above: a probe's share of a 1M-feature dictionary is tens of thousands of vectors, while
 *   HNSW's graph walk visits a few thousand, and its build (about an hour at 1M × 768 on 2 cores)
 *   is paid once for a query rate IVFFlat cannot match there.
 * Both index the same expression with cosine opclasses, so the search statement is the same; only its
 * session setting (ivfflat.probes or hnsw.ef_search) differs.
 */
export type ApproximateIndex = 'IVFFLAT' | 'HNSW';

export const IVFFLAT_MAX_FEATURES = 262_144;
/** Fewest cells a search reads: below 16, recall@10 fell to 0.93–0.97 at 16k and 65k (bench/scale.ts). */
const IVFFLAT_MIN_PROBES = 16;

export function approximateIndex(dSae: number): ApproximateIndex {
  return dSae <= IVFFLAT_MAX_FEATURES ? 'IVFFLAT' : 'HNSW';
}

export function ivfflatLists(dSae: number): number {
  return Math.max(1, Math.ceil(Math.sqrt(dSae)));
}

/**
 * Cells a search of `want` hits reads: at least 16 and √lists (pgvector's guidance), and enough that
 * the cells hold 4·want vectors on average; all of them for a small dictionary, which is then exact.
 */
export function ivfflatProbes(dSae: number, want: number): number {
  const lists = ivfflatLists(dSae);
  const forWant = Math.ceil((4 * want * lists) / Math.max(1, dSae));
  return Math.min(lists, Math.max(IVFFLAT_MIN_PROBES, Math.ceil(Math.sqrt(lists)), forWant));
}

/**
 * Index builds run several times faster in memory, so the build sizes maintenance_work_mem for its
 * transaction, between 64 MB and 1 GB, never below what the server is configured with nor below the
 * 32 MB per participant that PostgreSQL wants before it starts a parallel worker:
 * - HNSW keeps the whole graph: per feature the vector (4 bytes a dim, 2 for halfvec) plus about 1 KB
 *   (pgvector's element and its m = 16 neighbour lists). A graph that outgrows it builds on disk,
 *   many times slower.
 * - IVFFlat keeps its k-means state: a sample of 50 vectors a list (at most every row), and a float
 *   per sample and list; pgvector refuses to build with less ("memory required is 131 MB" at
 *   262,144 × 768).
 * Both with 10% headroom.
 *
 * PostgreSQL builds with up to max_parallel_maintenance_workers helpers (the server's setting: its
 * cores, not ours; PGlite builds alone), but only for a table whose heap is over
 * min_parallel_table_scan_size. Decoders are stored out of line (TOAST), which leaves the heap at
 * about 100 bytes a feature, so the build lowers that threshold to 0 for itself.
 *
 * HNSW's m and ef_construction stay at pgvector's defaults (16, 64). Smaller ones build faster
 * (ef_construction 32: about 1.5×, m = 8: 2×) but lose recall on clustered decoder-like rows: at
 * 65,536 × 768, ef_construction 32 gave recall@10 0.91 with queries that found none of their true top
 * 10 (bench/scale.ts).
 */
const MIN_BUILD_MB = 64;
const MAX_BUILD_MB = 1024;
const MB_PER_PARTICIPANT = 32;
const IVFFLAT_SAMPLES_PER_LIST = 50;

export function buildMemoryMb(dSae: number, dIn: number): number {
  const vectorBytes = (dIn > INDEX_VECTOR_MAX ? 2 : 4) * dIn;
  let bytes: number;
  if (approximateIndex(dSae) === 'HNSW') {
    bytes = dSae * (vectorBytes + 1024);
  } else {
    // pgvector's Elkan k-means: the samples and two sets of centres, a float lower bound per sample and
    // centre, the centre-to-centre distances, and three floats a sample.
    const lists = ivfflatLists(dSae);
    const samples = Math.min(dSae, IVFFLAT_SAMPLES_PER_LIST * lists);
    bytes = (samples + 2 * lists) * (vectorBytes + 8) + 4 * samples * lists + 4 * lists * lists + 12 * samples;
  }
  return Math.min(MAX_BUILD_MB, Math.max(MIN_BUILD_MB, Math.ceil((1.1 * bytes) / 2 ** 20)));
}

export async function createVectorIndex(
  database: Database,
  dictionaryId: string,
  dIn: number,
  dSae: number,
): Promise<void> {
  await database.transaction((q) => buildVectorIndex(q, dictionaryId, dIn, dSae));
}

/** The index build inside a caller's transaction (`--replace` swaps dictionaries in one). */
export async function buildVectorIndex(q: Query, dictionaryId: string, dIn: number, dSae: number): Promise<void> {
  const type = vectorType(dIn);
  const [{ mb, workers }] = await q<{ mb: number; workers: number }>(
    "SELECT (pg_size_bytes(current_setting('maintenance_work_mem')) / 1048576)::int AS mb, " +
      "current_setting('max_parallel_maintenance_workers')::int AS workers",
  );
  const buildMb = Math.max(mb, buildMemoryMb(dSae, dIn), MB_PER_PARTICIPANT * (workers + 1));
  await q(`SET LOCAL maintenance_work_mem = '${buildMb}MB'`);
  await q('SET LOCAL min_parallel_table_scan_size = 0');
  await q(`DROP INDEX IF EXISTS ${indexName(dictionaryId)}`);
  const method = approximateIndex(dSae) === 'HNSW' ? 'hnsw' : 'ivfflat';
  const options = method === 'ivfflat' ? ` WITH (lists = ${ivfflatLists(dSae)})` : '';
  await q(
    `CREATE INDEX ${indexName(dictionaryId)} ON feature_decoders USING ${method} ((decoder::${type}) ` +
      `${opclass(dIn)})${options} WHERE dictionary_id = ${literal(dictionaryId)}`,
  );
}

export async function dropVectorIndex(query: Query | Database['query'], dictionaryId: string): Promise<void> {
  await query(`DROP INDEX IF EXISTS ${indexName(dictionaryId)}`);
}
