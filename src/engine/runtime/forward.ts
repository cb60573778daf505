/**
 * The batch runner behind LoadedModel.runHooks: validates token sequences and hook names, right-pads
 * the batch, builds the attention mask, runs the graph and returns [batch, seq, d] float32 per hook.
 *
 * onnxruntime executes every node of a graph whatever a run fetches, so every run of hooks is on a
 * pruned copy of the graph that ends at the deepest requested hook: a hook on the last layer skips the LM
 * head and the KV-cache outputs (measured 1.3–1.4× at GPT-2 shape, bench/encode-path.ts). The copy's
 * outputs are the requested hooks alone: onnxruntime allocates and fills every graph output on every run
 * and cannot reuse its buffer, so a copy that also output the 158 hooks before the last layer of GPT-2
 * small ran 64 tokens 11–13% slower (same values). An open copy whose outputs include every requested
 * hook, and at most SUPERSET_OUTPUTS times as many, serves too, so batches mixing hook sets settle on their
 * union instead of cutting one copy after another. Its runs neither steer nor continue a KV cache, so its
 * copies also drop the steering and cache inputs (onnx/prune.ts withoutSteeringOrCache); the decoder's reads
 * at a hook (withSession) use copies that keep them. Copies are written once beside the model in its cache
 * folder; a few such sessions are kept open, least recently used first out. The full graph serves decoding.
 *
 * Models too big to hold twice run `hooksOnly`: one session on a copy of the graph with every hook point
 * and neither logits nor cache outputs, so there is one copy of the weights and no [tokens, vocab]
 * logits per run (4096 tokens of a 256k vocabulary are 4 GB); they cannot decode. onnxruntime
 * materialises every graph output whichever are fetched (4 MB per token for gemma-2-2b's 312 hooks),
 * so their batches run in slices of sequences whose padded outputs fit hooksOnlyRunBytes.
 *
 * Works with any graph following the interface of onnx/layers.ts (inputs fed by feeds.ts), hook outputs
 * by TransformerLens name.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { AtlasError } from '../../errors.js';
import type { HookBatch, ModelInfo, RunHooksOptions } from '../model/types.js';
import { decodeModel, pruneModel, withoutSteeringOrCache } from '../onnx/prune.js';
import { cachedFile, MODEL_FILE } from './onnx-cache.js';
import { batchFeeds, planInputs } from './feeds.js';
import { createSession, type AtlasSession, type ExecutionProvider, type SessionSettings } from './session.js';

/** Pruned sessions kept open beside the full one. */
const DEFAULT_MAX_VARIANTS = 2;
/**
 * An open cut serves a request whose hooks it outputs when it has at most this many times as many outputs: a
 * cut of two hooks serves either alone, while a cut of every hook (a request for all of them) does not keep
 * serving single hooks at the cost of filling all its outputs.
 */
const SUPERSET_OUTPUTS = 2;

export interface HookRunnerOptions {
  /** Folder holding MODEL_FILE; pruned variants are written beside it. */
  folder: string;
  info: ModelInfo;
  settings: SessionSettings;
  maxVariants?: number;
  /** Run every request on one graph of all the hooks, without logits (see above). */
  hooksOnly?: boolean;
  /** Bytes of hook outputs one hooksOnly run may make (default 1 GiB). */
  hooksOnlyRunBytes?: number;
}

/**
 * Splits a batch, in order, into runs of consecutive sequences whose padded size (sequences × the
 * longest) stays within maxTokens; a sequence longer than that runs alone.
 */
export function sliceBatch(lengths: number[], maxTokens: number): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  while (start < lengths.length) {
    let end = start + 1;
    let longest = lengths[start];
    while (end < lengths.length && (end + 1 - start) * Math.max(longest, lengths[end]) <= maxTokens)
      longest = Math.max(longest, lengths[end++]);
    out.push([start, end]);
    start = end;
  }
  return out;
}

/**
 * Names the copies without steering or cache inputs: bump when withoutSteeringOrCache changes, so that
 * copies written before are not read (old files stay valid for graphs that still name them).
 */
const LEAN_CUT = 'lean1';
export const HOOKS_ONLY_FILE = `hooks-only-${LEAN_CUT}.onnx`;

