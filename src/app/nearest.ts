/**
 * nearestFeatures: a request checked against the catalog (one of index or vector, k, the dictionaries to
 * search and their widths), then one index scan per dictionary (src/db/nearest.ts).
 */
import type { Database } from '../db/client.js';
import { getDictionaries, getDictionariesOfModels, requireDictionary } from '../db/catalog.js';
import { getDecoders } from '../db/features.js';
import { nearestFeatures, unitVector, type Neighbor, type NearestRequest } from '../db/nearest.js';
import { AtlasError } from '../errors.js';

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

/** Validates a nearestFeatures request against the catalog and runs it. */
export async function findNearest(database: Database, args: NearestArgs, efSearch?: number): Promise<Neighbor[]> {
  const hasIndex = args.index !== undefined && args.index !== null;
  const hasVector = args.vector !== undefined && args.vector !== null;
  if (hasIndex === hasVector) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      'Give exactly one of "index" (a feature of the dictionary) or "vector" (a raw direction).',
    );
  }
  const unit = hasVector ? unitVector(args.vector!) : null;
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
  return nearestFeatures(database, {
    dictionaryIds: targetIds,
    dIn: source.dIn,
    vector,
    k: args.k,
    exclude,
    exact: args.exact ?? false,
    efSearch,
  });
}
