/**
 * Search for features by a text: what the model does with the text (which features fire on it, which
 * decoder directions point where its activations point) blended with what people and tools wrote
 * about features (labels, explanations). Also full-text search over explanations.
 *
 * Feature score = W_ACTIVATION · activation + W_TEXT · text + W_COSINE · cosine, each signal in [0, 1]:
 * - activation = strength · specificity. strength is the feature's highest activation on a non-BOS
 *   token of the query, divided by its corpus maximum (features.max_activation, after `atlas build`)
 *   and capped at 1, or, before a build, by the highest activation of any feature of its dictionary on
 *   the query. specificity = clamp(ln(density) / ln(DENSITY_SPECIFIC), 0, 1): 1 for features active on
 *   at most 1 in 1,000 tokens, falling to 0 for one active on every token, so features that fire on
 *   nearly everything do not crowd the top; a null density (not built yet) counts as 1 (no evidence).
 * - cosine = max(0, cosine of the decoder row to the query's mean activation at the dictionary's hook,
 *   BOS excluded), for the HNSW index's nearest rows and the strongest other candidates.
 * - text = ts_rank_cd of the best matching label or explanation, normalised to [0, 1).
 * Text matches weigh almost as much as firing because a person's description is direct evidence;
 * decoder cosine to a mean activation is a weak, diffuse signal, so it mostly breaks ties.
 */
import type { Database } from '../db/client.js';
import { listDictionaries, getModels, requireDictionary, requireModel, type DictionaryRow } from '../db/catalog.js';
import { getDecoders, getFeatures, featureKey, type FeatureKey, type FeatureRow } from '../db/features.js';
import { nearestFeatures } from '../db/nearest.js';
import { matchFeatureText, searchExplanationText, type TextMatch } from '../db/text-search.js';
import type { ExplanationRow } from '../db/explanations.js';
import { AtlasError } from '../errors.js';
import { groupBy } from '../group-by.js';
import type { EncodingService } from './encode.js';

export const W_ACTIVATION = 1;
export const W_TEXT = 0.8;
export const W_COSINE = 0.3;
export const DENSITY_SPECIFIC = 1e-3;
/** Features kept per token when encoding the query; more than any useful result list needs. */
const PER_TOKEN_TOP_K = 32;
export const MAX_SEARCH_RESULTS = 100;

export type MatchSignal = 'ACTIVATION' | 'DECODER_COSINE' | 'TEXT';

export interface MatchReason {
  signal: MatchSignal;
  /** The raw measurement: activation value, cosine, or full-text rank. */
  value: number;
  detail: string;
}

export interface FeatureHit {
  feature: FeatureRow;
  score: number;
  reasons: MatchReason[];
}

/** A dictionary a search left out because its files (or its model's) cannot be loaded. */
export interface SkippedDictionary {
  dictionary: string;
  code: string;
  message: string;
}

/** Failures of one dictionary's or model's files: the search goes on without them. */
const SKIPPABLE = new Set(['BAD_FILE', 'ARTIFACT_MISSING', 'NOT_FOUND', 'UNSUPPORTED', 'DEVICE_UNAVAILABLE']);

async function orSkip(dicts: DictionaryRow[], skipped: SkippedDictionary[], work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (e) {
    if (!(e instanceof AtlasError) || !SKIPPABLE.has(e.code)) throw e;
    for (const d of dicts) skipped.push({ dictionary: d.id, code: e.code, message: e.message });
  }
}

export interface SearchScope {
  model?: string | null;
  dictionary?: string | null;
}

/** The ready dictionaries a search covers: one, those of a model, or all. */
export async function resolveScope(database: Database, scope: SearchScope): Promise<DictionaryRow[]> {
  if (scope.dictionary) {
    const d = await requireDictionary(database, scope.dictionary);
    if (scope.model && d.modelId !== scope.model) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        `Dictionary "${d.id}" belongs to model "${d.modelId}", not "${scope.model}"; give one of model or dictionary.`,
      );
    }
    return [d];
  }
  if (scope.model) return listDictionaries(database, (await requireModel(database, scope.model)).id);
  return listDictionaries(database);
}

function checkQuery(query: string): void {
  if (query.trim() === '')
    throw new AtlasError('BAD_USER_INPUT', 'The search query is empty; type a word or a phrase.');
}

