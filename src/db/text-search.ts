/**
 * PostgreSQL full-text search (english configuration) over feature labels and explanation text.
 * The expressions and predicates repeat those of the GIN indexes in schema.ts so the planner uses
 * them. Queries go through plainto_/websearch_to_tsquery, which accept any user text without syntax
 * errors, so no user text is ever parsed as tsquery syntax. Ranks are ts_rank_cd normalised to [0, 1) (rank / (rank + 1)).
 */
import type { Database } from './client.js';
import { EXPLANATION_COLUMNS, type ExplanationRow } from './explanations.js';

export interface TextMatch {
  dictionaryId: string;
  index: number;
  rank: number;
  field: 'label' | 'explanation';
  /** The label or explanation that matched. */
  text: string;
}

/**
 * Features of the dictionaries whose label or any explanation contains any word of the query (OR:
 * the query is often a sentence to run through the model; ts_rank_cd favours texts matching more
 * of the words, closer together), best match per feature, at most `limit` features.
 */
export async function matchFeatureText(database: Database, query: string, dictionaryIds: readonly string[], limit: number): Promise<TextMatch[]> {
  if (dictionaryIds.length === 0) return [];
  const rows = await database.query<TextMatch>(
    `WITH q AS (SELECT replace(plainto_tsquery('english', $1)::text, ' & ', ' | ')::tsquery AS q),
     m AS (
       SELECT f.dictionary_id AS "dictionaryId", f.idx AS "index", ts_rank_cd(to_tsvector('english', f.label), q.q, 32)::float8 AS rank,
              'label' AS field, f.label AS text
       FROM features f, q
       WHERE f.label IS NOT NULL AND to_tsvector('english', f.label) @@ q.q AND f.dictionary_id = ANY($2::text[])
       UNION ALL
       SELECT e.dictionary_id, e.feature_idx, ts_rank_cd(to_tsvector('english', e.text), q.q, 32)::float8, 'explanation', e.text
       FROM explanations e, q
       WHERE to_tsvector('english', e.text) @@ q.q AND e.dictionary_id = ANY($2::text[])
     )
     SELECT * FROM (SELECT DISTINCT ON ("dictionaryId", "index") * FROM m ORDER BY "dictionaryId", "index", rank DESC, field DESC) best
     ORDER BY rank DESC, "dictionaryId", "index" LIMIT $3`,
    [query, [...dictionaryIds], limit],
  );
  return rows;
}

/** Explanations of the dictionaries matching the query, best first. */
export async function searchExplanationText(
  database: Database, query: string, dictionaryIds: readonly string[], limit: number,
): Promise<{ explanation: ExplanationRow; rank: number }[]> {
  if (dictionaryIds.length === 0) return [];
  const rows = await database.query<ExplanationRow & { rank: number }>(
    `WITH q AS (SELECT websearch_to_tsquery('english', $1) AS q)
     SELECT ${EXPLANATION_COLUMNS}, ts_rank_cd(to_tsvector('english', text), q.q, 32)::float8 AS rank
     FROM explanations e, q
     WHERE to_tsvector('english', text) @@ q.q AND dictionary_id = ANY($2::text[])
     ORDER BY rank DESC, id LIMIT $3`,
    [query, [...dictionaryIds], limit],
  );
  return rows.map(({ rank, ...explanation }) => ({ explanation, rank }));
}
