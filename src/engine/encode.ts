/**
 * Encoding text on demand: text → tokens → model run to the hook points (batched across concurrent
 * requests of the same model) → SAE codes per token (batched per dictionary) → sorted feature lists
 * and reconstruction quality. One model run serves every dictionary a request names.
 */
import type { Config } from '../config.js';
import type { DictionaryRow, ModelRow } from '../db/catalog.js';
import { AtlasError } from '../errors.js';
import { Batcher, type BatcherOptions } from './batching.js';
import type { EngineRegistry } from './registry.js';
import type { LoadedModel } from './model/types.js';
import { validateBatch, validateHooks } from './runtime/forward.js';
import { reconstructionMetrics, type ReconstructionMetrics } from './sae/metrics.js';
import type { SaeEncoding } from './sae/encoder.js';

export interface FeatureActivation {
  dictionaryId: string;
  index: number;
  activation: number;
}

export interface TokenFeatures {
  position: number;
  tokenId: number;
  text: string;
  isBos: boolean;
  features: FeatureActivation[];
}

export interface TextEncoding {
  dictionary: DictionaryRow;
  tokens: TokenFeatures[];
  topFeatures: FeatureActivation[];
  /** Over non-BOS tokens; l0 is their mean number of active features. */
  reconstruction: ReconstructionMetrics & { l0: number };
}

export interface Tokenized {
  ids: number[];
  texts: string[];
  bosPositions: Set<number>;
}

interface HookRequest {
  tokens: number[];
  hooks: string[];
}

/** [seq, d] rows of each hook for one sequence. */
type HookRows = Map<string, { data: Float32Array; d: number }>;

interface VectorRequest {
  x: Float32Array;
  n: number;
  topK: number;
}

export const MAX_TOP_K = 256;
export const MAX_VECTORS = 4096;

export class EncodingService {
  private modelBatchers = new Map<string, Batcher<HookRequest, HookRows>>();
  private encoderBatchers = new Map<string, Batcher<VectorRequest, SaeEncoding>>();

  constructor(
    readonly registry: EngineRegistry,
    private readonly config: Pick<Config, 'batchWaitMs' | 'batchTokens' | 'maxQueue' | 'requestTimeoutMs' | 'maxInputTokens' | 'maxInputChars' | 'batching'>,
  ) {}

  private options(budget: number): BatcherOptions {
    return { waitMs: this.config.batchWaitMs, budget, maxQueue: this.config.maxQueue, timeoutMs: this.config.requestTimeoutMs, merge: this.config.batching };
  }

  private modelBatcher(row: ModelRow, model: LoadedModel): Batcher<HookRequest, HookRows> {
    let b = this.modelBatchers.get(row.id);
    if (!b) {
      b = new Batcher<HookRequest, HookRows>(async (reqs) => {
        const hooks = [...new Set(reqs.flatMap((r) => r.hooks))];
        const out = await model.runHooks(reqs.map((r) => r.tokens), hooks);
        return reqs.map((r, b) => {
          const rows: HookRows = new Map();
          for (const h of r.hooks) {
            const { dims: [, S, d], data } = out.get(h)!;
            rows.set(h, { data: data.slice(b * S * d, (b * S + r.tokens.length) * d), d });
          }
          return rows;
        });
      }, (r) => r.tokens.length, this.options(this.config.batchTokens));
      this.modelBatchers.set(row.id, b);
    }
    return b;
  }

