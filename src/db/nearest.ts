/** Nearest features by decoder cosine, through each dictionary's HNSW index (src/db/vector-index.ts). */
import type { Database } from './client.js';
import { literal, vectorType } from './vector-index.js';
import { getDictionaries, getDictionariesOfModels, requireDictionary } from './catalog.js';
import { getDecoders } from './features.js';
import { AtlasError } from '../errors.js';
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
  const unit = unitVector(req.vector);
  if (!unit) return [];
  const vec = `[${unit.join(',')}]`;
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
  }, { readOnly: true });
  return hits
    .filter((h) => !(req.exclude && h.dictionaryId === req.exclude.dictionaryId && h.index === req.exclude.index))
    .sort((a, b) => b.cosine - a.cosine || a.dictionaryId.localeCompare(b.dictionaryId) || a.index - b.index)
    .slice(0, req.k);
}

export interface NearestArgs {
  dictionary: string;
  index?: number | null;
  vector?: number[] | null;
  k: number;
  in?: string[] | null;
  /** MODEL: every dictionary of the source's model with the source's width (d_in). */
  scope?: 'DICTIONARY' | 'MODEL' | null;
  exact?: boolean | null;
}

export const MAX_NEIGHBORS = 100;

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

/** Validates a nearestFeatures request against the catalog and runs it. */
export async function findNearest(database: Database, args: NearestArgs, efSearch?: number): Promise<Neighbor[]> {
  const hasIndex = args.index !== undefined && args.index !== null;
  const hasVector = args.vector !== undefined && args.vector !== null;
  if (hasIndex === hasVector) {
    throw new AtlasError('BAD_USER_INPUT', 'Give exactly one of "index" (a feature of the dictionary) or "vector" (a raw direction).');
  }
  if (!Number.isInteger(args.k) || args.k < 1 || args.k > MAX_NEIGHBORS) {
    throw new AtlasError('BAD_USER_INPUT', `"k" must be between 1 and ${MAX_NEIGHBORS}, got ${args.k}.`);
  }
  const unit = hasVector ? unitVector(args.vector!) : null;
  if (hasVector && !unit) {
    throw new AtlasError('BAD_USER_INPUT',
      'The vector must be finite and not all zeros (cosine is undefined for a zero vector).');
  }
  const source = await requireDictionary(database, args.dictionary);
  if (args.scope === 'MODEL' && args.in && args.in.length) {
    throw new AtlasError('BAD_USER_INPUT', 'Give either "in" (a list of dictionaries) or scope: MODEL (all of the model\'s dictionaries of this width), not both.');
  }
  const targetIds = args.scope === 'MODEL'
    ? (await getDictionariesOfModels(database, [source.modelId])).filter((d) => d.dIn === source.dIn).map((d) => d.id)
    : args.in && args.in.length ? [...new Set(args.in)] : [source.id];
  const targets = await getDictionaries(database, targetIds);
  for (const id of targetIds) {
    const t = targets.find((d) => d.id === id);
    if (!t) throw new AtlasError('NOT_FOUND', `No dictionary "${id}" to search in.`);
    if (t.dIn !== source.dIn) {
      throw new AtlasError('DIMENSION_MISMATCH', `Dictionary "${id}" has d_in ${t.dIn} but "${source.id}" has d_in ${source.dIn}; only dictionaries of the same width can be searched together.`);
    }
  }
  let vector: number[];
  let exclude: NearestRequest['exclude'];
  if (hasVector) {
    vector = unit!;
    if (vector.length !== source.dIn) {
      throw new AtlasError('DIMENSION_MISMATCH', `The vector has ${vector.length} values but dictionary "${source.id}" has d_in ${source.dIn}.`);
    }
  } else {
    const index = args.index!;
    if (!Number.isInteger(index) || index < 0 || index >= source.dSae) {
      throw new AtlasError('NOT_FOUND', `Dictionary "${source.id}" has features 0..${source.dSae - 1}; there is no feature ${index}.`);
    }
    const decoders = await getDecoders(database, [{ dictionaryId: source.id, index }]);
    vector = decoders.get(`${source.id}:${index}`)!;
    exclude = { dictionaryId: source.id, index };
  }
  return nearestFeatures(database, { dictionaryIds: targetIds, dIn: source.dIn, vector, k: args.k, exclude, exact: args.exact ?? false, efSearch });
}
