/**
 * Neuronpedia's published per-dictionary exports (neuronpedia-datasets `v1/<modelId>/<source>/`, as
 * its utils/neuronpedia-utils export-data.py writes them): `features/`, `activations/` and
 * `explanations/` folders of `batch-N.jsonl.gz` (or `.jsonl`), one database row per line, with
 * `index` a string of digits.
 * - features (Neuron rows): `maxActApprox` → max activation, `frac_nonzero` → density,
 *   `freq_hist_data_bar_values` (evenly spaced bar centres) and `…_bar_heights` → a histogram whose
 *   edges lie halfway between centres, `pos_str`/`pos_values` and `neg_str`/`neg_values` → logit lens.
 * - activations (Activation rows): `tokens`, `values`, `maxValue`, `maxValueTokenIndex`. Rows without
 *   a quantile bin (`binMin` absent, null or -1) are the feature's top examples, strongest first, at
 *   most TOP_EXAMPLES; rows sampled from a bin (`binMin` ≥ 0) go to the octave band of the atlas's
 *   quantile examples (./quantile-examples.ts) their maxValue falls in below the feature's maximum,
 *   at most PER_BAND per band, strongest first.
 * - explanations (Explanation rows): `description`, `typeName` (source), `explanationModelName` (author).
 * Token texts map to ids through the model's vocabulary; a text that is not one token gets id -1.
 * Examples come out as the catalog stores them: each distinct context (token texts) once, numbered in
 * the order first seen, and per example the positions and values where its per-token values are nonzero.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { AtlasError } from '../../errors.js';
import type { ExampleContext, FeatureExamples, FeatureLogitRow, FeatureStatsRow } from './dictionary-build.js';
import { BANDS, PER_BAND, octaveOf } from './quantile-examples.js';

/** Examples kept per feature, as `atlas build` keeps. */
export const TOP_EXAMPLES = 20;

export interface NeuronpediaExplanation {
  index: number;
  text: string;
  source: string;
  author: string | null;
}

export interface NeuronpediaExport {
  features: FeatureStatsRow[];
  contexts: ExampleContext[];
  examples: FeatureExamples[];
  /** Examples in all (of every feature and kind). */
  exampleCount: number;
  logits: FeatureLogitRow[];
  explanations: NeuronpediaExplanation[];
  /** Lines that could not be read, as "file line N: why". */
  problems: string[];
}

type Row = Record<string, unknown>;

/** An Activation row as read, with the values of every token of its context. */
interface DenseExample {
  tokens: string[];
  values: number[];
  maxValue: number;
  maxPosition: number;
}

/** Every row of a folder's batch files, in batch order, with where it came from. */
function readBatches(dir: string): { where: string; row: Row | null; problem?: string }[] {
  if (!existsSync(dir)) return [];
  const batchNo = (f: string) => Number(/batch-(\d+)/.exec(f)?.[1] ?? 0);
  const files = readdirSync(dir)
    .filter((f) => /\.jsonl(\.gz)?$/.test(f))
    .sort((a, b) => batchNo(a) - batchNo(b));
  const out: { where: string; row: Row | null; problem?: string }[] = [];
  for (const f of files) {
    const path = join(dir, f);
    let text: string;
    try {
      const raw = readFileSync(path);
      text = (f.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
    } catch (e) {
      throw new AtlasError(
        'BAD_FILE',
        `${path} cannot be read as ${f.endsWith('.gz') ? 'gzipped ' : ''}JSON lines: ${(e as Error).message}.`,
      );
    }
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      const where = `${path} line ${i + 1}`;
      try {
        const v: unknown = JSON.parse(line);
        if (typeof v !== 'object' || v === null || Array.isArray(v))
          out.push({ where, row: null, problem: 'expected a JSON object' });
        else out.push({ where, row: v as Row });
      } catch {
        out.push({ where, row: null, problem: 'not valid JSON' });
      }
    });
  }
  return out;
}

const numbers = (v: unknown): number[] | null =>
  Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x)) ? (v as number[]) : null;
const strings = (v: unknown): string[] | null =>
  Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : null;
const finite = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Histogram edges for evenly spaced bar centres: halfway between neighbours, half a step outside the ends. */
function edgesFromCentres(c: number[]): number[] {
  if (c.length === 1) return [c[0], c[0]];
  const step = (c[c.length - 1] - c[0]) / (c.length - 1);
  return [...c.map((v) => v - step / 2), c[c.length - 1] + step / 2];
}

