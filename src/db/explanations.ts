/** Explanations of features: validated writes (one or many, atomically) and batched reads. */
import type { Database, Query } from './client.js';
import { getDictionaries } from './catalog.js';
import { featureKey, featureKeyJoin, featureKeyParams, type FeatureKey } from './features.js';
import { groupBy } from '../group-by.js';

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

export const MAX_EXPLANATION_CHARS = 4000;

/** Column list of an ExplanationRow, for queries elsewhere that return explanations. */
export const EXPLANATION_COLUMNS = `id, dictionary_id AS "dictionaryId", feature_idx AS "index", text, source, author, created_at AS "createdAt"`;
/** Rows per INSERT … SELECT FROM unnest(…): large enough to be fast, small enough for one message. */
const INSERT_CHUNK = 5000;

/** Why an explanation's text cannot be stored, or null when it can. Stored verbatim otherwise. */
export function explanationTextProblem(text: unknown): string | null {
  if (typeof text !== 'string' || text.trim() === '') return 'The explanation text is empty.';
  if (text.length > MAX_EXPLANATION_CHARS) return `The explanation has ${text.length} characters; at most ${MAX_EXPLANATION_CHARS} are kept.`;
  if (text.includes('\u0000')) return 'The explanation contains a NUL character, which the database cannot store.';
  return null;
}

/**
 * For each explanation, why its feature cannot take it (unknown dictionary, index out of range), or
 * null; one catalog query for any number of rows.
 */
export async function featureProblems(database: Database, rows: readonly { dictionaryId: string; index: number }[]): Promise<(string | null)[]> {
  const dicts = new Map((await getDictionaries(database, [...new Set(rows.map((r) => r.dictionaryId))])).map((d) => [d.id, d]));
  return rows.map(({ dictionaryId, index }) => {
    const d = dicts.get(dictionaryId);
    if (!d) return `No dictionary "${dictionaryId}".`;
    if (!Number.isInteger(index) || index < 0 || index >= d.dSae) return `Dictionary "${dictionaryId}" has features 0..${d.dSae - 1}; there is no feature ${index}.`;
    return null;
  });
}

async function insertChunk(q: Query, rows: readonly NewExplanation[]): Promise<ExplanationRow[]> {
  return q<ExplanationRow>(
    `INSERT INTO explanations (dictionary_id, feature_idx, text, source, author)
     SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[])
     RETURNING ${EXPLANATION_COLUMNS}`,
    [rows.map((r) => r.dictionaryId), rows.map((r) => r.index), rows.map((r) => r.text), rows.map((r) => r.source), rows.map((r) => r.author)],
  );
}

/** Inserts all rows in one transaction (callers validate first); returns them in input order. */
export async function insertExplanations(database: Database, rows: readonly NewExplanation[]): Promise<ExplanationRow[]> {
  if (rows.length === 0) return [];
  return database.transaction(async (q) => {
    const out: ExplanationRow[] = [];
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) out.push(...(await insertChunk(q, rows.slice(i, i + INSERT_CHUNK))));
    return out;
  });
}

/** Explanations of many features, oldest first per feature (the DataLoader batch function). */
export async function getExplanationsOfFeatures(database: Database, keys: readonly FeatureKey[]): Promise<Map<string, ExplanationRow[]>> {
  if (keys.length === 0) return new Map();
  const rows = await database.query<ExplanationRow>(
    `SELECT ${EXPLANATION_COLUMNS} FROM explanations e ${featureKeyJoin('e', 'feature_idx')} ORDER BY e.id`,
    featureKeyParams(keys),
  );
  return groupBy(rows, featureKey);
}

export async function getExplanationsById(database: Database, ids: readonly number[]): Promise<Map<number, ExplanationRow>> {
  if (ids.length === 0) return new Map();
  const rows = await database.query<ExplanationRow>(`SELECT ${EXPLANATION_COLUMNS} FROM explanations WHERE id = ANY($1::int[])`, [[...ids]]);
  return new Map(rows.map((r) => [r.id, r]));
}
