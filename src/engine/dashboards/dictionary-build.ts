/**
 * The accumulators of one dictionary during `atlas build`: per-feature statistics (feature-stats.ts),
 * top and quantile-band examples with per-token values, dictionary-wide reconstruction totals, and at
 * the end the logit lens of every decoder row. Everything is in typed arrays indexed by feature or
 * in the kept examples, so memory is bounded by the dictionary, never by the corpus.
 *
 * Memory bound, for F features, E = F · (TOP_EXAMPLES + BANDS · PER_BAND) = 45 F examples kept at
 * most, contexts of L non-BOS tokens and K codes per token (the encoder's width):
 *   F · ~0.8 KB (histogram bins, per-feature scalars and scratch)
 *   + E · (~0.2 KB + 4 L) (the example records and the token ids of the contexts they keep)
 *   + 6 B · (2 · max(E · L, COMPACT_MIN_ENTRIES) + L · K) (active positions and values of the kept
 *     examples: at most L per example, live after a compaction, plus at most as many allocated
 *     since, see compact())
 *   + the encodings of the batches in flight (the one accumulated and those run ahead, three with the
 *     encode thread of src/app/build-dashboards.ts), n · (8 K + 8 dIn) bytes each for n rows: codes,
 *     reconstruction and the rows it is measured against.
 * A context's examples share its buffers (two allocations per context, not two per example), which
 * keeps the garbage collector's work small. For 24,576 features and L = 63 the worst case (every
 * example from its own context, active at every position) is about 0.02 + 0.5 + 0.84 GB; in
 * practice a feature fires at a few positions of a context and contexts are shared.
 *
 * Exact codes: statistics need every active code of every token, not only the strongest few; the
 * encoder returns them all (its allActive option: k for a TopK dictionary, otherwise a width
 * widened while some token's L0 exceeds it, kept for later batches).
 */
import { AtlasError } from '../../errors.js';
import { isResidualHook } from '../model/hooks.js';
import type { HookBatch, LoadedModel } from '../model/types.js';
import type { SessionSettings } from '../runtime/session.js';
import type { SaeEncoder } from '../sae/encoder.js';
import { openSae } from '../sae/open.js';
import type { TokenContext } from './corpus.js';
import { FeatureStats } from './feature-stats.js';
import { TopExamples, type ContextCodes, type Example } from './top-examples.js';
import { QuantileExamples, type QuantileDraw } from './quantile-examples.js';
import { logitLens, type FeatureLogits } from './logit-lens.js';
import { autoLabel } from './auto-label.js';
import { DictionaryStatsAccumulator, type DictionarySummary } from './dictionary-stats.js';
import type { TokenCodes } from './co-activation.js';

/** Code entries (6 bytes each) allocated before the first compaction of the example buffers. */
const COMPACT_MIN_ENTRIES = 2 ** 22;

/** First topK tried for architectures without a fixed k. */
const INITIAL_TOP_K = 64;

/** What a build needs to know of a dictionary. */
export interface BuildTarget {
  id: string;
  dIn: number;
  dSae: number;
  hookPoint: string;
  /** Transcoders: the hook the decoder reconstructs (reconstruction statistics and the logit lens use it). */
  hookPointOut: string | null;
  /** Folder of the encoder weights, for the logit lens of the decoder rows. */
  weightsPath: string | null;
  /** Whether its model run puts BOS first (dictionaries of one policy share a corpus pass). */
  prependBos: boolean;
}

export interface FeatureStatsRow {
  idx: number;
  density: number;
  maxActivation: number;
  meanActivation: number | null;
  histogram: { edges: number[]; counts: number[] };
  /** Automatic label; null clears an earlier automatic one. */
  label: string | null;
}

/** A context examples were taken from, listed once per dictionary; `id` is the key its examples give. */
export interface ExampleContext {
  id: number;
  tokens: string[];
  tokenIds: ArrayLike<number>;
}

/** One example: its context's per-token values are `values` at `positions` and 0 elsewhere. */
export interface StoredExample {
  context: number;
  /** Quantile band (0 = lowest); null for top examples. */
  band: number | null;
  positions: ArrayLike<number>;
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
  weight: number;
}

/** A feature's logit lens: promoted tokens highest weight first, suppressed ones lowest first. */
export interface FeatureLogitRow {
  featureIdx: number;
  positive: LogitTokenRow[];
  negative: LogitTokenRow[];
}

/** A finished dictionary's dashboards, streamed row by row to whoever stores them. */
export interface DictionaryDashboard {
  dictionaryId: string;
  stats: DictionarySummary & { corpus: string; builtAt: string };
  features: Iterable<FeatureStatsRow>;
  /** Every context the examples refer to (keyed by its running number in the corpus). */
  contexts: Iterable<ExampleContext>;
  examples: Iterable<FeatureExamples>;
  logits: Iterable<FeatureLogitRow>;
}

