/**
 * `atlas build`: feature dashboards computed in one streaming pass over a corpus.
 *
 * Contexts are read and tokenized in batches; each batch runs through the model once for every
 * dictionary of the build (LoadedModel.runHooks with all their hook points), and each dictionary's
 * SaeEncoder encodes the non-BOS rows. The model run of the next batch is started before the
 * current one is encoded and accumulated, so the JavaScript bookkeeping overlaps onnxruntime's work.
 * Every accumulator has a size fixed by the dictionary (features × bins, heaps, samples), never by
 * the corpus. Nothing is written until the whole corpus is done; then every dictionary is published
 * in one transaction. An AbortSignal stops the build between batches, before anything is written.
 *
 * Exact codes: statistics need every active code of every token, not only the strongest few. The
 * encoder returns the topK largest codes and each token's L0 (its number of nonzero codes); a TopK
 * dictionary has at most k, so topK = k is exact. For other architectures a batch whose largest L0
 * exceeds topK is encoded again with a wider topK (kept for later batches), so each token's list
 * always holds all of its active codes.
 */
import type { Database } from '../../db/client.js';
import { listDictionaries, requireDictionary, requireModel, type DictionaryRow, type ModelRow } from '../../db/catalog.js';
import { publishDashboards, type DictionaryDashboard, type ExampleRow, type FeatureStatsRow, type LogitRow } from '../../db/dashboards.js';
import type { DictionaryStats } from '../../db/schema.js';
import { AtlasError } from '../../errors.js';
import type { EngineRegistry } from '../registry.js';
import { isResidualHook } from '../model/hooks.js';
import type { HookBatch, LoadedModel } from '../model/types.js';
import type { SessionSettings } from '../runtime/session.js';
import type { SaeEncoder, SaeEncoding } from '../sae/encoder.js';
import { openSae } from '../sae/open.js';
import { Corpus, type TokenContext } from './corpus.js';
import { FeatureStats } from './feature-stats.js';
import { TopExamples, type Example } from './top-examples.js';
import { QuantileExamples } from './quantile-examples.js';
import { logitLens, type FeatureLogits } from './logit-lens.js';
import { autoLabel } from './auto-label.js';
import { DictionaryStatsAccumulator } from './dictionary-stats.js';

export const DEFAULT_CONTEXT = 64;
/** Default batch: about this many tokens per model run. */
const BATCH_TOKENS = 4096;
/** First topK tried for architectures without a fixed k. */
const INITIAL_TOP_K = 64;

export interface BuildProgress {
  phase: 'corpus' | 'logits' | 'publish';
  /** Non-BOS corpus tokens processed. */
  tokens: number;
  contexts: number;
  /** Share of the corpus (or of --tokens) done, 0..1. */
  fraction: number;
}

export interface BuildOptions {
  /** Dictionaries to build, all of one model; or give modelId for every ready dictionary of a model. */
  dictionaryIds?: string[];
  modelId?: string;
  /** A text file, a folder of text files, or a .jsonl file with a `text` field. */
  corpus: string;
  /** Stop after this many non-BOS tokens. */
  tokens?: number;
  /** Tokens per context, BOS included (default 64, at most the model's context). */
  context?: number;
  /** Contexts per model run (default about 4096 tokens' worth). */
  batch?: number;
  onProgress?: (p: BuildProgress) => void;
  signal?: AbortSignal;
  /** Session settings for the logit-lens products (default: CPU, onnxruntime's threads). */
  session?: SessionSettings;
}

export interface BuildResult {
  modelId: string;
  tokens: number;
  contexts: number;
  seconds: number;
  dictionaries: { id: string; stats: DictionaryStats }[];
}

async function resolveTargets(database: Database, opts: BuildOptions): Promise<{ model: ModelRow; dicts: DictionaryRow[] }> {
  if (opts.modelId !== undefined) {
    const model = await requireModel(database, opts.modelId);
    const dicts = await listDictionaries(database, model.id);
    if (dicts.length === 0) throw new AtlasError('NOT_FOUND', `Model "${model.id}" has no dictionaries to build; import one with \`atlas import\`.`);
    return { model, dicts };
  }
  const ids = [...new Set(opts.dictionaryIds ?? [])];
  if (ids.length === 0) throw new AtlasError('BAD_USER_INPUT', 'Name a dictionary to build, or a model with --model and --all.');
  const dicts = [];
  for (const id of ids) dicts.push(await requireDictionary(database, id));
  const models = [...new Set(dicts.map((d) => d.modelId))];
  if (models.length > 1) {
    throw new AtlasError('BAD_USER_INPUT', `The dictionaries belong to different models (${models.join(', ')}); build the dictionaries of one model at a time.`);
  }
  return { model: await requireModel(database, models[0]), dicts };
}

function positiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new AtlasError('BAD_USER_INPUT', `${name} must be a positive integer, got ${v}.`);
}