  private encoderBatcher(dict: DictionaryRow): Batcher<VectorRequest, SaeEncoding> {
    let b = this.encoderBatchers.get(dict.id);
    if (!b) {
      b = new Batcher<VectorRequest, SaeEncoding>(async (reqs) => {
        const encoder = await this.registry.encoder(dict);
        const n = reqs.reduce((s, r) => s + r.n, 0);
        const topK = Math.max(...reqs.map((r) => r.topK));
        const x = new Float32Array(n * dict.dIn);
        let off = 0;
        for (const r of reqs) {
          x.set(r.x, off * dict.dIn);
          off += r.n;
        }
        const enc = await encoder.encode(x, n, topK);
        off = 0;
        return reqs.map((r) => {
          const slice = (a: Int32Array | Float32Array, width: number) => a.slice(off * width, (off + r.n) * width);
          const part: SaeEncoding = {
            indices: slice(enc.indices, topK) as Int32Array,
            values: slice(enc.values, topK) as Float32Array,
            l0: slice(enc.l0, 1) as Int32Array,
            xHat: slice(enc.xHat, dict.dIn) as Float32Array,
          };
          off += r.n;
          return part;
        }).map((part, i) => narrowTopK(part, reqs[i].n, topK, reqs[i].topK));
      }, (r) => r.n, this.options(Math.max(1, this.config.batchTokens)));
      this.encoderBatchers.set(dict.id, b);
    }
    return b;
  }

  /**
   * Tokens as the model sees them, with the caps on characters and tokens applied. BOS follows the
   * catalog row, which `atlas model add --bos/--no-bos` can set to match how dictionaries were trained.
   */
  tokenize(model: LoadedModel, prependBos: boolean, text: string, truncate = false): Tokenized {
    if (text.length > this.config.maxInputChars) {
      throw new AtlasError('INPUT_TOO_LONG', `The text has ${text.length} characters; the limit is ${this.config.maxInputChars} (ATLAS_MAX_INPUT_CHARS).`, { characters: text.length, limit: this.config.maxInputChars });
    }
    if (text.length === 0) throw new AtlasError('BAD_USER_INPUT', 'The text is empty; give at least one character.');
    let ids = model.tokenizer.encode(text, { bos: prependBos });
    const limit = Math.min(this.config.maxInputTokens, model.info.contextLength);
    if (ids.length > limit) {
      if (!truncate) {
        throw new AtlasError('INPUT_TOO_LONG', `The text is ${ids.length} tokens; at most ${limit} fit (the model's context is ${model.info.contextLength}, ATLAS_MAX_INPUT_TOKENS is ${this.config.maxInputTokens}). Shorten it or pass truncate: true.`, { tokens: ids.length, limit });
      }
      ids = ids.slice(0, limit);
    }
    const bos = model.tokenizer.bosId;
    const bosPositions = new Set(prependBos && bos !== null && ids[0] === bos ? [0] : []);
    return { ids, texts: ids.map((id) => model.tokenizer.tokenText(id)), bosPositions };
  }

  async hookActivations(row: ModelRow, text: string, hooks: string[], truncate = false): Promise<{ tokens: Tokenized; rows: HookRows }> {
    const model = await this.registry.model(row);
    const wanted = validateHooks(hooks, model.info);
    const tokens = this.tokenize(model, row.prependBos, text, truncate);
    validateBatch([tokens.ids], model.info);
    const rows = await this.modelBatcher(row, model).submit({ tokens: tokens.ids, hooks: wanted });
    return { tokens, rows };
  }

  async encodeVectors(dict: DictionaryRow, vectors: number[][], topK: number): Promise<FeatureActivation[][]> {
    checkTopK(topK, dict);
    if (vectors.length > MAX_VECTORS) throw new AtlasError('INPUT_TOO_LONG', `At most ${MAX_VECTORS} vectors per request, got ${vectors.length}.`);
    const x = new Float32Array(vectors.length * dict.dIn);
    vectors.forEach((v, i) => {
      if (v.length !== dict.dIn) {
        throw new AtlasError('DIMENSION_MISMATCH', `Vector ${i} has ${v.length} values but dictionary "${dict.id}" reads vectors of width ${dict.dIn}.`, { vector: i, got: v.length, dIn: dict.dIn });
      }
      x.set(v, i * dict.dIn);
    });
    if (vectors.length === 0) return [];
    const enc = await this.encoderBatcher(dict).submit({ x, n: vectors.length, topK });
    return vectors.map((_, i) => activeFeatures(dict.id, enc, i, topK));
  }