/** One batch of a dictionary's build encoded: every active code of its non-BOS rows, and their reconstruction. */
export interface BatchEncoding {
  /** Non-BOS rows of the batch. */
  n: number;
  /** Codes per row: every active code fits. */
  width: number;
  indices: Int32Array;
  values: Float32Array;
  /** [n, dIn] reconstruction. */
  xHat: Float32Array;
  /** [n, dIn] what the reconstruction is measured against: the input rows, or a transcoder's output hook. */
  reference: Float32Array;
}

/** The non-BOS rows [n, dIn] of a hook's batch, context after context. */
export function nonBosRows(
  dict: Pick<BuildTarget, 'id' | 'dIn'>,
  contexts: TokenContext[],
  acts: HookBatch,
  hook: string,
  n: number,
): Float32Array {
  const [, S, d] = acts.dims;
  if (d !== dict.dIn) {
    throw new AtlasError(
      'DIMENSION_MISMATCH',
      `Dictionary "${dict.id}" works on vectors of width ${dict.dIn} but ${hook} gives ${d}.`,
    );
  }
  const x = new Float32Array(n * d);
  let row = 0;
  contexts.forEach((c, b) => {
    const skip = c.bos ? 1 : 0;
    const len = c.ids.length - skip;
    x.set(acts.data.subarray((b * S + skip) * d, (b * S + skip + len) * d), row * d);
    row += len;
  });
  return x;
}

/** First encoder width of a build: a TopK dictionary's k, else INITIAL_TOP_K (widened by the encoder as needed). */
export function initialTopK(encoder: Pick<SaeEncoder, 'config'>, dSae: number): number {
  const { architecture, k } = encoder.config;
  return architecture === 'topk' && k ? Math.min(k, dSae) : Math.min(INITIAL_TOP_K, dSae);
}

/**
 * Encodes a batch's non-BOS rows at `topK` or wider (every active code, with the reconstruction). Callers
 * pass the previous batch's width back as topK, so a widened encoder stays wide.
 */
export async function encodeBatch(
  encoder: SaeEncoder,
  dict: Pick<BuildTarget, 'id' | 'dIn' | 'hookPoint' | 'hookPointOut'>,
  topK: number,
  contexts: TokenContext[],
  acts: HookBatch,
  target?: HookBatch,
): Promise<BatchEncoding> {
  const n = contexts.reduce((s, c) => s + c.ids.length - (c.bos ? 1 : 0), 0);
  const x = nonBosRows(dict, contexts, acts, dict.hookPoint, n);
  const enc = await encoder.encode(x, n, topK, { reconstruct: true, allActive: true });
  const reference = target ? nonBosRows(dict, contexts, target, dict.hookPointOut!, n) : x;
  return { n, width: enc.width, indices: enc.indices, values: enc.values, xHat: enc.xHat!, reference };
}

export class DictionaryBuild {
  private topK: number;
  private readonly stats: FeatureStats;
  private readonly top: TopExamples;
  private readonly quantiles: QuantileExamples;
  private readonly totals: DictionaryStatsAccumulator;
  // Per-context scratch, indexed by feature: the context that last touched it, its max and where.
  private readonly lastSeen: Float64Array;
  private readonly ctxMax: Float32Array;
  private readonly ctxPos: Int32Array;
  private readonly head: Int32Array;
  /** Per feature: its number of active tokens in the context. */
  private readonly count: Int32Array;
  // The features the context touched, then those it is offered to, with what each heap wants.
  private readonly touched: Int32Array;
  private readonly wantTop: Uint8Array;
  private readonly draws: (QuantileDraw | null)[];
  /** Code entries allocated in context buffers since the last compaction, and those live at it. */
  private allocated = 0;
  private liveAtCompaction = 0;
  // The context's active codes as per-feature linked lists (newest first).
  private entPos = new Int32Array(0);
  private entVal = new Float32Array(0);
  private entNext = new Int32Array(0);
  /** The exact codes of the last batch consumed, for co-activation with other dictionaries at the same hook. */
  lastCodes: TokenCodes | null = null;

  constructor(
    readonly dict: BuildTarget,
    private readonly encoder: SaeEncoder,
    /** Entries allocated before the first compaction (tests compact at every context with 0). */
    private readonly compactMinEntries = COMPACT_MIN_ENTRIES,
  ) {
    const { dSae } = dict;
    this.topK = initialTopK(encoder, dSae);
    this.stats = new FeatureStats(dSae);
    this.top = new TopExamples(dSae);
    this.quantiles = new QuantileExamples(dSae);
    this.totals = new DictionaryStatsAccumulator(dict.dIn);
    this.lastSeen = new Float64Array(dSae).fill(-1);
    this.ctxMax = new Float32Array(dSae);
    this.ctxPos = new Int32Array(dSae);
    this.head = new Int32Array(dSae);
    this.count = new Int32Array(dSae);
    this.touched = new Int32Array(dSae);
    this.wantTop = new Uint8Array(dSae);
    this.draws = new Array<QuantileDraw | null>(dSae).fill(null);
  }