export async function buildDashboards(database: Database, registry: EngineRegistry, opts: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  positiveInt('--tokens', opts.tokens);
  positiveInt('--context', opts.context);
  positiveInt('--batch', opts.batch);
  const { model: modelRow, dicts } = await resolveTargets(database, opts);
  const model = await registry.model(modelRow);
  const context = opts.context ?? Math.min(DEFAULT_CONTEXT, model.info.contextLength);
  if (context > model.info.contextLength) {
    throw new AtlasError('BAD_USER_INPUT', `--context ${context} is longer than model "${modelRow.id}"'s context of ${model.info.contextLength} tokens.`);
  }
  const batch = opts.batch ?? Math.max(1, Math.floor(BATCH_TOKENS / context));
  // The catalog row says whether the model is run with BOS (it may be registered against the checkpoint's default).
  const corpus = new Corpus(opts.corpus, { tokenizer: model.tokenizer, prependBos: modelRow.prependBos, context, maxTokens: opts.tokens });
  const builds = await Promise.all(dicts.map(async (d) => new DictionaryBuild(d, await registry.encoder(d))));
  const hooks = [...new Set(dicts.map((d) => d.hookPoint))];
  const progress = (phase: BuildProgress['phase'], contexts: number) =>
    opts.onProgress?.({ phase, tokens: corpus.tokens, contexts, fraction: phase === 'corpus' ? corpus.fraction : 1 });

  const source = corpus.contexts()[Symbol.asyncIterator]();
  const readBatch = async (): Promise<TokenContext[]> => {
    const out: TokenContext[] = [];
    while (out.length < batch) {
      const r = await source.next();
      if (r.done) break;
      out.push(r.value);
    }
    return out;
  };
  const run = (contexts: TokenContext[]) => {
    if (contexts.length === 0) return null;
    const p = model.runHooks(contexts.map((c) => c.ids), hooks);
    p.catch(() => undefined); // awaited below; this only keeps an abandoned run from being unhandled
    return p;
  };

  let contexts = 0;
  try {
    let current = await readBatch();
    let running = run(current);
    while (running) {
      const acts = await running;
      opts.signal?.throwIfAborted();
      const next = await readBatch();
      running = run(next);
      for (const b of builds) await b.consume(current, acts.get(b.dict.hookPoint)!);
      contexts += current.length;
      current = next;
      progress('corpus', contexts);
    }
  } finally {
    await source.return?.(undefined);
  }
  if (corpus.tokens === 0) throw new AtlasError('BAD_USER_INPUT', `The corpus ${opts.corpus} holds no text to build from.`);

  progress('logits', contexts);
  const builtAt = new Date().toISOString();
  const dashboards: DictionaryDashboard[] = [];
  for (const b of builds) {
    opts.signal?.throwIfAborted();
    dashboards.push(await b.finish(model, { corpus: opts.corpus, builtAt, session: opts.session ?? { device: 'cpu', threads: 0 } }));
  }
  opts.signal?.throwIfAborted();
  progress('publish', contexts);
  await publishDashboards(database, dashboards);
  return {
    modelId: modelRow.id,
    tokens: corpus.tokens,
    contexts,
    seconds: (performance.now() - started) / 1000,
    dictionaries: dashboards.map((d) => ({ id: d.dictionaryId, stats: d.stats })),
  };
}

/** The accumulators of one dictionary. */
class DictionaryBuild {
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
  // The context's active codes as per-feature linked lists (newest first).
  private entPos = new Int32Array(0);
  private entVal = new Float32Array(0);
  private entNext = new Int32Array(0);

  constructor(readonly dict: DictionaryRow, private readonly encoder: SaeEncoder) {
    const { dSae } = dict;
    this.topK = encoder.config.architecture === 'topk' && encoder.config.k ? Math.min(encoder.config.k, dSae) : Math.min(INITIAL_TOP_K, dSae);
    this.stats = new FeatureStats(dSae);
    this.top = new TopExamples(dSae);
    this.quantiles = new QuantileExamples(dSae);
    this.totals = new DictionaryStatsAccumulator(dict.dIn);
    this.lastSeen = new Float64Array(dSae).fill(-1);
    this.ctxMax = new Float32Array(dSae);
    this.ctxPos = new Int32Array(dSae);
    this.head = new Int32Array(dSae);
  }

  /** Encodes rows until every token's active codes fit in topK. */
  private async encodeAll(x: Float32Array, n: number): Promise<SaeEncoding> {
    for (;;) {
      const enc = await this.encoder.encode(x, n, this.topK);
      let maxL0 = 0;
      for (let r = 0; r < n; r++) if (enc.l0[r] > maxL0) maxL0 = enc.l0[r];
      if (maxL0 <= this.topK || this.topK >= this.dict.dSae) return enc;
      this.topK = Math.min(this.dict.dSae, Math.max(2 * this.topK, 2 ** Math.ceil(Math.log2(maxL0))));
    }
  }

