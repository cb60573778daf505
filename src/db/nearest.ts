/**
 * Nearest features by decoder cosine, through each dictionary's IVFFlat or HNSW index
 * (src/db/vector-index.ts), or by scanning its rows for an exact answer.
 */
import type { Database } from './client.js';
import { approximateIndex, ivfflatProbes, literal, vectorType } from './vector-index.js';
import { DEFAULT_HNSW_EF_SEARCH } from '../config.js';

export interface Neighbor {
  dictionaryId: string;
  index: number;
  cosine: number;
}

export interface NearestRequest {
  /** Searched dictionaries of width dIn; their sizes choose the index's search setting. */
  dictionaries: { id: string; dSae: number }[];
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
 * v / ‖v‖, computed in float64 after dividing by max |vᵢ| so that neither 1e200² overflows nor 1e-200²
 * underflows. Cosine is scale-free, and pgvector stores float32 (halfvec: float16) and sums squares in
 * float32, so a raw 1e39 or 1e-50 could not reach it; a unit vector always can. Null for a zero or
 * non-finite vector.
 */
export function unitVector(v: readonly number[]): number[] | null {
  let max = 0;
  for (const x of v) max = Math.max(max, Math.abs(x));
  if (!(max > 0) || !Number.isFinite(max)) return null;
  let sum = 0;
  for (const x of v) sum += (x / max) ** 2;
  const norm = Math.sqrt(sum);
  return v.map((x) => x / max / norm);
}

/**
 * One index scan per dictionary, merged by cosine. ef_search grows with k because HNSW returns at
 * most ef_search candidates; IVFFlat's probes are set per dictionary from its size and k.
 */
export async function nearestFeatures(database: Database, req: NearestRequest): Promise<Neighbor[]> {
  const type = vectorType(req.dIn);
  const want = req.k + (req.exclude ? 1 : 0);
  const unit = unitVector(req.vector);
  if (!unit) return [];
  const vec = `[${unit.join(',')}]`;
  const efSearch = Math.min(1000, Math.max(req.efSearch ?? DEFAULT_HNSW_EF_SEARCH, want * 4));
  const hits = await database.transaction(
    async (q) => {
      await q(`SET LOCAL hnsw.ef_search = ${efSearch}`);
      // The planner does not cost reading decoders out of line (TOAST), so for a small or unanalysed
      // dictionary it would rather sort every row; only the index gives this order without a sort.
      await q(`SET LOCAL ${req.exact ? 'enable_indexscan' : 'enable_sort'} = off`);
      const all: Neighbor[] = [];
      for (const { id, dSae } of req.dictionaries) {
        if (!req.exact && approximateIndex(dSae) === 'IVFFLAT') {
          await q(`SET LOCAL ivfflat.probes = ${ivfflatProbes(dSae, want)}`);
        }
        const rows = await q<{ index: number; distance: number }>(
          `SELECT idx AS "index", (decoder::${type} <=> $1::${type})::float8 AS distance FROM feature_decoders
         WHERE dictionary_id = ${literal(id)} ORDER BY decoder::${type} <=> $1::${type} LIMIT ${want}`,
          [vec],
        );
        for (const r of rows) all.push({ dictionaryId: id, index: r.index, cosine: 1 - r.distance });
      }
      return all;
    },
    { readOnly: true },
  );
  return rankNeighbors(hits, req.k, req.exclude);
}

/** The k best hits by cosine (ties by dictionary, then index), without the excluded feature. */
export function rankNeighbors(hits: Neighbor[], k: number, exclude?: NearestRequest['exclude']): Neighbor[] {
  return hits
    .filter((h) => !(exclude && h.dictionaryId === exclude.dictionaryId && h.index === exclude.index))
    .sort((a, b) => b.cosine - a.cosine || a.dictionaryId.localeCompare(b.dictionaryId) || a.index - b.index)
    .slice(0, k);
}
