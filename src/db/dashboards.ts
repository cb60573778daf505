/**
 * Feature dashboards in the catalog: publishing what `atlas build` computed, and batched reads for
 * the API.
 *
 * Publishing happens in one transaction for every dictionary of a build: the features' statistic
 * columns and automatic labels, the dictionary's activation examples and logit lens (old rows
 * deleted, new ones inserted) and dictionaries.stats. Readers see the previous dashboards or the new
 * ones, never a mix, and an interrupted or failed publish leaves the previous ones intact. Labels a
 * person or tool set (label_source other than 'auto') are never overwritten. Rows travel by binary
 * COPY inside the transaction (src/db/copy.ts), which both backends accept alike.
 *
 * Stored a row per feature (docs/decisions/0007-compact-dashboard-rows.md), not a row per example or
 * logit token: a build keeps up to 45 examples and 20 logit tokens for each of tens of thousands of
 * features, while its examples come from a few hundred contexts and a feature is nonzero at few
 * positions of each. So each context (token texts and ids) is stored once per dictionary in
 * example_contexts; a feature's examples of one kind are one feature_examples row of packed arrays
 * (per example its context, band, largest activation and its position, and how many of the
 * (position, value) pairs in positions/values, where its per-token values are nonzero, are its own);
 * a feature's logit lens is one feature_logits row. Readers rebuild each example's dense per-token
 * values (0 elsewhere) and list everything in the order and form the API always returned.
 */
import type { CopyIn, Database, Query } from './client.js';
import { binaryTuples, type BinaryRows } from './copy.js';
import { faultPoint } from '../faults.js';
import type { DictionaryStats } from './schema.js';
import { featureKey, featureKeyJoin, featureKeyParams, type FeatureKey } from './features.js';
import { replaceCoActivations, type CoActivationSet } from './co-activations.js';

export interface FeatureStatsRow {
  idx: number;
  density: number;
  maxActivation: number;
  meanActivation: number | null;
  histogram: { edges: number[]; counts: number[] };
  /** Automatic label; null clears an earlier automatic one. */
  label: string | null;
}

/** A context examples were taken from, stored once per dictionary; `id` is the key its examples give. */
export interface ExampleContext {
  id: number;
  tokens: string[];
  tokenIds: ArrayLike<number>;
}

/** One example: its context's per-token values are `values` at `positions` and 0 elsewhere. */
export interface StoredExample {
  context: number;
  /** Quantile band (0 = lowest); ignored for top examples. */
  band: number | null;
  positions: ArrayLike<number>;
  /** Stored as float4, so the values read back are the float32 roundings of these (maxValue too). */
  values: ArrayLike<number>;
  maxValue: number;
  maxPosition: number;
}

/** A feature's examples of one kind as readers list them: top strongest first; quantile by band, then rank. */
export interface FeatureExamples {
  featureIdx: number;
  kind: 'top' | 'quantile';
  examples: StoredExample[];
}

export interface LogitTokenRow {
  tokenId: number;
  token: string;
  /** Stored as float4. */
  weight: number;
}

/** A feature's logit lens: promoted tokens highest weight first, suppressed ones lowest first. */
export interface FeatureLogitRow {
  featureIdx: number;
  positive: LogitTokenRow[];
  negative: LogitTokenRow[];
}

export interface DictionaryDashboard {
  dictionaryId: string;
  /** null keeps the dictionary's statistics (an import of dashboards computed elsewhere has none). */
  stats: DictionaryStats | null;
  features: Iterable<FeatureStatsRow>;
  /** Every context the examples refer to. */
  contexts: Iterable<ExampleContext>;
  examples: Iterable<FeatureExamples>;
  logits: Iterable<FeatureLogitRow>;
}

/** The feature_examples columns after dictionary_id, each array filled in one pass over the examples. */
function writeFeatureExamples(out: BinaryRows, { featureIdx, kind, examples }: FeatureExamples): void {
  const n = examples.length;
  const contexts = new Int32Array(n);
  const bands = new Int32Array(n);
  const maxValues = new Float32Array(n);
  const maxPositions = new Int32Array(n);
  const counts = new Int32Array(n);
  let pairs = 0;
  for (const e of examples) pairs += e.positions.length;
  const positions = new Int32Array(pairs);
  const values = new Float32Array(pairs);
  let at = 0;
  examples.forEach((e, i) => {
    contexts[i] = e.context;
    bands[i] = e.band ?? 0;
    maxValues[i] = e.maxValue;
    maxPositions[i] = e.maxPosition;
    counts[i] = e.positions.length;
    for (let j = 0; j < e.positions.length; j++, at++) {
      positions[at] = e.positions[j];
      values[at] = e.values[j];
    }
  });
  out
    .int4(featureIdx)
    .text(kind)
    .int4Array(contexts)
    .int4Array(kind === 'top' ? null : bands)
    .float4Array(maxValues)
    .int4Array(maxPositions)
    .int4Array(counts)
    .int4Array(positions)
    .float4Array(values);
}