  async consume(contexts: TokenContext[], acts: HookBatch): Promise<void> {
    const [, S, d] = acts.dims;
    if (d !== this.dict.dIn) {
      throw new AtlasError('DIMENSION_MISMATCH', `Dictionary "${this.dict.id}" reads vectors of width ${this.dict.dIn} but ${this.dict.hookPoint} gives ${d}.`);
    }
    const n = contexts.reduce((s, c) => s + c.ids.length - (c.bos ? 1 : 0), 0);
    const x = new Float32Array(n * d);
    let row = 0;
    contexts.forEach((c, b) => {
      const skip = c.bos ? 1 : 0;
      const len = c.ids.length - skip;
      x.set(acts.data.subarray((b * S + skip) * d, (b * S + skip + len) * d), row * d);
      row += len;
    });
    const enc = await this.encodeAll(x, n);
    const K = this.topK;
    let active = 0;
    row = 0;
    for (const c of contexts) {
      const skip = c.bos ? 1 : 0;
      const len = c.ids.length - skip;
      if (this.entPos.length < len * K) {
        this.entPos = new Int32Array(len * K);
        this.entVal = new Float32Array(len * K);
        this.entNext = new Int32Array(len * K);
      }
      const touched: number[] = [];
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
            touched.push(f);
            this.ctxMax[f] = v;
            this.ctxPos[f] = p;
            this.head[f] = -1;
          } else if (v > this.ctxMax[f]) {
            this.ctxMax[f] = v;
            this.ctxPos[f] = p;
          }
          this.entPos[e] = p;
          this.entVal[e] = v;
          this.entNext[e] = this.head[f];
          this.head[f] = e++;
        }
      }
      let tokens: Int32Array | null = null;
      for (const f of touched) {
        const v = this.ctxMax[f];
        const keepTop = this.top.wants(f, v);
        const draw = this.quantiles.draw(f, v);
        if (!keepTop && !draw) continue;
        tokens ??= Int32Array.from(c.ids.slice(skip));
        const example = this.example(f, c.seq, tokens);
        if (keepTop) this.top.offer(f, example);
        if (draw) this.quantiles.offer(f, draw, example);
      }
      row += len;
    }
    this.totals.add(x, enc.xHat, n, active);
  }

  /** Feature f's activations in the current context, from its linked list of entries. */
  private example(f: number, seq: number, tokens: Int32Array): Example {
    let m = 0;
    for (let e = this.head[f]; e >= 0; e = this.entNext[e]) m++;
    const positions = new Uint16Array(m);
    const values = new Float32Array(m);
    for (let e = this.head[f], i = m - 1; e >= 0; e = this.entNext[e], i--) {
      positions[i] = this.entPos[e];
      values[i] = this.entVal[e];
    }
    return { seq, tokens, maxValue: this.ctxMax[f], maxPosition: this.ctxPos[f], positions, values };
  }

  async finish(model: LoadedModel, o: { corpus: string; builtAt: string; session: SessionSettings }): Promise<DictionaryDashboard> {
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
        yield { idx: f, density: s.density, maxActivation: s.maxActivation, meanActivation: s.meanActivation, histogram: s.histogram, label: autoLabel(top.sorted(f), text) };
      }
    }
    const row = (f: number, kind: 'top' | 'quantile', band: number | null, rank: number, e: Example): ExampleRow => {
      const values = new Array<number>(e.tokens.length).fill(0);
      e.positions.forEach((p, i) => { values[p] = e.values[i]; });
      const tokenIds = Array.from(e.tokens);
      return { featureIdx: f, kind, band, rank, tokens: tokenIds.map(text), tokenIds, values, maxValue: e.maxValue, maxPosition: e.maxPosition };
    };
    function* examples(): Generator<ExampleRow> {
      for (let f = 0; f < dSae; f++) {
        let rank = 0;
        for (const e of top.sorted(f)) yield row(f, 'top', null, rank++, e);
        for (const b of quantiles.bands(f, stats.max[f]) ?? []) {
          rank = 0;
          for (const e of b.examples) yield row(f, 'quantile', b.band, rank++, e);
        }
      }
    }
    function* logitRows(): Generator<LogitRow> {
      if (!logits) return;
      for (let f = 0; f < dSae; f++) {
        for (const sign of ['positive', 'negative'] as const) {
          let rank = 0;
          for (const t of logits[f][sign]) yield { featureIdx: f, sign, rank: rank++, tokenId: t.tokenId, token: text(t.tokenId), weight: t.weight };
        }
      }
    }
    return {
      dictionaryId: dictId,
      stats: { ...summary, corpus: o.corpus, builtAt: o.builtAt },
      features: features(),
      examples: examples(),
      logits: logitRows(),
    };
  }

  /** Logit lens of every decoder row; null without an unembedding or when the hook is not in the residual basis. */
  private async logits(model: LoadedModel, session: SessionSettings): Promise<FeatureLogits[] | null> {
    const u = model.unembedding();
    if (!u || !isResidualHook(this.dict.hookPoint) || this.dict.dIn !== model.info.dModel || !this.dict.weightsPath) return null;
    const source = openSae(this.dict.weightsPath);
    try {
      const out = await logitLens(u, this.dict.dIn, source.decoderRows(4096), session);
      if (out.length !== this.dict.dSae) {
        throw new AtlasError('BAD_FILE', `Dictionary "${this.dict.id}" has ${out.length} decoder rows on disk but ${this.dict.dSae} features in the catalog; re-import it.`);
      }
      return out;
    } finally {
      source.close();
    }
  }
}