  /** `target`: a transcoder's output hook for the same contexts, which its reconstruction is measured against. */
  async consume(contexts: TokenContext[], acts: HookBatch, target?: HookBatch): Promise<void> {
    const enc = await encodeBatch(this.encoder, this.dict, this.topK, contexts, acts, target);
    this.accumulate(contexts, enc);
  }

  /** Adds one batch's encoding (encodeBatch's, made here or in a worker thread) to every accumulator. */
  accumulate(contexts: TokenContext[], enc: BatchEncoding): void {
    const { n } = enc;
    const K = (this.topK = enc.width);
    this.lastCodes = { n, k: K, indices: enc.indices, values: enc.values };
    let active = 0;
    let row = 0;
    for (const c of contexts) {
      const skip = c.bos ? 1 : 0;
      const len = c.ids.length - skip;
      if (this.entPos.length < len * K) {
        this.entPos = new Int32Array(len * K);
        this.entVal = new Float32Array(len * K);
        this.entNext = new Int32Array(len * K);
      }
      let touched = 0;
      let e = 0;
      for (let p = 0; p < len; p++) {
        const base = (row + p) * K;
        for (let j = 0; j < K; j++) {
          const v = enc.values[base + j];
          if (!(v > 0)) break; // slots are sorted, highest first
          const f = enc.indices[base + j];
          active++;
          this.stats.add(f, v);
          if (this.lastSeen[f] !== c.seq) {
            this.lastSeen[f] = c.seq;
            this.touched[touched++] = f;
            this.ctxMax[f] = v;
            this.ctxPos[f] = p;
            this.head[f] = -1;
            this.count[f] = 0;
          } else if (v > this.ctxMax[f]) {
            this.ctxMax[f] = v;
            this.ctxPos[f] = p;
          }
          this.count[f]++;
          this.entPos[e] = p;
          this.entVal[e] = v;
          this.entNext[e] = this.head[f];
          this.head[f] = e++;
        }
      }
      this.keep(c, skip, touched);
      row += len;
    }
    this.totals.add(enc.reference, enc.xHat, n, active);
  }

  /**
   * Copies the codes of every example still kept into one buffer, freeing the context buffers that
   * only evicted examples filled. Run once the entries allocated since the last compaction exceed
   * the entries live at it (and COMPACT_MIN_ENTRIES), so its cost is amortized over the allocations.
   */
  private compact(): void {
    const live = new Set<Example>([...this.top.all(), ...this.quantiles.all()]);
    let total = 0;
    for (const e of live) total += e.count;
    const codes: ContextCodes = { positions: new Uint16Array(total), values: new Float32Array(total) };
    let at = 0;
    for (const e of live) {
      for (let i = 0; i < e.count; i++) {
        codes.positions[at + i] = e.codes.positions[e.start + i];
        codes.values[at + i] = e.codes.values[e.start + i];
      }
      e.codes = codes;
      e.start = at;
      at += e.count;
    }
    this.liveAtCompaction = total;
    this.allocated = 0;
  }

  /**
   * Offers the context to the top and quantile examples of each touched feature. The examples kept
   * share one positions and one values buffer per context (each its own range of them), so a context
   * costs two buffers however many features keep it, and no example owns a buffer of its own.
   */
  private keep(c: TokenContext, skip: number, touched: number): void {
    let kept = 0;
    let entries = 0;
    for (let t = 0; t < touched; t++) {
      const f = this.touched[t];
      const v = this.ctxMax[f];
      const keepTop = this.top.wants(f, v);
      const draw = this.quantiles.draw(f, v);
      if (!keepTop && !draw) continue;
      this.touched[kept] = f;
      this.wantTop[kept] = keepTop ? 1 : 0;
      this.draws[kept++] = draw;
      entries += this.count[f];
    }
    if (kept === 0) return;
    this.allocated += entries;
    if (this.allocated > Math.max(this.compactMinEntries, this.liveAtCompaction)) this.compact();
    const tokens = Int32Array.from(c.ids.slice(skip));
    const codes: ContextCodes = { positions: new Uint16Array(entries), values: new Float32Array(entries) };
    const { positions, values } = codes;
    let at = 0;
    for (let t = 0; t < kept; t++) {
      const f = this.touched[t];
      const m = this.count[f];
      // The list runs newest first; fill it back to front so positions ascend.
      for (let e = this.head[f], i = at + m - 1; e >= 0; e = this.entNext[e], i--) {
        positions[i] = this.entPos[e];
        values[i] = this.entVal[e];
      }
      const example: Example = {
        seq: c.seq,
        tokens,
        maxValue: this.ctxMax[f],
        maxPosition: this.ctxPos[f],
        codes,
        start: at,
        count: m,
      };
      at += m;
      const draw = this.draws[t];
      if (this.wantTop[t]) this.top.offer(f, example);
      if (draw) this.quantiles.offer(f, draw, example);
    }
  }

