/**
 * Encoding text on demand: text → tokens → model run to the hook points (batched across concurrent
 * requests of the same model) → SAE codes per token (batched per dictionary) → sorted feature lists
 * and reconstruction quality (each computed only for callers that read it). One model run serves every
 * dictionary a request names that shares a BOS policy; dictionaries trained with and without BOS get
 * one run each, since BOS changes every activation.
 * Generation's model calls (modelStep) join the same per-model queue one step at a time, so they share
 * its bound and deadline and a long generation leaves room for encode requests between its steps.
 */
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import type { DictionaryRow, ModelRow } from '../db/catalog.js';
import { AtlasError } from '../errors.js';
import { checkBound } from './bounds.js';
import { Batcher, BatcherPool, type BatcherOptions, type QueueStats } from '../engine/batching.js';
import { CatalogCache } from './catalog-cache.js';
import type { EngineRegistry } from './registry.js';
import { residentKey } from './freshness.js';
import type { LoadedModel } from '../engine/model/types.js';
import { validateBatch, validateHooks } from '../engine/runtime/forward.js';
import { reconstructionMetrics, type ReconstructionMetrics } from '../engine/sae/metrics.js';
import { narrowEncoding, type SaeEncoding } from '../engine/sae/encoder.js';

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
  /** `features` packed: its indices and activations, in its order. */
  featureIndices: number[];
  featureActivations: number[];
}

export interface TextEncoding {
  dictionary: DictionaryRow;
  tokens: TokenFeatures[];
  /** Null when not asked for. */
  topFeatures: FeatureActivation[] | null;
  /** Over non-BOS tokens; l0 is their mean number of active features. Null when not asked for. */
  reconstruction: (ReconstructionMetrics & { l0: number }) | null;
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

/** One decoding step of a generation: runs alone, in its turn in the model's queue. */
interface StepRequest {
  tokens: number;
  run: () => Promise<void>;
}

type ModelRequest = HookRequest | StepRequest;

/** [seq, d] rows of each hook for one sequence. */
type HookRows = Map<string, { data: Float32Array; d: number }>;

interface VectorRequest {
  x: Float32Array;
  n: number;
  topK: number;
  /** Whether the caller uses the reconstruction; the batch decodes when any of its requests does. */
  reconstruct: boolean;
}

/** The parts of a TextEncoding a caller reads; the others are left null. */
export interface EncodingParts {
  reconstruction: boolean;
  topFeatures: boolean;
}

export const MAX_TOP_K = 256;
export const MAX_VECTORS = 4096;

export class EncodingService {
  // Keyed by resident key: a version's batcher goes once idle after its model or encoder leaves memory.
  private readonly modelBatchers: BatcherPool<ModelRequest, HookRows | null>;
  private readonly encoderBatchers: BatcherPool<VectorRequest, SaeEncoding>;
  constructor(
    readonly registry: EngineRegistry,
    private readonly config: Pick<
      Config,
      | 'batchTokens'
      | 'batchVectors'
      | 'maxQueue'
      | 'requestTimeoutMs'
      | 'maxInputTokens'
      | 'maxInputChars'
      | 'batching'
      | 'maxGenerateTokens'
    >,
    /** The catalog rows the encode entry points read, cached briefly (see catalog-cache.ts). */
    readonly catalog = new CatalogCache(),
  ) {
    const live = () => registry.resident.liveKeys();
    this.modelBatchers = new BatcherPool(live);
    this.encoderBatchers = new BatcherPool(live);
  }

  /** ATLAS_MAX_GENERATE_TOKENS: the most tokens one generation may ask for. */
  get maxGenerateTokens(): number {
    return this.config.maxGenerateTokens;
  }

  /** Batch counts and queue depth of the model runs and of the encoder runs, summed over models and dictionaries. */
  queues(): { model: QueueStats; encoder: QueueStats } {
    return { model: this.modelBatchers.stats(), encoder: this.encoderBatchers.stats() };
  }