async function publishOne(q: Query, copy: CopyIn, d: DictionaryDashboard): Promise<void> {
  const id = d.dictionaryId;
  // Statistics: copied into a scratch table, then one UPDATE that keeps labels a person set.
  await q(
    'CREATE TEMPORARY TABLE feature_stats_in (idx int, density real, max real, mean real, histogram jsonb, label ' +
      'text) ON COMMIT DROP',
  );
  await copy(
    'feature_stats_in',
    ['idx', 'density', 'max', 'mean', 'histogram', 'label'],
    binaryTuples(d.features, (out, r) =>
      out
        .row(6)
        .int4(r.idx)
        .float4(r.density)
        .float4(r.maxActivation)
        .float4(r.meanActivation)
        .jsonb(r.histogram)
        .text(r.label),
    ),
  );
  await q(
    `UPDATE features f SET density = u.density, max_activation = u.max, mean_activation = u.mean,
       histogram = u.histogram,
       label = CASE WHEN f.label IS NULL OR f.label_source = 'auto' THEN u.label ELSE f.label END,
       label_source = CASE WHEN f.label IS NULL OR f.label_source = 'auto' THEN CASE WHEN u.label IS NULL THEN NULL
       ELSE 'auto' END ELSE f.label_source END
     FROM feature_stats_in u WHERE f.dictionary_id = $1 AND f.idx = u.idx`,
    [id],
  );
  await q('DROP TABLE feature_stats_in');
  faultPoint('build:publish');
  await q('DELETE FROM example_contexts WHERE dictionary_id = $1', [id]);
  await q('DELETE FROM feature_examples WHERE dictionary_id = $1', [id]);
  await copy(
    'example_contexts',
    ['dictionary_id', 'context', 'tokens', 'token_ids'],
    binaryTuples(d.contexts, (out, c) => out.row(4).text(id).int4(c.id).jsonb(c.tokens).int4Array(c.tokenIds)),
  );
  await copy(
    'feature_examples',
    [
      'dictionary_id',
      'feature_idx',
      'kind',
      'contexts',
      'bands',
      'max_values',
      'max_positions',
      'counts',
      'positions',
      '"values"',
    ],
    binaryTuples(d.examples, (out, f) => writeFeatureExamples(out.row(10).text(id), f)),
  );
  await q('DELETE FROM feature_logits WHERE dictionary_id = $1', [id]);
  await copy(
    'feature_logits',
    [
      'dictionary_id',
      'feature_idx',
      'positive_token_ids',
      'positive_tokens',
      'positive_weights',
      'negative_token_ids',
      'negative_tokens',
      'negative_weights',
    ],
    binaryTuples(d.logits, (out, { featureIdx, positive, negative }) => {
      out.row(8).text(id).int4(featureIdx);
      for (const side of [positive, negative])
        out
          .int4Array(side.map((t) => t.tokenId))
          .jsonb(side.map((t) => t.token))
          .float4Array(side.map((t) => t.weight));
    }),
  );
  if (d.stats) await q('UPDATE dictionaries SET stats = $2::jsonb WHERE id = $1', [id, JSON.stringify(d.stats)]);
}

/**
 * Publishes every dictionary's dashboards in one transaction (all or nothing), with the
 * co-activation counts of the families built together (older ones touching these dictionaries go).
 */
export async function publishDashboards(
  database: Database,
  dashboards: DictionaryDashboard[],
  coActivations: CoActivationSet[] = [],
): Promise<void> {
  await database.transaction(async (q, copy) => {
    for (const d of dashboards) await publishOne(q, copy, d);
    await replaceCoActivations(
      q,
      dashboards.map((d) => d.dictionaryId),
      coActivations,
    );
  });
}

export interface ActivationExample {
  tokens: string[];
  tokenIds: number[];
  values: number[];
  maxValue: number;
  maxPosition: number;
}

export interface BandExample extends ActivationExample {
  band: number;
}

