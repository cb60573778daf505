/** Explanations of features: writes (one or many, atomically) and batched reads; src/app/explanations.ts validates. */
import type { Database, Query } from './client.js';
import { featureKey, featureKeyJoin, featureKeyParams, type FeatureKey } from './features.js';
import { groupBy } from '../group-by.js';
import { explanations } from './schema.js';
import { selectList } from './columns.js';

export interface ExplanationRow {
  id: number;
  dictionaryId: string;
  index: number;
  text: string;
  source: string;
  author: string | null;
  createdAt: Date;
}

export interface NewExplanation {
  dictionaryId: string;
  index: number;
  text: string;
  source: string;
  author: string | null;
}

/** Column list of an ExplanationRow, for queries elsewhere that return explanations. */
export const EXPLANATION_COLUMNS = selectList(explanations, 'e', { rename: { featureIdx: 'index' } });
/** Rows per INSERT … SELECT FROM unnest(…): large enough to be fast, small enough for one message. */
const INSERT_CHUNK = 5000;

async function insertChunk(q: Query, rows: readonly NewExplanation[]): Promise<ExplanationRow[]> {
  return q<ExplanationRow>(
    `INSERT INTO explanations AS e (dictionary_id, feature_idx, text, source, author)
     SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[])
     RETURNING ${EXPLANATION_COLUMNS}`,
    [
      rows.map((r) => r.dictionaryId),
      rows.map((r) => r.index),
      rows.map((r) => r.text),
      rows.map((r) => r.source),
      rows.map((r) => r.author),
    ],
  );
}

/** Inserts all rows in one transaction (callers validate first); returns them in input order. */
export async function insertExplanations(
  database: Database,
  rows: readonly NewExplanation[],
): Promise<ExplanationRow[]> {
  if (rows.length === 0) return [];
  return database.transaction(async (q) => {
    const out: ExplanationRow[] = [];
    for (let i = 0; i < rows.length; i += INSERT_CHUNK)
      out.push(...(await insertChunk(q, rows.slice(i, i + INSERT_CHUNK))));
    return out;
  });
}

/** Explanations of many features, oldest first per feature (the DataLoader batch function). */
export async function getExplanationsOfFeatures(
  database: Database,
  keys: readonly FeatureKey[],
): Promise<Map<string, ExplanationRow[]>> {
  if (keys.length === 0) return new Map();
  const rows = await database.query<ExplanationRow>(
    `SELECT ${EXPLANATION_COLUMNS} FROM explanations e ${featureKeyJoin('e', 'feature_idx')} ORDER BY e.id`,
    featureKeyParams(keys),
  );
  return groupBy(rows, featureKey);
}

/** Explanations by id (the DataLoader batch function behind `node(id:)`). */
export async function getExplanations(
  database: Database,
  ids: readonly number[],
): Promise<Map<number, ExplanationRow>> {
  if (ids.length === 0) return new Map();
  const rows = await database.query<ExplanationRow>(
    `SELECT ${EXPLANATION_COLUMNS} FROM explanations e WHERE e.id = ANY($1::int[])`,
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r]));
}