  private options(budget: number): BatcherOptions {
    return {
      budget,
      maxQueue: this.config.maxQueue,
      timeoutMs: this.config.requestTimeoutMs,
      merge: this.config.batching,
      gather: this.config.batching,
    };
  }

  private modelBatcher(row: ModelRow): Batcher<ModelRequest, HookRows | null> {
    return this.modelBatchers.get(
      residentKey('model', row),
      () =>
        new Batcher<ModelRequest, HookRows | null>(
          async (all) => {
            for (const r of all) if ('run' in r) await r.run();
            const reqs = all.filter((r): r is HookRequest => !('run' in r));
            if (reqs.length === 0) return all.map(() => null);
            const hooks = [...new Set(reqs.flatMap((r) => r.hooks))];
            const out = await this.registry.withModel(row, (model) =>
              model.runHooks(
                reqs.map((r) => r.tokens),
                hooks,
              ),
            );
            const results = new Map<ModelRequest, HookRows>();
            reqs.forEach((r, b) => {
              const rows: HookRows = new Map();
              for (const h of r.hooks) {
                const {
                  dims: [, S, d],
                  data,
                } = out.get(h)!;
                // A view of the batch's output, not a copy: the batch lives as long as its requests.
                rows.set(h, { data: data.subarray(b * S * d, (b * S + r.tokens.length) * d), d });
              }
              results.set(r, rows);
            });
            return all.map((r) => results.get(r) ?? null);
          },
          (r) => ('run' in r ? r.tokens : r.tokens.length),
          this.options(this.config.batchTokens),
        ),
    );
  }

  private encoderBatcher(dict: DictionaryRow): Batcher<VectorRequest, SaeEncoding> {
    return this.encoderBatchers.get(
      residentKey('encoder', dict),
      () =>
        new Batcher<VectorRequest, SaeEncoding>(
          async (reqs) => {
            const n = reqs.reduce((s, r) => s + r.n, 0);
            const topK = Math.max(...reqs.map((r) => r.topK));
            const x = new Float32Array(n * dict.dIn);
            let off = 0;
            for (const r of reqs) {
              x.set(r.x, off * dict.dIn);
              off += r.n;
            }
            const enc = await this.registry.withEncoder(dict, (encoder) =>
              encoder.encode(x, n, topK, { reconstruct: reqs.some((r) => r.reconstruct) }),
            );
            off = 0;
            return reqs
              .map((r) => {
                const slice = (a: Int32Array | Float32Array, width: number) =>
                  a.slice(off * width, (off + r.n) * width);
                const part: SaeEncoding = {
                  width: topK,
                  indices: slice(enc.indices, topK) as Int32Array,
                  values: slice(enc.values, topK) as Float32Array,
                  l0: slice(enc.l0, 1) as Int32Array,
                  xHat: enc.xHat && (slice(enc.xHat, dict.dIn) as Float32Array),
                };
                off += r.n;
                return part;
              })
              .map((part, i) => narrowEncoding(part, reqs[i].n, reqs[i].topK));
          },
          (r) => r.n,
          this.options(this.config.batchVectors),
        ),
    );
  }