/** The model in `folder` cut to `outputs`; `lean`: also without steering or cache inputs. */
function cutModel(folder: string, outputs: string[], lean: boolean): Uint8Array {
  const model = decodeModel(readFileSync(join(folder, MODEL_FILE)));
  return pruneModel(lean ? withoutSteeringOrCache(model, outputs) : model, outputs);
}

/** Checks ids and lengths; returns the sequences to run (truncated when asked). */
export function validateBatch(batch: number[][], info: ModelInfo, opts: RunHooksOptions = {}): number[][] {
  if (!Array.isArray(batch) || batch.length === 0)
    throw new AtlasError('BAD_USER_INPUT', 'The batch is empty: pass at least one token sequence.');
  return batch.map((seq, b) => {
    if (!Array.isArray(seq) || seq.length === 0)
      throw new AtlasError('BAD_USER_INPUT', `Sequence ${b} of the batch has no tokens.`);
    for (const id of seq) {
      if (!Number.isInteger(id) || id < 0 || id >= info.vocabSize) {
        throw new AtlasError(
          'BAD_USER_INPUT',
          `Sequence ${b} holds token id ${id}, outside the model's vocabulary of ${info.vocabSize}.`,
        );
      }
    }
    if (seq.length <= info.contextLength) return seq;
    if (opts.truncate) return seq.slice(0, info.contextLength);
    throw new AtlasError(
      'INPUT_TOO_LONG',
      `Sequence ${b} has ${seq.length} tokens but the model's context holds ${info.contextLength}; shorten the text ` +
        `or ask for truncation.`,
      {
        tokens: seq.length,
        contextLength: info.contextLength,
      },
    );
  });
}

export function validateHooks(hooks: string[], info: ModelInfo): string[] {
  if (!Array.isArray(hooks) || hooks.length === 0)
    throw new AtlasError('BAD_USER_INPUT', `Name at least one hook; this model has: ${info.hookPoints.join(', ')}.`);
  const valid = new Set(info.hookPoints);
  const unknown = hooks.filter((h) => !valid.has(h));
  if (unknown.length > 0) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      `Unknown hook point${unknown.length > 1 ? 's' : ''} ${unknown.map((h) => `"${h}"`).join(', ')}; this model ` +
        `has: ${info.hookPoints.join(', ')}.`,
    );
  }
  return [...new Set(hooks)];
}

/** A pruned session; released once evicted and no run uses it any more. */
interface Variant {
  /** Its graph outputs; `lean`: without steering or cache inputs. */
  outputs: Set<string>;
  lean: boolean;
  session: Promise<AtlasSession>;
  busy: number;
  evicted: boolean;
}

function releaseIfIdle(v: Variant): void {
  if (v.evicted && v.busy === 0) void v.session.then((s) => s.session.release()).catch(() => undefined);
}

export class HookRunner {
  private readonly variants = new Map<string, Variant>();

  private constructor(
    private readonly opts: HookRunnerOptions,
    /** The complete graph (every hook, logits and the KV cache), or the hooks-only graph. */
    readonly full: AtlasSession,
  ) {}

  static async open(opts: HookRunnerOptions): Promise<HookRunner> {
    const file = opts.hooksOnly
      ? cachedFile(opts.folder, HOOKS_ONLY_FILE, () => cutModel(opts.folder, opts.info.hookPoints, true))
      : join(opts.folder, MODEL_FILE);
    return new HookRunner(opts, await createSession(file, opts.settings));
  }

  get provider(): ExecutionProvider {
    return this.full.provider;
  }

  async run(batch: number[][], hooks: string[], opts: RunHooksOptions = {}): Promise<Map<string, HookBatch>> {
    const wanted = validateHooks(hooks, this.opts.info);
    const seqs = validateBatch(batch, this.opts.info, opts);
    if (this.opts.hooksOnly) return this.runSliced(seqs, wanted);
    const out = await this.onVariant(wanted, true, (session) =>
      session.run(batchFeeds(planInputs(session, 'the model graph'), seqs), wanted),
    );
    const result = new Map<string, HookBatch>();
    for (const h of wanted) {
      const t = out[h];
      result.set(h, { dims: t.dims as [number, number, number], data: t.data as Float32Array });
    }
    return result;
  }

