/**
 * PostgreSQL full-text search (english configuration) over feature labels and explanation text.
 * The expressions and predicates repeat those of the GIN indexes in schema.ts so the planner uses
 * them. User text is never parsed as tsquery syntax: it goes through to_tsvector or
 * websearch_to_tsquery, which accept any text. Ranks are ts_rank_cd normalised to [0, 1) (rank / (rank + 1)).
 *
 * Bounded work: matching and ts_rank_cd cost grows with (query terms × matching rows), so a pasted
 * page of text could hold the database for minutes. A query keeps at most MAX_SEARCH_TERMS distinct
 * lexemes (the first ones in the text, from PostgreSQL's own parser and stemmer), none longer than
 * MAX_SEARCH_TERM_CHARS.
 */
import type { Database } from './client.js';
import { EXPLANATION_COLUMNS, type ExplanationRow } from './explanations.js';
import { MAX_SEARCH_TERMS, MAX_SEARCH_TERM_CHARS } from '../config.js';

/**
 * SQL for a tsquery joining with `op` the first `maxTerms` distinct lexemes of the text in `param`; each
 * lexeme is quoted as a tsquery literal (backslash and quote escaped), so it is taken verbatim. NULL
 * (matching nothing) when the text has no lexeme (only stop words or punctuation).
 */
function boundedTsquery(param: string, op: '|' | '&', maxTerms: number): string {
  const quoted = `'''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || ''''`;
  return `(SELECT string_agg(${quoted}, ' ${op} ' ORDER BY first)::tsquery
     FROM (SELECT lexeme, positions[1] AS first FROM unnest(to_tsvector('english', ${param}))
           WHERE length(lexeme) <= ${MAX_SEARCH_TERM_CHARS} ORDER BY positions[1], lexeme LIMIT ${maxTerms}) t)`;
}

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
export async function matchFeatureText(
  database: Database,
  query: string,
  dictionaryIds: readonly string[],
  limit: number,
  maxTerms = MAX_SEARCH_TERMS,
): Promise<TextMatch[]> {
  if (dictionaryIds.length === 0) return [];
  const rows = await database.query<TextMatch>(
    `WITH q AS (SELECT ${boundedTsquery('$1', '|', maxTerms)} AS q),
     m AS (
       SELECT f.dictionary_id AS "dictionaryId", f.idx AS "index", ts_rank_cd(to_tsvector('english', f.label), q.q,
       32)::float8 AS rank,
              'label' AS field, f.label AS text
       FROM features f, q
       WHERE f.label IS NOT NULL AND to_tsvector('english', f.label) @@ q.q AND f.dictionary_id = ANY($2::text[])
       UNION ALL
       SELECT e.dictionary_id, e.feature_idx, ts_rank_cd(to_tsvector('english', e.text), q.q, 32)::float8,
       'explanation', e.text
       FROM explanations e, q
       WHERE to_tsvector('english', e.text) @@ q.q AND e.dictionary_id = ANY($2::text[])
     )
     SELECT * FROM (SELECT DISTINCT ON ("dictionaryId", "index") * FROM m ORDER BY "dictionaryId", "index", rank
     DESC, field DESC) best
     ORDER BY rank DESC, "dictionaryId", "index" LIMIT $3`,
    [query, [...dictionaryIds], limit],
  );
  return rows;
}

/**
 * Explanations of the dictionaries matching the query (web search syntax: "phrases", or, -word), best
 * first. A query of more than `maxTerms` terms falls back to all of its first `maxTerms` distinct lexemes.
 */
export async function searchExplanationText(
  database: Database,
  query: string,
  dictionaryIds: readonly string[],
  limit: number,
  maxTerms = MAX_SEARCH_TERMS,
): Promise<{ explanation: ExplanationRow; rank: number }[]> {
  if (dictionaryIds.length === 0) return [];
  // numnode counts operands and operators: n terms joined by n - 1 operators, plus any NOTs.
  const rows = await database.query<ExplanationRow & { rank: number }>(
    `WITH w AS (SELECT websearch_to_tsquery('english', $1) AS w),
     q AS (SELECT CASE WHEN numnode(w.w) < ${2 * maxTerms} THEN w.w
                       ELSE ${boundedTsquery('$1', '&', maxTerms)} END AS q FROM w)
     SELECT ${EXPLANATION_COLUMNS}, ts_rank_cd(to_tsvector('english', text), q.q, 32)::float8 AS rank
     FROM explanations e, q
     WHERE to_tsvector('english', text) @@ q.q AND dictionary_id = ANY($2::text[])
     ORDER BY rank DESC, id LIMIT $3`,
    [query, [...dictionaryIds], limit],
  );
  return rows.map(({ rank, ...explanation }) => ({ explanation, rank }));
}