  /**
   * Tokens as the model sees them, with the caps on characters and tokens applied. BOS follows the
   * dictionary being served (its row's prepend_bos), or the model row's default for raw activations.
   */
  tokenize(model: LoadedModel, prependBos: boolean, text: string, truncate = false): Tokenized {
    if (text.length > this.config.maxInputChars) {
      throw new AtlasError(
        'INPUT_TOO_LONG',
        `The text has ${text.length} characters; the limit is ${this.config.maxInputChars} (ATLAS_MAX_INPUT_CHARS).`,
        { characters: text.length, limit: this.config.maxInputChars },
      );
    }
    if (text.length === 0) throw new AtlasError('BAD_USER_INPUT', 'The text is empty; give at least one character.');
    let ids = model.tokenizer.encode(text, { bos: prependBos });
    const limit = Math.min(this.config.maxInputTokens, model.info.contextLength);
    if (ids.length > limit) {
      if (!truncate) {
        throw new AtlasError(
          'INPUT_TOO_LONG',
          `The text is ${ids.length} tokens; at most ${limit} fit (the model's context is ` +
            `${model.info.contextLength}, ATLAS_MAX_INPUT_TOKENS is ${this.config.maxInputTokens}). Shorten it or ` +
            `pass truncate: true.`,
          { tokens: ids.length, limit },
        );
      }
      ids = ids.slice(0, limit);
    }
    const bos = model.tokenizer.bosId;
    const bosPositions = new Set(prependBos && bos !== null && ids[0] === bos ? [0] : []);
    return { ids, texts: ids.map((id) => model.tokenizer.tokenText(id)), bosPositions };
  }

  async hookActivations(
    row: ModelRow,
    text: string,
    hooks: string[],
    truncate = false,
    prependBos = row.prependBos,
  ): Promise<{ tokens: Tokenized; rows: HookRows }> {
    const { tokens, wanted } = await this.registry.withModel(row, (model) => {
      const wanted = validateHooks(hooks, model.info);
      const tokens = this.tokenize(model, prependBos, text, truncate);
      validateBatch([tokens.ids], model.info);
      return { tokens, wanted };
    });
    const rows = (await this.modelBatcher(row).submit({ tokens: tokens.ids, hooks: wanted }))!;
    return { tokens, rows };
  }

  /** Runs one model call of a generation (`tokens` long) in its turn in the model's queue. */
  async modelStep<T>(row: ModelRow, tokens: number, run: () => Promise<T>): Promise<T> {
    let result: T | undefined;
    await this.modelBatcher(row).submit({
      tokens,
      run: async () => {
        result = await run();
      },
    });
    return result as T;
  }

