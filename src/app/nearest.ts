/**
 * nearestFeatures: a request checked against the catalog (one of index or vector, k, the dictionaries to
 * search and their widths), then a plan per dictionary (planSearch) and the searches:
 * - EXACT: a batched matrix product over the dictionary's unit decoder matrix (src/engine/nearest.ts),
 *   read from the database once and kept in the resident set; concurrent queries of one dictionary
 *   share a product.
 * - IVFFLAT or HNSW: the dictionary's approximate pgvector index, whichever its size gave it
 *   (src/db/vector-index.ts), searched in the database (src/db/nearest.ts).
 * - EXACT_SCAN: pgvector's sequential scan, for exact answers over a decoder matrix too wide to hold.
 */
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { getDictionaries, getDictionariesOfModels, requireDictionary, type DictionaryRow } from '../db/catalog.js';
import { getDecoders } from '../db/features.js';
import { readDecoderMatrix } from '../db/decoder-matrix.js';
import { approximateIndex, type ApproximateIndex } from '../db/vector-index.js';
import { nearestFeatures, rankNeighbors, unitVector, type Neighbor, type NearestRequest } from '../db/nearest.js';
import { Batcher, BatcherPool, type QueueStats } from '../engine/batching.js';
import { ExactSearch, exactSearchBytes, type RowHits } from '../engine/nearest.js';
import { AtlasError } from '../errors.js';
import type { ResidentSet } from './resident.js';
import { decodersKey } from './freshness.js';

export interface NearestArgs {
  dictionary: string;
  index?: number | null;
  vector?: number[] | null;
  k: number;
  in?: string[] | null;
  /** MODEL: every dictionary of the source's model with the source's width (d_in). */
  scope?: 'DICTIONARY' | 'MODEL' | null;
  exact?: boolean | null;
  /** Lowest acceptable recall@k, in (0, 1]; default DEFAULT_RECALL. */
  recall?: number | null;
}

export const MAX_NEIGHBORS = 100;

export type SearchMethod = 'EXACT' | ApproximateIndex | 'EXACT_SCAN';

export interface SearchPlan {
  dictionary: string;
  method: SearchMethod;
}

/** Recall asked of a search that names none. */
export const DEFAULT_RECALL = 0.95;
/**
 * Recall@10 the approximate indexes can be counted on: HNSW at the default ef_search gave 0.91 at
 * 100k × 768 on decoder-like clustered vectors (bench/api.ts), IVFFlat at its probes 0.998 and 1.0 at
 * 16k and 65k (bench/scale.ts). Asking for more searches exactly.
 */
export const APPROXIMATE_RECALL = 0.9;
/** Most of ATLAS_MAX_RESIDENT_MB one decoder matrix may take; wider ones are searched in the database. */
export const EXACT_RESIDENT_SHARE = 0.25;
/** Queries of one dictionary merged into one matrix product. */
const EXACT_BATCH_QUERIES = 64;

/**
 * EXACT when the dictionary's exact search (its unit decoder matrix and 8-bit screen, exactSearchBytes) fits
 * its share of the resident set and the request wants exact answers or more recall than the approximate
 * indexes give; otherwise EXACT_SCAN when exactness (or a recall above theirs) was asked for explicitly,
 * else the dictionary's approximate index.
 */
export function planSearch(
  dict: Pick<DictionaryRow, 'dIn' | 'dSae'>,
  want: { exact: boolean; recall: number | null },
  maxResidentBytes: number,
): SearchMethod {
  const fits = exactSearchBytes(dict.dSae, dict.dIn) <= EXACT_RESIDENT_SHARE * maxResidentBytes;
  const recall = want.recall ?? DEFAULT_RECALL;
  if (fits && (want.exact || recall > APPROXIMATE_RECALL)) return 'EXACT';
  if (want.exact || (want.recall !== null && want.recall > APPROXIMATE_RECALL)) return 'EXACT_SCAN';
  return approximateIndex(dict.dSae);
}

interface ExactQuery {
  unit: Float32Array;
  k: number;
  /** Reads the decoder matrix when it is not resident (the first query's request does). */
  read: () => Promise<Float32Array>;
}

/** Nearest-feature search for a server: the planner, exact searches through the resident set, and the indexes. */
export class NearestService {
  private readonly batchers: BatcherPool<ExactQuery, RowHits>;

  constructor(
    private readonly resident: ResidentSet,
    private readonly config: Pick<
      Config,
      'hnswEfSearch' | 'device' | 'threads' | 'maxQueue' | 'requestTimeoutMs' | 'batching'
    >,
  ) {
    // Keyed by resident key: a version's batcher goes once idle after its decoder matrix leaves memory.
    this.batchers = new BatcherPool(() => resident.liveKeys());
  }

  /** Batch counts and queue depth of the exact searches, summed over dictionaries. */
  queue(): QueueStats {
    return this.batchers.stats();
  }

