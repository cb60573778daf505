/**
 * Feature dashboards in the catalog: publishing what `atlas build` computed, and batched reads for
 * the API.
 *
 * Publishing happens in one transaction for every dictionary of a build: the features' statistic
 * columns and automatic labels, the dictionary's activation examples and logit tokens (old rows
 * deleted, new ones inserted) and dictionaries.stats. Readers see the previous dashboards or the new
 * ones, never a mix, and an interrupted or failed publish leaves the previous ones intact. Labels a
 * person or tool set (label_source other than 'auto') are never overwritten. Rows travel by binary
 * COPY inside the transaction (src/db/copy.ts), which both backends accept alike; per-token values
 * and token ids are stored as packed float4[]/int4[] (4 bytes a value, no JSON on either side).
 */
import type { CopyIn, Database, Query } from './client.js';
import { binaryTuples } from './copy.js';
import { faultPoint } from '../faults.js';
import type { DictionaryStats } from './schema.js';
import { featureKey, featureKeyJoin, featureKeyParams, type FeatureKey } from './features.js';
import { groupBy } from '../group-by.js';
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

export interface ExampleRow {
  featureIdx: number;
  kind: 'top' | 'quantile';
  band: number | null;
  rank: number;
  tokens: string[];
  tokenIds: ArrayLike<number>;
  /** Stored as float4, so the values read back are the float32 roundings of these. */
  values: ArrayLike<number>;
  maxValue: number;
  maxPosition: number;
}

export interface LogitRow {
  featureIdx: number;
  sign: 'positive' | 'negative';
  rank: number;
  tokenId: number;
  token: string;
  weight: number;
}

export interface DictionaryDashboard {
  dictionaryId: string;
  /** null keeps the dictionary's statistics (an import of dashboards computed elsewhere has none). */
  stats: DictionaryStats | null;
  features: Iterable<FeatureStatsRow>;
  examples: Iterable<ExampleRow>;
  logits: Iterable<LogitRow>;
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
  await q('DELETE FROM activation_examples WHERE dictionary_id = $1', [id]);
  await copy(
    'activation_examples',
    [
      'dictionary_id',
      'feature_idx',
      'kind',
      'band',
      'rank',
      'tokens',
      'token_ids',
      '"values"',
      'max_value',
      'max_position',
    ],
    binaryTuples(d.examples, (out, e) =>
      out
        .row(10)
        .text(id)
        .int4(e.featureIdx)
        .text(e.kind)
        .int4(e.band)
        .int4(e.rank)
        .jsonb(e.tokens)
        .int4Array(e.tokenIds)
        .float4Array(e.values)
        .float4(e.maxValue)
        .int4(e.maxPosition),
    ),
  );
  await q('DELETE FROM logit_tokens WHERE dictionary_id = $1', [id]);
  await copy(
    'logit_tokens',
    ['dictionary_id', 'feature_idx', 'sign', 'rank', 'token_id', 'token', 'weight'],
    binaryTuples(d.logits, (out, l) =>
      out.row(7).text(id).int4(l.featureIdx).text(l.sign).int4(l.rank).int4(l.tokenId).text(l.token).float4(l.weight),
    ),
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

type ExampleDbRow = ActivationExample & { d: string; i: number; band: number | null };

async function examplesOf(
  database: Database,
  keys: readonly FeatureKey[],
  kind: 'top' | 'quantile',
): Promise<Map<string, ExampleDbRow[]>> {
  if (keys.length === 0) return new Map();
  const rows = await database.query<ExampleDbRow>(
    `SELECT t.dictionary_id AS d, t.feature_idx AS i, t.band, t.tokens, t.token_ids AS "tokenIds", t."values",
      t.max_value AS "maxValue", t.max_position AS "maxPosition"
     FROM activation_examples t ${KEYS} WHERE t.kind = $3 ORDER BY t.dictionary_id, t.feature_idx, t.band NULLS
     FIRST, t.rank`,
    [...featureKeyParams(keys), kind],
  );
  return groupBy(rows, (r) => featureKey({ dictionaryId: r.d, index: r.i }));
}

const strip = ({ tokens, tokenIds, values, maxValue, maxPosition }: ExampleDbRow): ActivationExample => ({
  tokens,
  tokenIds,
  values,
  maxValue,
  maxPosition,
});

/** Top examples per feature, strongest first (empty before a build); one query for all keys. */
export async function getTopActivations(
  database: Database,
  keys: readonly FeatureKey[],
): Promise<Map<string, ActivationExample[]>> {
  const rows = await examplesOf(database, keys, 'top');
  return new Map([...rows].map(([k, list]) => [k, list.map(strip)]));
}

/** Quantile-band examples per feature, by band (lowest first) and rank; one query for all keys. */
export async function getQuantileExamples(
  database: Database,
  keys: readonly FeatureKey[],
): Promise<Map<string, BandExample[]>> {
  const rows = await examplesOf(database, keys, 'quantile');
  return new Map([...rows].map(([k, list]) => [k, list.map((r) => ({ ...strip(r), band: r.band ?? 0 }))]));
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
    sign: 'positive' | 'negative';
    token: string;
    tokenId: number;
    weight: number;
  }>(
    `SELECT t.dictionary_id AS d, t.feature_idx AS i, t.sign, t.token, t.token_id AS "tokenId", t.weight
     FROM logit_tokens t ${KEYS} ORDER BY t.dictionary_id, t.feature_idx, t.sign, t.rank`,
    featureKeyParams(keys),
  );
  for (const r of rows) {
    const k = featureKey({ dictionaryId: r.d, index: r.i });
    let entry = out.get(k);
    if (!entry) out.set(k, (entry = { positive: [], negative: [] }));
    entry[r.sign].push({ token: r.token, tokenId: r.tokenId, weight: r.weight });
  }
  return out;
}
