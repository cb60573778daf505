/**
 * Stored co-activation of feature-family pairs (table co_activations): the pairs a build counts
 * (each child of the wider dictionary with its best-match parent in a stored comparison) and the
 * counts it publishes, replaced in the build's publishing transaction.
 */
import type { Database, Query } from './client.js';

/** Parent and child features of one family pair list, as parallel arrays. */
export interface StoredPairs {
  parents: Int32Array;
  children: Int32Array;
}

/** Counts of one (parent dictionary, child dictionary) pair list, in the order of its pairs. */
export interface CoActivationSet {
  parentDictionaryId: string;
  childDictionaryId: string;
  pairs: StoredPairs;
  both: Float64Array;
  parent: Float64Array;
}

const CHUNK = 20000;

/** Each feature of the child dictionary with its best match in the parent one; null without a stored comparison. */
export async function familyPairs(database: Database, parentId: string, childId: string): Promise<StoredPairs | null> {
  const rows = await database.query<{ c: number; p: number }>(
    `SELECT m.idx AS c, m.match_idx AS p FROM feature_matches m
     WHERE m.dictionary_id = $1 AND m.other_dictionary_id = $2 ORDER BY m.idx`,
    [childId, parentId],
  );
  if (rows.length === 0) return null;
  return { parents: Int32Array.from(rows, (r) => r.p), children: Int32Array.from(rows, (r) => r.c) };
}

/**
 * Deletes every row touching the built dictionaries, then stores the new counts; run inside the publish transaction.
 */
export async function replaceCoActivations(
  q: Query,
  builtIds: readonly string[],
  sets: readonly CoActivationSet[],
): Promise<void> {
  await q(
    'DELETE FROM co_activations WHERE parent_dictionary_id = ANY($1::text[]) OR child_dictionary_id = ANY($1::text[])',
    [[...builtIds]],
  );
  for (const s of sets) {
    for (let from = 0; from < s.both.length; from += CHUNK) {
      const to = Math.min(s.both.length, from + CHUNK);
      await q(
        `INSERT INTO co_activations (parent_dictionary_id, parent_idx, child_dictionary_id, child_idx, both_tokens,
          parent_tokens)
         SELECT $1, p, $2, c, b, t FROM unnest($3::int[], $4::int[], $5::float8[], $6::float8[]) AS s(p, c, b, t)`,
        [
          s.parentDictionaryId,
          s.childDictionaryId,
          Array.from(s.pairs.parents.subarray(from, to)),
          Array.from(s.pairs.children.subarray(from, to)),
          Array.from(s.both.subarray(from, to)),
          Array.from(s.parent.subarray(from, to)),
        ],
      );
    }
  }
}
