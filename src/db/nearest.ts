/** Nearest features by decoder cosine, through each dictionary's HNSW index (src/db/vector-index.ts). */
import type { Database } from './client.js';
import { literal, vectorType } from './vector-index.js';
import { DEFAULT_HNSW_EF_SEARCH } from '../config.js';

export interface Neighbor {
  dictionaryId: string;
  index: number;
  cosine: number;
}

export interface NearestRequest {
  dictionaryIds: string[];
  dIn: number;
  vector: number[];
  k: number;
  /** A feature to leave out (the one searched from). */
  exclude?: { dictionaryId: string; index: number };
  /** Scan every row instead of the approximate index. */
  exact?: boolean;
  /** Floor of hnsw.ef_search (default 200, ATLAS_HNSW_EF_SEARCH). */
  efSearch?: number;
}

/**
 * One index scan per dictionary, merged by cosine. ef_search grows with k because HNSW returns at
 * most ef_search candidates.
 */
export async function nearestFeatures(database: Database, req: NearestRequest): Promise<Neighbor[]> {
  const type = vectorType(req.dIn);
  const want = req.k + (req.exclude ? 1 : 0);
  const vec = `[${req.vector.join(',')}]`;
  const efSearch = Math.min(1000, Math.max(req.efSearch ?? DEFAULT_HNSW_EF_SEARCH, want * 4));
  const hits = await database.transaction(async (q) => {
    await q(`SET LOCAL hnsw.ef_search = ${efSearch}`);
    if (req.exact) await q('SET LOCAL enable_indexscan = off');
    const all: Neighbor[] = [];
    for (const id of req.dictionaryIds) {
      const rows = await q<{ index: number; distance: number }>(
        `SELECT idx AS "index", (decoder::${type} <=> $1::${type})::float8 AS distance FROM features
         WHERE dictionary_id = ${literal(id)} ORDER BY decoder::${type} <=> $1::${type} LIMIT ${want}`,
        [vec],
      );
      for (const r of rows) all.push({ dictionaryId: id, index: r.index, cosine: 1 - r.distance });
    }
    return all;
  });
  return hits
    .filter((h) => !(req.exclude && h.dictionaryId === req.exclude.dictionaryId && h.index === req.exclude.index))
    .sort((a, b) => b.cosine - a.cosine || a.dictionaryId.localeCompare(b.dictionaryId) || a.index - b.index)
    .slice(0, req.k);
}
