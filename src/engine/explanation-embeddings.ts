/**
 * Vector search over explanation text, for when an embedding model is configured. No implementation
 * ships yet: Services.explanationEmbedder is null and searchExplanations uses full text only. An
 * implementation owns its embeddings (computing them for new explanations and indexing them).
 */
export interface ExplanationEmbedder {
  /** Shown in logs and serverInfo-like diagnostics, e.g. the embedding model's name. */
  readonly name: string;
  /** Explanations of the given dictionaries nearest to the query text, best first. */
  nearest(query: string, dictionaryIds: readonly string[], k: number): Promise<{ explanationId: number; similarity: number }[]>;
}

/** Smoothing constant of reciprocal-rank fusion (the usual 60): damps the gap between ranks 1 and 2. */
const RRF_K = 60;

/**
 * Reciprocal-rank fusion: score(id) = Σ over rankings of 1 / (RRF_K + rank), rank from 1. It merges
 * full-text and vector rankings without calibrating their incomparable scores.
 */
export function fuseRankings(rankings: readonly (readonly number[])[]): { id: number; score: number }[] {
  const scores = new Map<number, number>();
  for (const ranking of rankings) ranking.forEach((id, r) => scores.set(id, (scores.get(id) ?? 0) + 1 / (RRF_K + r + 1)));
  return [...scores].map(([id, score]) => ({ id, score })).sort((a, b) => b.score - a.score || a.id - b.id);
}