export function readNeuronpediaExport(dir: string, dSae: number, tokenId: (text: string) => number): NeuronpediaExport {
  if (!['features', 'activations', 'explanations'].some((f) => existsSync(join(dir, f)))) {
    throw new AtlasError(
      'BAD_FILE',
      `${dir} holds none of Neuronpedia's export folders (features/, activations/, explanations/).`,
    );
  }
  const out: NeuronpediaExport = {
    features: [],
    contexts: [],
    examples: [],
    exampleCount: 0,
    logits: [],
    explanations: [],
    problems: [],
  };
  const contextIds = new Map<string, number>();
  const contextOf = (tokens: string[]): number => {
    const key = JSON.stringify(tokens);
    let id = contextIds.get(key);
    if (id === undefined) {
      contextIds.set(key, (id = out.contexts.length));
      out.contexts.push({ id, tokens, tokenIds: tokens.map(tokenId) });
    }
    return id;
  };
  const sparse = (e: DenseExample, band: number | null) => {
    const positions: number[] = [];
    e.values.forEach((v, p) => {
      if (v !== 0) positions.push(p);
    });
    return {
      context: contextOf(e.tokens),
      band,
      positions,
      values: positions.map((p) => e.values[p]),
      maxValue: e.maxValue,
      maxPosition: e.maxPosition,
    };
  };
  const index = (where: string, row: Row): number | null => {
    const raw = row.index;
    const i = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (Number.isInteger(i) && i >= 0 && i < dSae) return i;
    out.problems.push(
      `${where}: index ${JSON.stringify(raw ?? null)} is not a feature of this dictionary (0..${dSae - 1})`,
    );
    return null;
  };
  const each = (sub: string, f: (where: string, row: Row, i: number) => void) => {
    for (const { where, row, problem } of readBatches(join(dir, sub))) {
      if (!row) out.problems.push(`${where}: ${problem}`);
      else {
        const i = index(where, row);
        if (i !== null) f(where, row, i);
      }
    }
  };

  each('features', (where, row, idx) => {
    const max = finite(row.maxActApprox);
    const density = finite(row.frac_nonzero);
    if (max === null || density === null || density < 0 || density > 1) {
      out.problems.push(`${where}: needs maxActApprox and frac_nonzero (a fraction from 0 to 1)`);
      return;
    }
    const centres = numbers(row.freq_hist_data_bar_values) ?? [];
    const heights = numbers(row.freq_hist_data_bar_heights) ?? [];
    if (centres.length !== heights.length) {
      out.problems.push(`${where}: freq_hist_data_bar_values and freq_hist_data_bar_heights differ in length`);
      return;
    }
    out.features.push({
      idx,
      density,
      maxActivation: max,
      meanActivation: null,
      label: null,
      histogram: centres.length
        ? { edges: edgesFromCentres(centres), counts: heights.map(Math.round) }
        : { edges: [], counts: [] },
    });
    const lens = (s: unknown, v: unknown) => {
      const weights = numbers(v) ?? [];
      return (strings(s) ?? [])
        .slice(0, weights.length)
        .map((token, rank) => ({ token, tokenId: tokenId(token), weight: weights[rank] }));
    };
    const positive = lens(row.pos_str, row.pos_values);
    const negative = lens(row.neg_str, row.neg_values);
    if (positive.length + negative.length) out.logits.push({ featureIdx: idx, positive, negative });
  });

  const top = new Map<number, DenseExample[]>();
  const binned = new Map<number, DenseExample[]>();
  each('activations', (where, row, featureIdx) => {
    const tokens = strings(row.tokens);
    const values = numbers(row.values);
    if (!tokens || !values || tokens.length !== values.length || tokens.length === 0) {
      out.problems.push(`${where}: needs tokens and values of the same nonzero length`);
      return;
    }
    const maxValue = finite(row.maxValue) ?? Math.max(...values);
    const at = finite(row.maxValueTokenIndex);
    const maxPosition =
      at !== null && Number.isInteger(at) && at >= 0 && at < values.length ? at : values.indexOf(Math.max(...values));
    const lists = typeof row.binMin === 'number' && row.binMin >= 0 ? binned : top;
    const list = lists.get(featureIdx) ?? [];
    list.push({ tokens, values, maxValue, maxPosition });
    lists.set(featureIdx, list);
  });
  const strongestFirst = (a: DenseExample, b: DenseExample) => b.maxValue - a.maxValue;
  for (const [featureIdx, list] of top) {
    const kept = list.sort(strongestFirst).slice(0, TOP_EXAMPLES);
    out.examples.push({ featureIdx, kind: 'top', examples: kept.map((e) => sparse(e, null)) });
    out.exampleCount += kept.length;
  }
  const maxOf = new Map(out.features.map((f) => [f.idx, f.maxActivation]));
  for (const [featureIdx, list] of binned) {
    // The bands are read back against the feature's stored maximum, so they are cut from the same one.
    const max =
      maxOf.get(featureIdx) ??
      Math.max(...(top.get(featureIdx) ?? []).map((e) => e.maxValue), ...list.map((e) => e.maxValue));
    if (!(max > 0)) continue;
    const bands = Array.from({ length: BANDS }, (): DenseExample[] => []);
    for (const e of list.sort(strongestFirst)) {
      if (!(e.maxValue > 0)) continue;
      const band = Math.min(BANDS - 1, Math.max(0, BANDS - 1 - (octaveOf(max) - octaveOf(e.maxValue))));
      if (bands[band].length < PER_BAND) bands[band].push(e);
    }
    const examples = bands.flatMap((b, band) => b.map((e) => sparse(e, band)));
    if (examples.length === 0) continue;
    out.examples.push({ featureIdx, kind: 'quantile', examples });
    out.exampleCount += examples.length;
  }

  each('explanations', (where, row, idx) => {
    const text = row.description;
    if (typeof text !== 'string' || text.trim() === '') {
      out.problems.push(`${where}: needs a description`);
      return;
    }
    const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : null);
    out.explanations.push({
      index: idx,
      text,
      source: str(row.typeName) ?? 'neuronpedia',
      author: str(row.explanationModelName),
    });
  });
  return out;
}