  async find(database: Database, args: NearestArgs): Promise<{ hits: Neighbor[]; plans: SearchPlan[] }> {
    const req = await checkRequest(database, args);
    const plans = req.targets.map((t) => ({
      dictionary: t.id,
      method: planSearch(t, { exact: args.exact ?? false, recall: args.recall ?? null }, this.resident.maxBytes),
    }));
    const want = req.k + (req.exclude ? 1 : 0);
    const unit = Float32Array.from(unitVector(req.vector)!);
    const byMethod = (...methods: SearchMethod[]) => req.targets.filter((_, i) => methods.includes(plans[i].method));
    const fromDatabase = (dictionaries: DictionaryRow[], exact: boolean) =>
      dictionaries.length
        ? nearestFeatures(database, { ...req, dictionaries, exact, efSearch: this.config.hnswEfSearch })
        : [];
    const found = await Promise.all([
      fromDatabase(byMethod('IVFFLAT', 'HNSW'), false),
      fromDatabase(byMethod('EXACT_SCAN'), true),
      ...byMethod('EXACT').map(async (t) => {
        const hits = await this.exactBatcher(t).submit({
          unit,
          k: want,
          read: () => readDecoderMatrix(database, t.id, t.dIn, t.dSae),
        });
        return Array.from(hits.indices, (index, r) => ({ dictionaryId: t.id, index, cosine: hits.cosines[r] }));
      }),
    ]);
    return { hits: rankNeighbors(found.flat(), req.k, req.exclude), plans };
  }

  /** One batcher per dictionary version: a replaced dictionary (new created_at) gets a fresh matrix. */
  private exactBatcher(dict: DictionaryRow): Batcher<ExactQuery, RowHits> {
    const key = decodersKey(dict);
    return this.batchers.get(
      key,
      () =>
        new Batcher<ExactQuery, RowHits>(
          (queries) =>
            this.resident.use(
              key,
              async () => {
                const search = await ExactSearch.create(await queries[0].read(), dict.dIn, this.config);
                return { value: search, bytes: search.bytes, close: () => search.close() };
              },
              async (search) => {
                const q = new Float32Array(queries.length * dict.dIn);
                queries.forEach((x, i) => q.set(x.unit, i * dict.dIn));
                const k = Math.max(...queries.map((x) => x.k));
                const hits = await search.search(q, queries.length, k);
                return hits.map((h, i) => ({
                  indices: h.indices.subarray(0, queries[i].k),
                  cosines: h.cosines.subarray(0, queries[i].k),
                }));
              },
            ),
          () => 1,
          {
            budget: EXACT_BATCH_QUERIES,
            maxQueue: this.config.maxQueue,
            timeoutMs: this.config.requestTimeoutMs,
            merge: this.config.batching,
          },
        ),
    );
  }
}

/** A nearestFeatures request checked against the catalog: the query vector, k, and the dictionaries. */
async function checkRequest(
  database: Database,
  args: NearestArgs,
): Promise<{ vector: number[]; dIn: number; k: number; exclude: NearestRequest['exclude']; targets: DictionaryRow[] }> {
  const hasIndex = args.index !== undefined && args.index !== null;
  const hasVector = args.vector !== undefined && args.vector !== null;
  if (hasIndex === hasVector) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      'Give exactly one of "index" (a feature of the dictionary) or "vector" (a raw direction).',
    );
  }
  const unit = hasVector ? unitVector(args.vector!) : null;
  if (args.recall !== undefined && args.recall !== null && !(args.recall > 0 && args.recall <= 1)) {
    throw new AtlasError('BAD_USER_INPUT', `"recall" must be in (0, 1], got ${args.recall}.`);
  }
  if (hasVector && !unit) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      'The vector must be finite and not all zeros (cosine is undefined for a zero vector).',
    );
  }
  const source = await requireDictionary(database, args.dictionary);
  if (args.scope === 'MODEL' && args.in && args.in.length) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      'Give either "in" (a list of dictionaries) or scope: MODEL (all of the model\'s dictionaries of this width), ' +
        'not both.',
    );
  }
  const targetIds =
    args.scope === 'MODEL'
      ? (await getDictionariesOfModels(database, [source.modelId])).filter((d) => d.dIn === source.dIn).map((d) => d.id)
      : args.in && args.in.length
        ? [...new Set(args.in)]
        : [source.id];
  const targets = await getDictionaries(database, targetIds);
  for (const id of targetIds) {
    const t = targets.find((d) => d.id === id);
    if (!t) throw new AtlasError('NOT_FOUND', `No dictionary "${id}" to search in.`);
    if (t.dIn !== source.dIn) {
      throw new AtlasError(
        'DIMENSION_MISMATCH',
        `Dictionary "${id}" has d_in ${t.dIn} but "${source.id}" has d_in ${source.dIn}; only dictionaries of the ` +
          `same width can be searched together.`,
      );
    }
  }
  let vector: number[];
  let exclude: NearestRequest['exclude'];
  if (hasVector) {
    vector = unit!;
    if (vector.length !== source.dIn) {
      throw new AtlasError(
        'DIMENSION_MISMATCH',
        `The vector has ${vector.length} values but dictionary "${source.id}" has d_in ${source.dIn}.`,
      );
    }
  } else {
    const index = args.index!;
    if (!Number.isInteger(index) || index < 0 || index >= source.dSae) {
      throw new AtlasError(
        'NOT_FOUND',
        `Dictionary "${source.id}" has features 0..${source.dSae - 1}; there is no feature ${index}.`,
      );
    }
    const decoders = await getDecoders(database, [{ dictionaryId: source.id, index }]);
    vector = decoders.get(`${source.id}:${index}`)!;
    exclude = { dictionaryId: source.id, index };
  }
  return {
    vector,
    dIn: source.dIn,
    k: args.k,
    exclude,
    targets: targetIds.map((id) => targets.find((d) => d.id === id)!),
  };
}
