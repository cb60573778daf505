/**
 * Stored dictionary comparisons: one summary row per pair (either order finds it) and, for every
 * feature of both dictionaries, its best match in the other and its one-to-one partner.
 */
import type { Database, Query } from './client.js';
import type { ComparisonSummary } from './schema.js';
import { featureKey, featureKeyJoin, featureKeyParams, type FeatureKey } from './features.js';
import { groupBy } from '../group-by.js';

export interface ComparisonRow {
  id: number;
  dictionaryA: string;
  dictionaryB: string;
  summary: ComparisonSummary;
  createdAt: Date;
}

export interface MatchRow {
  comparisonId: number;
  dictionaryId: string;
  index: number;
  otherDictionaryId: string;
  matchIndex: number;
  cosine: number;
  pairedIndex: number | null;
  pairedCosine: number | null;
}

/** The matches of one side: per feature, best match and cosine, and the one-to-one partner if any. */
export interface SideMatches {
  matchIndices: Int32Array;
  cosines: Float32Array;
  paired: { indices: Int32Array; cosines: Float32Array } | null;
}

const COMPARISON_COLUMNS =
  `id, dictionary_a AS "dictionaryA", dictionary_b AS "dictionaryB", summary, created_at ` + `AS "createdAt"`;
const MATCH_COLUMNS = `m.comparison_id AS "comparisonId", m.dictionary_id AS "dictionaryId", m.idx AS "index",
  m.other_dictionary_id AS "otherDictionaryId", m.match_idx AS "matchIndex", m.cosine,
  m.paired_idx AS "pairedIndex", m.paired_cosine AS "pairedCosine"`;

/** The comparison of a and b stored in either order, or null. */
export async function findComparison(database: Database, a: string, b: string): Promise<ComparisonRow | null> {
  const [row] = await database.query<ComparisonRow>(
    `SELECT ${COMPARISON_COLUMNS} FROM comparisons
     WHERE (dictionary_a = $1 AND dictionary_b = $2) OR (dictionary_a = $2 AND dictionary_b = $1)`,
    [a, b],
  );
  return row ?? null;
}

export async function getComparisons(database: Database, ids: readonly number[]): Promise<Map<number, ComparisonRow>> {
  const rows = await database.query<ComparisonRow>(
    `SELECT ${COMPARISON_COLUMNS} FROM comparisons WHERE id = ANY($1::int[])`,
    [[...ids]],
  );
  return new Map(rows.map((r) => [r.id, r]));
}

async function insertSide(
  q: Query,
  comparisonId: number,
  dictionaryId: string,
  otherId: string,
  side: SideMatches,
): Promise<void> {
  const n = side.matchIndices.length;
  await q(
    `INSERT INTO feature_matches (comparison_id, dictionary_id, idx, other_dictionary_id, match_idx, cosine,
      paired_idx, paired_cosine)
     SELECT $1, $2, i, $3, m, c, p, pc FROM unnest($4::int[], $5::int[], $6::real[], $7::int[], $8::real[]) AS s(i,
     m, c, p, pc)`,
    [
      comparisonId,
      dictionaryId,
      otherId,
      Array.from({ length: n }, (_, i) => i),
      Array.from(side.matchIndices),
      Array.from(side.cosines),
      side.paired ? Array.from(side.paired.indices) : new Array(n).fill(null),
      side.paired ? Array.from(side.paired.cosines) : new Array(n).fill(null),
    ],
  );
}

/** Replaces the stored comparison of the pair (in either order) in one transaction. */
export async function saveComparison(
  database: Database,
  a: string,
  b: string,
  summary: ComparisonSummary,
  sideA: SideMatches,
  sideB: SideMatches,
): Promise<ComparisonRow> {
  return database.transaction(async (q) => {
    await q(
      'DELETE FROM comparisons WHERE (dictionary_a = $1 AND dictionary_b = $2) OR (dictionary_a = $2 AND ' +
        'dictionary_b = $1)',
      [a, b],
    );
    const [row] = (await q(
      `INSERT INTO comparisons (dictionary_a, dictionary_b, summary) VALUES ($1, $2, $3) RETURNING ` +
        `${COMPARISON_COLUMNS}`,
      [a, b, JSON.stringify(summary)],
    )) as unknown as ComparisonRow[];
    await insertSide(q, row.id, a, b, sideA);
    await insertSide(q, row.id, b, a, sideB);
    return row;
  });
}

