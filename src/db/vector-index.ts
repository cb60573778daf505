/**
 * pgvector HNSW needs one fixed dimension per index, while the features table holds dictionaries of
 * many widths. Each dictionary gets a partial index over `decoder::vector(d_in)` (or halfvec above
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
 * default, less than a 24,576 × 768 dictionary needs), so the build raises it for its transaction.
 */
const BUILD_MEMORY = '512MB';

export async function createHnswIndex(database: Database, dictionaryId: string, dIn: number): Promise<void> {
  await database.transaction((q) => buildHnswIndex(q, dictionaryId, dIn));
}

/** The index build inside a caller's transaction (`--replace` swaps dictionaries in one). */
export async function buildHnswIndex(q: Query, dictionaryId: string, dIn: number): Promise<void> {
  const type = vectorType(dIn);
  await q(`SET LOCAL maintenance_work_mem = '${BUILD_MEMORY}'`);
  await q(`DROP INDEX IF EXISTS ${indexName(dictionaryId)}`);
  await q(
    `CREATE INDEX ${indexName(dictionaryId)} ON features USING hnsw ((decoder::${type}) ${opclass(dIn)}) ` +
      `WHERE dictionary_id = ${literal(dictionaryId)}`,
  );
}

export async function dropHnswIndex(query: Query | Database['query'], dictionaryId: string): Promise<void> {
  await query(`DROP INDEX IF EXISTS ${indexName(dictionaryId)}`);
}