export function specificity(density: number | null): number {
  if (density === null) return 1;
  if (density <= 0) return 1;
  return Math.min(1, Math.max(0, Math.log(density) / Math.log(DENSITY_SPECIFIC)));
}

interface Firing {
  activation: number;
  token: string;
  position: number;
}

interface QueryRun {
  /** Per dictionary: each active feature's strongest firing on a non-BOS token. */
  firings: Map<string, Map<number, Firing>>;
  /** Per dictionary: the mean non-BOS activation at its hook (absent when the query is only BOS). */
  means: Map<string, Float32Array>;
}

/**
 * Runs the query through each model once per BOS policy and through every dictionary of the scope that
 * has encoder weights (one stored without them still takes part through its labels and explanations).
 */
async function runQuery(
  database: Database,
  encoding: EncodingService,
  dicts: DictionaryRow[],
  query: string,
  skipped: SkippedDictionary[],
): Promise<QueryRun> {
  const firings = new Map<string, Map<number, Firing>>();
  const means = new Map<string, Float32Array>();
  const withWeights = dicts.filter((d) => d.artifacts || d.weightsPath);
  const models = new Map(
    (await getModels(database, [...new Set(withWeights.map((d) => d.modelId))])).map((m) => [m.id, m]),
  );
  const runs = groupBy(withWeights, (d) => `${d.modelId}\0${d.prependBos}`);
  await Promise.all(
    [...runs.values()].map((group) =>
      orSkip(group, skipped, async () => {
        const { modelId, prependBos } = group[0];
        const hooks = [...new Set(group.map((d) => d.hookPoint))];
        const { tokens, rows } = await encoding.hookActivations(models.get(modelId)!, query, hooks, true, prependBos);
        const kept = tokens.ids.map((_, p) => p).filter((p) => !tokens.bosPositions.has(p));
        if (kept.length === 0) return;
        await Promise.all(
          group.map((dict) =>
            orSkip([dict], skipped, async () => {
              const { data, d } = rows.get(dict.hookPoint)!;
              const vectors = kept.map((p) => Array.from(data.subarray(p * d, (p + 1) * d)));
              const mean = new Float32Array(d);
              for (const v of vectors) for (let j = 0; j < d; j++) mean[j] += v[j] / vectors.length;
              means.set(dict.id, mean);
              const perToken = await encoding.encodeVectors(dict, vectors, Math.min(PER_TOKEN_TOP_K, dict.dSae));
              const best = new Map<number, Firing>();
              perToken.forEach((features, i) => {
                for (const f of features) {
                  const cur = best.get(f.index);
                  if (!cur || f.activation > cur.activation)
                    best.set(f.index, { activation: f.activation, token: tokens.texts[kept[i]], position: kept[i] });
                }
              });
              firings.set(dict.id, best);
            }),
          ),
        );
      }),
    ),
  );
  return { firings, means };
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

const fmt = (v: number) => Number(v.toPrecision(4)).toString();

/** Dictionaries whose files cannot be loaded are searched by text only and listed in `skipped`. */
export async function searchFeatures(
  database: Database,
  encoding: EncodingService,
  args: SearchScope & { query: string; first: number },
  efSearch?: number,
  skipped: SkippedDictionary[] = [],
): Promise<FeatureHit[]> {
  checkQuery(args.query);
  const dicts = await resolveScope(database, args);
  if (dicts.length === 0) return [];
  const pool = Math.min(MAX_SEARCH_RESULTS, 3 * args.first);
  const dictIds = dicts.map((d) => d.id);
  const [run, text] = await Promise.all([
    runQuery(database, encoding, dicts, args.query, skipped),
    matchFeatureText(database, args.query, dictIds, pool),
  ]);

  // Cosine candidates: one index scan per dictionary, grouped by hook so each group shares a mean.
  const byHook = groupBy(
    dicts.filter((d) => run.means.has(d.id)),
    (d) => `${d.modelId}\u0000${d.hookPoint}`,
  );
  const neighbors = (
    await Promise.all(
      [...byHook.values()].map((group) => {
        const mean = run.means.get(group[0].id)!;
        if (!mean.some((v) => v !== 0)) return [];
        return nearestFeatures(database, {
          dictionaries: group,
          dIn: group[0].dIn,
          vector: Array.from(mean),
          k: pool,
          efSearch,
        });
      }),
    )
  ).flat();

  const candidates = new Map<string, FeatureKey>();
  const add = (k: FeatureKey) => candidates.set(featureKey(k), { dictionaryId: k.dictionaryId, index: k.index });
  for (const [dictionaryId, best] of run.firings) for (const index of best.keys()) add({ dictionaryId, index });
  text.forEach(add);
  neighbors.forEach(add);
  const keys = [...candidates.values()];
  const rows = await getFeatures(database, keys);

  const textByKey = new Map<string, TextMatch>(text.map((t) => [featureKey(t), t]));
  const topOnQuery = new Map(
    [...run.firings].map(([id, best]) => [id, Math.max(0, ...[...best.values()].map((f) => f.activation))]),
  );
  const dictById = new Map(dicts.map((d) => [d.id, d]));

  // Pass 1: activation and text, for every candidate.
  const hits: FeatureHit[] = [];
  for (const key of keys) {
    const feature = rows.get(featureKey(key));
    if (!feature) continue;
    const reasons: MatchReason[] = [];
    let score = 0;
    const firing = run.firings.get(key.dictionaryId)?.get(key.index);
    if (firing) {
      const max = feature.maxActivation && feature.maxActivation > 0 ? feature.maxActivation : null;
      const strength = Math.min(1, firing.activation / (max ?? topOnQuery.get(key.dictionaryId)!));
      const spec = specificity(feature.density);
      score += W_ACTIVATION * strength * spec;
      reasons.push({
        signal: 'ACTIVATION',
        value: firing.activation,
        detail:
          `fires ${fmt(firing.activation)} on ${JSON.stringify(firing.token)} (position ${firing.position}), ` +
          (max
            ? `${fmt(100 * strength)}% of its corpus maximum ${fmt(max)}`
            : `${fmt(100 * strength)}% of the strongest feature of ${key.dictionaryId} on the query`) +
          (feature.density === null
            ? '; density not built yet'
            : `; density ${fmt(feature.density)} (weight ${fmt(spec)})`),
      });
    }
    const t = textByKey.get(featureKey(key));
    if (t) {
      score += W_TEXT * t.rank;
      reasons.push({
        signal: 'TEXT',
        value: t.rank,
        detail: `${t.field} matches: ${JSON.stringify(t.text.length > 160 ? `${t.text.slice(0, 157)}...` : t.text)}`,
      });
    }
    hits.push({ feature, score, reasons });
  }
  hits.sort(byScore);

  // Pass 2: cosine for the index's neighbours (known) and the `pool` best so far (computed from their
  // decoders); a long query can make thousands of features fire, and fetching every decoder would
  // cost more than the rest of the search while cosine (weight 0.3) rarely lifts one from far below.
  const known = new Map(neighbors.map((n) => [featureKey(n), n.cosine]));
  const decoders = await getDecoders(
    database,
    hits
      .slice(0, pool)
      .filter((h) => !known.has(featureKey(h.feature)))
      .map((h) => h.feature),
  );
  for (const h of hits) {
    const key = featureKey(h.feature);
    const mean = run.means.get(h.feature.dictionaryId);
    const decoder = decoders.get(key);
    const c = known.get(key) ?? (mean && decoder ? cosine(decoder, mean) : 0);
    if (c > 0) {
      h.score += W_COSINE * c;
      h.reasons.splice(h.reasons[0]?.signal === 'ACTIVATION' ? 1 : 0, 0, {
        signal: 'DECODER_COSINE',
        value: c,
        detail:
          `decoder cosine ${fmt(c)} to the query's mean ${dictById.get(h.feature.dictionaryId)!.hookPoint} ` +
          `activation`,
      });
    }
  }
  return hits
    .filter((h) => h.reasons.length > 0)
    .sort(byScore)
    .slice(0, args.first);
}

function byScore(a: FeatureHit, b: FeatureHit): number {
  return (
    b.score - a.score ||
    a.feature.dictionaryId.localeCompare(b.feature.dictionaryId) ||
    a.feature.index - b.feature.index
  );
}

export interface ExplanationHit {
  explanation: ExplanationRow;
  score: number;
}

/** Explanations matching the query, by full-text rank. */
export async function searchExplanations(
  database: Database,
  args: SearchScope & { query: string; first: number },
): Promise<ExplanationHit[]> {
  checkQuery(args.query);
  const dictIds = (await resolveScope(database, args)).map((d) => d.id);
  const text = await searchExplanationText(database, args.query, dictIds, args.first);
  return text.map(({ explanation, rank }) => ({ explanation, score: rank }));
}