  async finish(
    model: LoadedModel,
    o: { corpus: string; builtAt: string; session: SessionSettings },
  ): Promise<DictionaryDashboard> {
    const { dSae } = this.dict;
    const tokens = this.totals.tokens;
    let dead = 0;
    for (let f = 0; f < dSae; f++) if (this.stats.count[f] === 0) dead++;
    const summary = this.totals.summary(dSae, dead);
    const logits = await this.logits(model, o.session);
    const texts = new Map<number, string>();
    const text = (id: number) => {
      let t = texts.get(id);
      // PostgreSQL text and jsonb cannot hold NUL; show it in the tokenizers' byte-escape style.
      if (t === undefined) texts.set(id, (t = model.tokenizer.tokenText(id).replaceAll('\0', '<0x00>')));
      return t;
    };
    const { stats, top, quantiles } = this;
    const dictId = this.dict.id;
    function* features(): Generator<FeatureStatsRow> {
      for (let f = 0; f < dSae; f++) {
        const s = stats.summary(f, tokens);
        yield {
          idx: f,
          density: s.density,
          maxActivation: s.maxActivation,
          meanActivation: s.meanActivation,
          histogram: s.histogram,
          label: autoLabel(top.sorted(f), text),
        };
      }
    }
    // An example keeps its feature's active positions and values: stored as they are, sparse.
    const stored = (band: number | null, e: Example): StoredExample => ({
      context: e.seq,
      band,
      positions: e.codes.positions.subarray(e.start, e.start + e.count),
      values: e.codes.values.subarray(e.start, e.start + e.count),
      maxValue: e.maxValue,
      maxPosition: e.maxPosition,
    });
    function* contexts(): Generator<ExampleContext> {
      const seen = new Set<number>();
      for (const kept of [top.all(), quantiles.all()]) {
        for (const e of kept) {
          if (seen.has(e.seq)) continue;
          seen.add(e.seq);
          yield { id: e.seq, tokens: Array.from(e.tokens, text), tokenIds: e.tokens };
        }
      }
    }
    function* examples(): Generator<FeatureExamples> {
      for (let f = 0; f < dSae; f++) {
        const kept = top.sorted(f);
        if (kept.length) yield { featureIdx: f, kind: 'top', examples: kept.map((e) => stored(null, e)) };
        const bands = quantiles.bands(f, stats.max[f]) ?? [];
        const sampled = bands.flatMap((b) => b.examples.map((e) => stored(b.band, e)));
        if (sampled.length) yield { featureIdx: f, kind: 'quantile', examples: sampled };
      }
    }
    function* logitRows(): Generator<FeatureLogitRow> {
      if (!logits) return;
      const rows = (tokens: { tokenId: number; weight: number }[]) =>
        tokens.map((t) => ({ tokenId: t.tokenId, token: text(t.tokenId), weight: t.weight }));
      for (let f = 0; f < dSae; f++)
        yield { featureIdx: f, positive: rows(logits[f].positive), negative: rows(logits[f].negative) };
    }
    return {
      dictionaryId: dictId,
      stats: { ...summary, corpus: o.corpus, builtAt: o.builtAt },
      features: features(),
      contexts: contexts(),
      examples: examples(),
      logits: logitRows(),
    };
  }

  /**
   * Logit lens of every decoder row; null without an unembedding or when the decoder's space (the
   * output hook of a transcoder) is not the residual basis.
   */
  private async logits(model: LoadedModel, session: SessionSettings): Promise<FeatureLogits[] | null> {
    const u = model.unembedding();
    if (
      !u ||
      !isResidualHook(this.dict.hookPointOut ?? this.dict.hookPoint) ||
      this.dict.dIn !== model.info.dModel ||
      !this.dict.weightsPath
    )
      return null;
    const source = openSae(this.dict.weightsPath);
    try {
      const out = await logitLens(u, this.dict.dIn, source.decoderRows(4096), session);
      if (out.length !== this.dict.dSae) {
        throw new AtlasError(
          'BAD_FILE',
          `Dictionary "${this.dict.id}" has ${out.length} decoder rows on disk but ${this.dict.dSae} features in ` +
            `the catalog; re-import it.`,
        );
      }
      return out;
    } finally {
      source.close();
    }
  }
}