  /** One feature's activation f(h) for each of n rows of h [n, dIn], in the dictionary's batched encoder. */
  async featureActivation(dict: DictionaryRow, index: number, h: Float32Array, n: number): Promise<Float32Array> {
    const enc = await this.encoderBatcher(dict).submit({ x: h, n, topK: dict.dSae, reconstruct: false });
    const out = new Float32Array(n);
    // The first slot naming `index` holds its code; empty slots past the active ones hold 0 and may repeat an index.
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < enc.width; j++) {
        if (enc.indices[r * enc.width + j] === index) {
          out[r] = enc.values[r * enc.width + j];
          break;
        }
      }
    }
    return out;
  }

  async encodeVectors(dict: DictionaryRow, vectors: number[][], topK: number): Promise<FeatureActivation[][]> {
    checkTopK(topK, dict);
    if (vectors.length > MAX_VECTORS)
      throw new AtlasError('INPUT_TOO_LONG', `At most ${MAX_VECTORS} vectors per request, got ${vectors.length}.`);
    const x = new Float32Array(vectors.length * dict.dIn);
    vectors.forEach((v, i) => {
      if (v.length !== dict.dIn) {
        throw new AtlasError(
          'DIMENSION_MISMATCH',
          `Vector ${i} has ${v.length} values but dictionary "${dict.id}" reads vectors of width ${dict.dIn}.`,
          { vector: i, got: v.length, dIn: dict.dIn },
        );
      }
      x.set(v, i * dict.dIn);
    });
    if (vectors.length === 0) return [];
    const enc = await this.encoderBatcher(dict).submit({ x, n: vectors.length, topK, reconstruct: false });
    // Values past float32's range (about 3.4e38), or large enough to overflow the encoder, give ±Inf/NaN.
    if (!enc.values.every(Number.isFinite)) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        'The vectors overflow float32 in the encoder (values too large); send activations of ordinary size.',
      );
    }
    return vectors.map((_, i) => activeFeatures(dict.id, enc, i, topK));
  }

  /**
   * Runs the model once per BOS policy among the dictionaries (which must share a model) and encodes each;
   * the reconstruction (a decoder run per dictionary) and the top features only when `parts` asks.
   */
  async encodeText(
    model: ModelRow,
    dicts: DictionaryRow[],
    text: string,
    topK: number,
    truncate = false,
    parts: EncodingParts = { reconstruction: true, topFeatures: true },
  ): Promise<TextEncoding[]> {
    const reconstruct = parts.reconstruction;
    for (const d of dicts) {
      checkTopK(topK, d);
      if (d.modelId !== model.id)
        throw new AtlasError(
          'BAD_USER_INPUT',
          `Dictionary "${d.id}" belongs to model "${d.modelId}", not "${model.id}"; encode dictionaries of one ` +
            `model per request.`,
        );
    }
    const runs = new Map<boolean, ReturnType<EncodingService['hookActivations']>>();
    for (const bos of new Set(dicts.map((d) => d.prependBos))) {
      const hooks = [
        ...new Set(
          dicts
            .filter((d) => d.prependBos === bos)
            .flatMap((d) => (d.hookPointOut ? [d.hookPoint, d.hookPointOut] : [d.hookPoint])),
        ),
      ];
      runs.set(bos, this.hookActivations(model, text, hooks, truncate, bos));
    }
    return Promise.all(
      dicts.map(async (dict) => {
        const { tokens, rows } = await runs.get(dict.prependBos)!;
        const n = tokens.ids.length;
        const { data: x, d } = rows.get(dict.hookPoint)!;
        if (d !== dict.dIn) {
          throw new AtlasError(
            'DIMENSION_MISMATCH',
            `Dictionary "${dict.id}" reads vectors of width ${dict.dIn} but ${dict.hookPoint} of model ` +
              `"${model.id}" gives ${d}; it was trained on another model.`,
            { dIn: dict.dIn, hookWidth: d },
          );
        }
        const enc = await this.encoderBatcher(dict).submit({ x, n, topK, reconstruct });
        const perToken = tokens.ids.map((tokenId, position) =>
          tokenFeatures(dict.id, enc, position, topK, {
            position,
            tokenId,
            text: tokens.texts[position],
            isBos: tokens.bosPositions.has(position),
          }),
        );
        const scored = perToken.filter((t) => !t.isBos);
        // A transcoder's reconstruction is of its output hook.
        const target = dict.hookPointOut ? rows.get(dict.hookPointOut)!.data : x;
        return {
          dictionary: dict,
          tokens: perToken,
          topFeatures: parts.topFeatures ? strongest(scored, topK) : null,
          // BOS can only be the first token, so the scored tokens are the last ones.
          reconstruction: reconstruct ? quality(target, enc, n - scored.length, n, dict.dIn) : null,
        };
      }),
    );
  }
}

/** topK against the dictionary's width (the fixed 1..MAX_TOP_K is checked at the resolver edge too). */
function checkTopK(topK: number, dict: DictionaryRow): void {
  checkBound('topK', topK, { min: 1, max: Math.min(MAX_TOP_K, dict.dSae) });
}

/** A row's sorted top-k slots without the empty (zero) ones, packed: indices and activations in that order. */
function activeSlots(e: SaeEncoding, row: number, k: number): { indices: number[]; activations: number[] } {
  const indices: number[] = [];
  const activations: number[] = [];
  for (let j = 0; j < k; j++) {
    const v = e.values[row * k + j];
    if (v > 0) {
      indices.push(e.indices[row * k + j]);
      activations.push(v);
    }
  }
  return { indices, activations };
}

/** Packed active slots as FeatureActivation objects. */
function asFeatures(dictionaryId: string, indices: number[], activations: number[]): FeatureActivation[] {
  return indices.map((index, j) => ({ dictionaryId, index, activation: activations[j] }));
}