  /** Runs `fn` on a cut of the graph outputting `hooks` (variantFor), with the steering and cache inputs. */
  withSession<T>(hooks: string[], fn: (session: ort.InferenceSession) => Promise<T>): Promise<T> {
    return this.onVariant(hooks, false, fn);
  }

  /** Runs `fn` on a cut of the graph outputting `hooks` (variantFor); `lean`: without steering or cache inputs. */
  private async onVariant<T>(
    hooks: string[],
    lean: boolean,
    fn: (session: ort.InferenceSession) => Promise<T>,
  ): Promise<T> {
    const variant = this.variantFor(hooks, lean);
    variant.busy++;
    try {
      return await fn((await variant.session).session);
    } finally {
      variant.busy--;
      releaseIfIdle(variant);
    }
  }

  /** hooksOnly runs: slices of the batch run one after another, their rows copied into one padded batch. */
  private async runSliced(seqs: number[][], wanted: string[]): Promise<Map<string, HookBatch>> {
    const { session } = this.full;
    const outputBytesPerToken = session.outputMetadata.reduce((sum, m) => {
      const width = m.isTensor ? m.shape[m.shape.length - 1] : 0;
      return sum + 4 * (typeof width === 'number' ? width : 0);
    }, 0);
    const maxTokens = Math.max(
      1,
      Math.floor((this.opts.hooksOnlyRunBytes ?? 1024 ** 3) / Math.max(1, outputBytesPerToken)),
    );
    const S = Math.max(...seqs.map((q) => q.length));
    const result = new Map<string, HookBatch>();
    for (const [from, to] of sliceBatch(
      seqs.map((q) => q.length),
      maxTokens,
    )) {
      const part = seqs.slice(from, to);
      const out = await session.run(batchFeeds(planInputs(session, 'the model graph'), part), wanted);
      for (const h of wanted) {
        const [, s, d] = out[h].dims as number[];
        const data = out[h].data as Float32Array;
        let whole = result.get(h);
        if (!whole) result.set(h, (whole = { dims: [seqs.length, S, d], data: new Float32Array(seqs.length * S * d) }));
        part.forEach((_, i) => whole!.data.set(data.subarray(i * s * d, (i + 1) * s * d), (from + i) * S * d));
      }
    }
    return result;
  }

  /**
   * The pruned graph with `hooks` as its outputs, or else the most recently used open one whose outputs include
   * them and number at most SUPERSET_OUTPUTS times as many.
   */
  private variantFor(hooks: string[], lean: boolean): Variant {
    const wanted = new Set(hooks);
    const outputs = this.opts.info.hookPoints.filter((h) => wanted.has(h));
    const hash = createHash('sha256').update(outputs.join('\n')).digest('hex').slice(0, 16);
    let name = lean ? `hooks-${LEAN_CUT}-${hash}.onnx` : `hooks-${hash}.onnx`;
    let variant = this.variants.get(name);
    if (!variant) {
      for (const [key, v] of this.variants) {
        const fits = v.outputs.size <= SUPERSET_OUTPUTS * outputs.length && outputs.every((h) => v.outputs.has(h));
        if (v.lean === lean && fits) [name, variant] = [key, v];
      }
    }
    if (variant) {
      this.variants.delete(name); // re-inserted below, as the most recently used
    } else {
      const make = () => cutModel(this.opts.folder, outputs, lean);
      variant = {
        outputs: new Set(outputs),
        lean,
        session: Promise.resolve().then(() =>
          createSession(cachedFile(this.opts.folder, name, make), this.opts.settings),
        ),
        busy: 0,
        evicted: false,
      };
      // A failed build is not cached: the next request retries.
      variant.session.catch(() => this.variants.delete(name));
    }
    this.variants.set(name, variant);
    const max = this.opts.maxVariants ?? DEFAULT_MAX_VARIANTS;
    for (const [key, old] of this.variants) {
      if (this.variants.size <= max) break;
      this.variants.delete(key);
      old.evicted = true;
      releaseIfIdle(old);
    }
    return variant;
  }

  async close(): Promise<void> {
    for (const v of this.variants.values()) {
      v.evicted = true;
      releaseIfIdle(v);
    }
    this.variants.clear();
    await this.full.session.release();
  }
}