export interface FeatureLogitTokens {
  positive: { token: string; tokenId: number; weight: number }[];
  negative: { token: string; tokenId: number; weight: number }[];
}

const KEYS = featureKeyJoin('t', 'feature_idx');

interface FeatureExamplesDbRow {
  d: string;
  i: number;
  contexts: number[];
  bands: number[] | null;
  maxValues: number[];
  maxPositions: number[];
  counts: number[];
  positions: number[];
  values: number[];
  /** [context, tokens, token ids] of every context the row refers to. */
  ctx: [number, string[], number[]][];
}

/** Each feature's examples of a kind, in stored order, with dense per-token values; one query for all keys. */
async function examplesOf(
  database: Database,
  keys: readonly FeatureKey[],
  kind: 'top' | 'quantile',
): Promise<Map<string, BandExample[]>> {
  const out = new Map<string, BandExample[]>();
  if (keys.length === 0) return out;
  const rows = await database.query<FeatureExamplesDbRow>(
    `SELECT t.dictionary_id AS d, t.feature_idx AS i, t.contexts, t.bands, t.max_values AS "maxValues",
      t.max_positions AS "maxPositions", t.counts, t.positions, t."values",
      (SELECT jsonb_agg(jsonb_build_array(c.context, c.tokens, c.token_ids)) FROM example_contexts c
       WHERE c.dictionary_id = t.dictionary_id AND c.context = ANY(t.contexts)) AS ctx
     FROM feature_examples t ${KEYS} WHERE t.kind = $3`,
    [...featureKeyParams(keys), kind],
  );
  for (const r of rows) {
    const contexts = new Map((r.ctx ?? []).map(([id, tokens, tokenIds]) => [id, { tokens, tokenIds }]));
    let at = 0;
    const list = r.contexts.map((id, e): BandExample => {
      const c = contexts.get(id);
      if (!c) throw new Error(`feature_examples ${r.d}:${r.i} refers to context ${id}, which is not stored`);
      const values = new Array<number>(c.tokenIds.length).fill(0);
      for (const end = at + r.counts[e]; at < end; at++) values[r.positions[at]] = r.values[at];
      return {
        tokens: c.tokens,
        tokenIds: c.tokenIds,
        values,
        maxValue: r.maxValues[e],
        maxPosition: r.maxPositions[e],
        band: r.bands?.[e] ?? 0,
      };
    });
    out.set(featureKey({ dictionaryId: r.d, index: r.i }), list);
  }
  return out;
}

/** Top examples per feature, strongest first (empty before a build); one query for all keys. */
export async function getTopActivations(
  database: Database,
  keys: readonly FeatureKey[],
): Promise<Map<string, ActivationExample[]>> {
  const rows = await examplesOf(database, keys, 'top');
  return new Map([...rows].map(([k, list]) => [k, list.map(({ band: _, ...e }) => e)]));
}

/** Quantile-band examples per feature, by band (lowest first) and rank; one query for all keys. */
export async function getQuantileExamples(
  database: Database,
  keys: readonly FeatureKey[],
): Promise<Map<string, BandExample[]>> {
  return examplesOf(database, keys, 'quantile');
}

/** Promoted and suppressed tokens per feature; absent before a build or for models without an unembedding. */
export async function getLogitTokens(
  database: Database,
  keys: readonly FeatureKey[],
): Promise<Map<string, FeatureLogitTokens>> {
  const out = new Map<string, FeatureLogitTokens>();
  if (keys.length === 0) return out;
  const rows = await database.query<{
    d: string;
    i: number;
    pi: number[];
    pt: string[];
    pw: number[];
    ni: number[];
    nt: string[];
    nw: number[];
  }>(
    `SELECT t.dictionary_id AS d, t.feature_idx AS i, t.positive_token_ids AS pi, t.positive_tokens AS pt,
       t.positive_weights AS pw, t.negative_token_ids AS ni, t.negative_tokens AS nt, t.negative_weights AS nw
     FROM feature_logits t ${KEYS}`,
    featureKeyParams(keys),
  );
  const side = (ids: number[], tokens: string[], weights: number[]) =>
    ids.map((tokenId, r) => ({ token: tokens[r], tokenId, weight: weights[r] }));
  for (const r of rows)
    out.set(featureKey({ dictionaryId: r.d, index: r.i }), {
      positive: side(r.pi, r.pt, r.pw),
      negative: side(r.ni, r.nt, r.nw),
    });
  return out;
}