/** A row's sorted top-k slots without the empty (zero) ones. */
function activeFeatures(dictionaryId: string, e: SaeEncoding, row: number, k: number): FeatureActivation[] {
  const { indices, activations } = activeSlots(e, row, k);
  return asFeatures(dictionaryId, indices, activations);
}

/**
 * A token's features, packed; the list of objects is made when first read, since most queries read one form
 * or the other (64 tokens × 16 features: 1024 objects a request for nothing). A class, not an object literal
 * with a spread and a getter, which cost about 3.4 µs a token in `atlas serve` against 0.5 for the class.
 */
class TokenRow implements TokenFeatures {
  #features: FeatureActivation[] | undefined;
  constructor(
    readonly position: number,
    readonly tokenId: number,
    readonly text: string,
    readonly isBos: boolean,
    readonly featureIndices: number[],
    readonly featureActivations: number[],
    private readonly dictionaryId: string,
  ) {}

  get features(): FeatureActivation[] {
    return (this.#features ??= asFeatures(this.dictionaryId, this.featureIndices, this.featureActivations));
  }
}

function tokenFeatures(
  dictionaryId: string,
  e: SaeEncoding,
  row: number,
  k: number,
  token: Pick<TokenFeatures, 'position' | 'tokenId' | 'text' | 'isBos'>,
): TokenFeatures {
  const { indices, activations } = activeSlots(e, row, k);
  return new TokenRow(token.position, token.tokenId, token.text, token.isBos, indices, activations, dictionaryId);
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

/** Reconstruction quality over the rows [from, to), read in place. */
function quality(x: Float32Array, e: SaeEncoding, from: number, to: number, d: number): TextEncoding['reconstruction'] {
  const rows = to - from;
  if (rows === 0) return { mse: 0, normalizedMse: null, explainedVariance: null, cosine: 1, l0: 0 };
  let l0 = 0;
  for (let p = from; p < to; p++) l0 += e.l0[p];
  const span = (a: Float32Array) => a.subarray(from * d, to * d);
  return { ...reconstructionMetrics(span(x), span(e.xHat!), rows), l0: l0 / rows };
}

/** hookActivations: a model's activations at the named hooks for one text. */
export async function hookActivationsOf(
  database: Database,
  encoding: EncodingService,
  args: { model: string; text: string; hooks: string[]; truncate: boolean },
) {
  const model = await encoding.catalog.model(database, args.model);
  const { tokens, rows } = await encoding.hookActivations(model, args.text, args.hooks, args.truncate);
  return {
    tokens: tokens.ids.map((tokenId, i) => ({ tokenId, text: tokens.texts[i] })),
    hooks: [...rows].map(([hook, { data, d }]) => ({
      hook,
      values: Array.from({ length: data.length / d }, (_, p) => Array.from(data.subarray(p * d, (p + 1) * d))),
    })),
  };
}

export async function encodeVectorsOf(
  database: Database,
  encoding: EncodingService,
  args: { dictionary: string; vectors: number[][]; topK: number },
): Promise<FeatureActivation[][]> {
  return encoding.encodeVectors(await encoding.catalog.dictionary(database, args.dictionary), args.vectors, args.topK);
}

/**
 * encode / encodeMany: one model run per BOS policy for dictionaries that must share a model; `parts` (default
 * all) what the caller reads.
 */
export async function encodeTextWith(
  database: Database,
  encoding: EncodingService,
  args: { dictionaries: string[]; text: string; topK: number; truncate: boolean; parts?: EncodingParts },
): Promise<TextEncoding[]> {
  if (args.dictionaries.length === 0) throw new AtlasError('BAD_USER_INPUT', 'Name at least one dictionary.');
  const dicts = await Promise.all(
    [...new Set(args.dictionaries)].map((id) => encoding.catalog.dictionary(database, id)),
  );
  const model = await encoding.catalog.model(database, dicts[0].modelId);
  return encoding.encodeText(model, dicts, args.text, args.topK, args.truncate, args.parts);
}