  /** Runs the model once for all the dictionaries (which must share a model) and encodes each. */
  async encodeText(model: ModelRow, dicts: DictionaryRow[], text: string, topK: number, truncate = false): Promise<TextEncoding[]> {
    for (const d of dicts) {
      checkTopK(topK, d);
      if (d.modelId !== model.id) throw new AtlasError('BAD_USER_INPUT', `Dictionary "${d.id}" belongs to model "${d.modelId}", not "${model.id}"; encode dictionaries of one model per request.`);
    }
    const { tokens, rows } = await this.hookActivations(model, text, [...new Set(dicts.map((d) => d.hookPoint))], truncate);
    const n = tokens.ids.length;
    return Promise.all(dicts.map(async (dict) => {
      const { data: x, d } = rows.get(dict.hookPoint)!;
      if (d !== dict.dIn) {
        throw new AtlasError('DIMENSION_MISMATCH', `Dictionary "${dict.id}" reads vectors of width ${dict.dIn} but ${dict.hookPoint} of model "${model.id}" gives ${d}; it was trained on another model.`, { dIn: dict.dIn, hookWidth: d });
      }
      const enc = await this.encoderBatcher(dict).submit({ x, n, topK });
      const perToken: TokenFeatures[] = tokens.ids.map((tokenId, position) => ({
        position, tokenId, text: tokens.texts[position], isBos: tokens.bosPositions.has(position),
        features: activeFeatures(dict.id, enc, position, topK),
      }));
      const kept = perToken.filter((t) => !t.isBos).map((t) => t.position);
      return { dictionary: dict, tokens: perToken, topFeatures: strongest(perToken.filter((t) => !t.isBos), topK), reconstruction: quality(x, enc, kept, dict.dIn) };
    }));
  }
}

function checkTopK(topK: number, dict: DictionaryRow): void {
  if (!Number.isInteger(topK) || topK < 1 || topK > Math.min(MAX_TOP_K, dict.dSae)) {
    throw new AtlasError('BAD_USER_INPUT', `topK must be from 1 to ${Math.min(MAX_TOP_K, dict.dSae)}, got ${topK}.`);
  }
}

/** Keeps the first `k` of each row's `width` sorted slots. */
function narrowTopK(e: SaeEncoding, n: number, width: number, k: number): SaeEncoding {
  if (k === width) return e;
  const indices = new Int32Array(n * k);
  const values = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    indices.set(e.indices.subarray(r * width, r * width + k), r * k);
    values.set(e.values.subarray(r * width, r * width + k), r * k);
  }
  return { ...e, indices, values };
}

/** A row's sorted top-k slots without the empty (zero) ones. */
function activeFeatures(dictionaryId: string, e: SaeEncoding, row: number, k: number): FeatureActivation[] {
  const out: FeatureActivation[] = [];
  for (let j = 0; j < k; j++) {
    const v = e.values[row * k + j];
    if (v > 0) out.push({ dictionaryId, index: e.indices[row * k + j], activation: v });
  }
  return out;
}

/**
 * Features ranked by their highest activation over the tokens. Exact from per-token top-k lists: a
 * feature missing from its best token's list is beaten there by k others, each at least as strong.
 */
function strongest(tokens: TokenFeatures[], k: number): FeatureActivation[] {
  const best = new Map<number, FeatureActivation>();
  for (const t of tokens) {
    for (const f of t.features) {
      const cur = best.get(f.index);
      if (!cur || f.activation > cur.activation) best.set(f.index, f);
    }
  }
  return [...best.values()].sort((a, b) => b.activation - a.activation || a.index - b.index).slice(0, k);
}

function quality(x: Float32Array, e: SaeEncoding, positions: number[], d: number): TextEncoding['reconstruction'] {
  const xs = new Float32Array(positions.length * d);
  const hs = new Float32Array(positions.length * d);
  let l0 = 0;
  positions.forEach((p, i) => {
    xs.set(x.subarray(p * d, (p + 1) * d), i * d);
    hs.set(e.xHat.subarray(p * d, (p + 1) * d), i * d);
    l0 += e.l0[p];
  });
  if (positions.length === 0) return { mse: 0, normalizedMse: null, explainedVariance: null, cosine: 1, l0: 0 };
  return { ...reconstructionMetrics(xs, hs, positions.length), l0: l0 / positions.length };
}