export type MatchOrder = 'BEST' | 'WORST' | 'INDEX';

export interface MatchPageRequest {
  comparisonId: number;
  dictionaryId: string;
  order: MatchOrder;
  first: number;
  after: { value: number | null; index: number } | null;
}

/** Keyset pages of one side's matches, by cosine (ties by index ascending) or by index. */
export async function pageMatches(
  database: Database,
  req: MatchPageRequest,
): Promise<{ rows: MatchRow[]; hasNextPage: boolean }> {
  const params: unknown[] = [req.comparisonId, req.dictionaryId, req.first + 1];
  let where = 'm.comparison_id = $1 AND m.dictionary_id = $2';
  let order = 'm.idx ASC';
  if (req.order === 'INDEX') {
    if (req.after) {
      params.push(req.after.index);
      where += ' AND m.idx > $4';
    }
  } else {
    const cmp = req.order === 'BEST' ? '<' : '>';
    order = `m.cosine ${req.order === 'BEST' ? 'DESC' : 'ASC'}, m.idx ASC`;
    if (req.after) {
      params.push(req.after.value, req.after.index);
      where += ` AND (m.cosine ${cmp} $4 OR (m.cosine = $4 AND m.idx > $5))`;
    }
  }
  const rows = await database.query<MatchRow>(
    `SELECT ${MATCH_COLUMNS} FROM feature_matches m WHERE ${where} ORDER BY ${order} LIMIT $3`,
    params,
  );
  return { rows: rows.slice(0, req.first), hasNextPage: rows.length > req.first };
}

/** Every stored match of each feature, across all comparisons it is part of (best first). */
export async function getMatchesOfFeatures(
  database: Database,
  keys: readonly FeatureKey[],
): Promise<Map<string, MatchRow[]>> {
  if (keys.length === 0) return new Map();
  const rows = await database.query<MatchRow>(
    `SELECT ${MATCH_COLUMNS} FROM feature_matches m ${featureKeyJoin('m', 'idx')} ORDER BY m.cosine DESC, ` +
      `m.other_dictionary_id`,
    featureKeyParams(keys),
  );
  return groupBy(rows, featureKey);
}

export interface FamilyKey extends FeatureKey {
  /** The other (usually wider) dictionary whose features may split this one. */
  otherDictionaryId: string;
}

export const familyKey = (k: FamilyKey): string => `${k.dictionaryId}:${k.index}>${k.otherDictionaryId}`;

/**
 * A family member with the co-activation counts of the last build of both dictionaries (null if not built together).
 */
export interface FamilyRow extends MatchRow {
  /** Tokens where both this feature (the child) and its parent fire. */
  bothTokens: number | null;
  /** Tokens where the parent fires. */
  parentTokens: number | null;
}

/**
 * Features of the other dictionary whose best match is the given feature (its children when the
 * other is wider), best cosine first, with their stored co-activation (src/db/co-activations.ts).
 */
export async function getFamilies(database: Database, keys: readonly FamilyKey[]): Promise<Map<string, FamilyRow[]>> {
  const out = new Map<string, FamilyRow[]>();
  if (keys.length === 0) return out;
  const rows = await database.query<FamilyRow>(
    `SELECT ${MATCH_COLUMNS}, a.both_tokens AS "bothTokens", a.parent_tokens AS "parentTokens" FROM feature_matches m
     JOIN unnest($1::text[], $2::int[], $3::text[]) AS k(d, i, o)
       ON m.dictionary_id = k.o AND m.other_dictionary_id = k.d AND m.match_idx = k.i
     LEFT JOIN co_activations a ON a.child_dictionary_id = m.dictionary_id AND a.child_idx = m.idx
       AND a.parent_dictionary_id = m.other_dictionary_id AND a.parent_idx = m.match_idx
     ORDER BY m.cosine DESC, m.idx`,
    [keys.map((k) => k.dictionaryId), keys.map((k) => k.index), keys.map((k) => k.otherDictionaryId)],
  );
  for (const r of rows) {
    const k = familyKey({ dictionaryId: r.otherDictionaryId, index: r.matchIndex, otherDictionaryId: r.dictionaryId });
    const list = out.get(k);
    if (list) list.push(r);
    else out.set(k, [r]);
  }
  return out;
}
