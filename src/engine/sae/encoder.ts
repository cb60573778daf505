/**
 * Runs a dictionary's graphs (./encoder-graph.ts) in onnxruntime: top-k features and L0 per vector
 * from the encoder session, and, only when asked, the reconstruction from the decoder session,
 * decoded from the sparse codes. A reconstruction needs every active code: the encoder runs at a
 * width holding them all (k for a TopK dictionary; otherwise widened, and remembered, while some
 * row's L0 exceeds it), and the result is cut back to the topK asked for.
 *
 * Batches take the architecture's screened encode where it has one (TopK: an 8-bit screen with a
 * guaranteed bound and an exact re-score, ./architectures/topk-screen.ts); the rows whose candidates it cannot
 * prove complete are encoded again by the dense graph. create() checks the bound on PROBES random vectors over
 * every feature and drops the screen if it fails there. Whether the screen pays depends on the dictionary's size
 * and the machine (its per-vector TopK and re-score against the int8 kernel's saving, and how many rows it
 * proves), so create() times the dense graph against the screened encode (its unproved rows' dense re-encode
 * included) on batches of 1, 2, 4 … SCREEN_MAX_ROWS random vectors, then on SCREEN_WIDE_ROWS, and keeps the screen
 * for the batches where it was clearly faster (every batch, in runs of SCREEN_WIDE_ROWS, where it was at all of
 * them), releasing it where it never was. Measured (1 thread, k = 32 unless said, dense ÷ screened
 * time; a CPU with AVX-512 VNNI): 24576 × 768 n = 1 2.68, 16 1.42, 32 1.25; 8192 × 512 n = 1 2.02, 4 1.23,
 * 16 0.53; 2048 × 128 (k = 16) n = 1 0.74, 16 0.20. On an AMD EPYC with AVX2 only (uint8 codes), bench/vs-torch.ts
 * --paths sae: 24576 × 768 one vector 3.2–4.0 ms against 7.0–8.4 ms dense.
 */
import * as ort from 'onnxruntime-node';
import { AtlasError } from '../../errors.js';
import { createSession, ExecutionProvider, SessionSettings } from '../runtime/session.js';
import { mulberry32 } from '../random.js';
import { screenBoundRatio, screenWeightBytes } from './architectures/topk-screen.js';
import { saeInput } from './architectures/linear.js';
import { buildDecoderGraph, buildEncoderGraph, buildScreenGraph } from './encoder-graph.js';
import { exactInt8Weights } from '../runtime/int8-product.js';
import { normalizeInput } from './normalization.js';
import { SaeConfig, SaeParams } from './types.js';

export interface SaeEncoderOptions {
  /** Execution provider and threads, as for the model sessions; CPU with onnxruntime's default threads when absent. */
  session?: SessionSettings;
  /**
   * `auto` (default): the screen where create() measured it faster; `always`: batches of up to SCREEN_MAX_ROWS
   * wherever the architecture has a screen and its bound holds (to test it on small dictionaries); `never`.
   */
  screen?: 'auto' | 'always' | 'never';
}

export interface EncodeOptions {
  /** Also compute the reconstruction (default: codes only). */
  reconstruct?: boolean;
  /** Widen topK until every row's active codes fit, and return them at that width. */
  allActive?: boolean;
}

export interface SaeEncoding {
  /** Codes per vector: the topK asked for, or the width holding every active code with allActive. */
  width: number;
  /** [n, width] feature indices, highest activation first; a slot whose value is 0 holds no active feature. */
  indices: Int32Array;
  /** [n, width] activations matching `indices`. */
  values: Float32Array;
  /** [n] number of nonzero codes per vector. */
  l0: Int32Array;
  /** [n, dIn] reconstruction in the input's scale; null unless asked for. */
  xHat: Float32Array | null;
}

/** Decoder rows gathered per decoder run ([rows, width, dIn] floats), bounding its scratch to 64 MiB. */
const DECODE_GATHER_FLOATS = 2 ** 24;
/**
 * The largest batch create()'s doubling calibration tries; larger batches take the dense graph unless the screen
 * also pays on SCREEN_WIDE_ROWS (below), since the dense graph's float32 GEMM nears one core's peak there while
 * the screen's TopK over K' = 4k + 64 candidates and their re-score grow with every row. Measured (TopK 24576 ×
 * 768, k = 32, 1 thread, each graph's run timed in turn, load average 2), dense ÷ screened time: n = 1 2.68, 8 1.64,
 * 16 1.42, 32 1.25, 48 1.12, 64 1.07, 96 1.04, 128 1.01, 256 1.00. In bench/vs-torch.ts, where torch runs
 * between the calls, 64 vectors took 0.94–1.05× the dense time over four interleaved runs (16: 1.13–1.29×),
 * hence 32.
 */
export const SCREEN_MAX_ROWS = 32;
/**
 * Rows of one screened run past the doubling calibration. Where the screen still paid at SCREEN_MAX_ROWS, create()
 * times both graphs once more on this many rows (when that fits WIDE_CALIBRATION_MS) and, if the screen pays there
 * too, it takes every batch, larger ones in runs of this many rows. Past a few hundred rows both graphs' time per
 * row is flat (GEMM-bound), so a gain here holds for larger batches. Measured (24576 × 768, k = 32, 1 thread, best
 * of 5, AMD EPYC family 25 with AVX-512 VNNI) dense ÷ screened: n = 32 1.27, 64 1.25, 128 1.26, 256 1.22, 1024
 * 1.31, and 1.19–1.23 in create()'s runs on 128 rows, which add 0.35 s to its 1.65 s there; with
 * SCREEN_MAX_ROWS's figures above (1.01 at 128) the screen stays at 32 rows.
 */
export const SCREEN_WIDE_ROWS = 128;
/** The most create() spends on timing SCREEN_WIDE_ROWS, predicted from its runs on SCREEN_MAX_ROWS rows. */
const WIDE_CALIBRATION_MS = 1000;
/** The screen serves a batch size where its best time was at most this part of the dense graph's. */
const SCREEN_GAIN = 0.9;
/** Timed runs of each graph per batch size in create()'s calibration, after one untimed. */
const CALIBRATION_RUNS = 3;
/** What an encode reads of the screen graph (not the scores and bound it also outputs for checks). */
const SCREEN_OUTPUTS = ['indices', 'values', 'l0', 'screen_proved'];
/** Random vectors create() checks the screen's bound on, over every feature. */
const PROBES = 2;

export class SaeEncoder {
  private constructor(
    readonly config: SaeConfig,
    private session: ort.InferenceSession | null,
    private decoder: ort.InferenceSession | null,
    readonly provider: ExecutionProvider,
    private screen: ort.InferenceSession | null,
    /** Largest batch the screen takes (0: none; Infinity: every batch, in runs of SCREEN_WIDE_ROWS). */
    private readonly screenRows: number,
  ) {
    this.fullWidth = fixedWidth(config);
  }

  /** Smallest width known to hold every active code of the rows seen (a TopK dictionary's k). */
  private fullWidth: number;

  static async create(cfg: SaeConfig, params: SaeParams, opts: SaeEncoderOptions = {}): Promise<SaeEncoder> {
    const settings = opts.session ?? { device: 'cpu', threads: 0 };
    const { session, provider } = await createSession(buildEncoderGraph(cfg, params), settings);
    const decoder = await createSession(buildDecoderGraph(cfg, params), settings);
    const mode = opts.screen ?? 'auto';
    const weights = mode === 'never' ? null : await exactInt8Weights();
    const screenGraph = weights && buildScreenGraph(cfg, params, weights);
    let screen = screenGraph && (await createSession(screenGraph, settings)).session;
    let screenRows = 0;
    if (screen && (await screenBoundHolds(screen, cfg, params)))
      screenRows = mode === 'always' ? Infinity : await screenPays(session, screen, cfg);
    if (screen && screenRows === 0) {
      await screen.release();
      screen = null;
    }
    return new SaeEncoder(cfg, session, decoder.session, provider, screen, screenRows);
  }

  /** Whether batches of up to maxScreenRows vectors take the screened encode. */
  get screened(): boolean {
    return this.screen !== null;
  }

  /** Largest batch the screened encode takes; 0 without a screen, Infinity where it takes every batch. */
  get maxScreenRows(): number {
    return this.screen ? this.screenRows : 0;
  }

  /**
   * Bytes of weights onnxruntime holds for this encoder: W_enc, W_dec and the biases; with the screen also its
   * 8-bit copy of W_enc, W_encᵀ in float32 for the re-score, its scales, zero points and b_enc.
   */
  get residentBytes(): number {
    const { dIn, dSae } = this.config;
    const dense = 4 * (2 * dIn * dSae + dSae + 2 * dIn);
    return this.screen ? dense + screenWeightBytes(dIn, dSae) : dense;
  }

  /** The screen's scores [n, dSae] and bound [n] of vectors x, for checks. */
  async screenScores(x: Float32Array, n: number): Promise<{ pre: Float32Array; bound: Float32Array }> {
    if (!this.screen) throw new Error('SaeEncoder has no screen');
    return screenRun(this.screen, x, n, this.config.dIn, this.fullWidth);
  }

  async encode(x: Float32Array, n: number, topK: number, opts: EncodeOptions = {}): Promise<SaeEncoding> {
    const { dIn, dSae } = this.config;
    if (!Number.isInteger(n) || n < 0)
      throw new AtlasError('BAD_USER_INPUT', `The number of vectors must be a non-negative integer, got ${n}.`);
    if (x.length !== n * dIn) {
      throw new AtlasError(
        'DIMENSION_MISMATCH',
        `Expected ${n} vectors of width ${dIn} (${n * dIn} values) for this dictionary, got ${x.length} values.`,
      );
    }
    if (!Number.isInteger(topK) || topK < 1 || topK > dSae) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        `topK must be an integer from 1 to ${dSae} (the dictionary's width), got ${topK}.`,
      );
    }
    this.checkInput(x, n);
    const xHat = opts.reconstruct ? new Float32Array(0) : null;
    if (n === 0)
      return { width: topK, indices: new Int32Array(0), values: new Float32Array(0), l0: new Int32Array(0), xHat };
    if (!opts.reconstruct && !opts.allActive) return this.codes(x, n, topK);
    let enc = await this.codes(x, n, Math.max(topK, this.fullWidth));
    for (;;) {
      let maxL0 = 0;
      for (let r = 0; r < n; r++) if (enc.l0[r] > maxL0) maxL0 = enc.l0[r];
      if (maxL0 <= enc.width || enc.width >= dSae) break;
      this.fullWidth = Math.min(dSae, Math.max(2 * enc.width, 2 ** Math.ceil(Math.log2(maxL0))));
      enc = await this.codes(x, n, this.fullWidth);
    }
    if (opts.reconstruct) enc.xHat = await this.decode(x, n, enc);
    return opts.allActive ? enc : narrowEncoding(enc, n, topK);
  }

  private async codes(x: Float32Array, n: number, width: number): Promise<SaeEncoding> {
    if (!this.session) throw new Error('SaeEncoder is closed');
    if (this.screen && n <= this.screenRows) return this.screenedCodes(x, n, width);
    const out = await this.session.run(encoderFeeds(x, n, this.config.dIn, width));
    return {
      width,
      indices: out.indices.data as Int32Array,
      values: out.values.data as Float32Array,
      l0: out.l0.data as Int32Array,
      xHat: null,
    };
  }

  /**
   * codes() through the screen, in runs of at most SCREEN_WIDE_ROWS rows; the rows it cannot prove are encoded
   * again by the dense graph.
   */
  private async screenedCodes(x: Float32Array, n: number, width: number): Promise<SaeEncoding> {
    const { dIn } = this.config;
    if (n <= SCREEN_WIDE_ROWS) return screenedRun(this.session!, this.screen!, x, n, dIn, width);
    const enc: SaeEncoding = {
      width,
      indices: new Int32Array(n * width),
      values: new Float32Array(n * width),
      l0: new Int32Array(n),
      xHat: null,
    };
    for (let r0 = 0; r0 < n; r0 += SCREEN_WIDE_ROWS) {
      const m = Math.min(SCREEN_WIDE_ROWS, n - r0);
      const part = await screenedRun(this.session!, this.screen!, x.subarray(r0 * dIn, (r0 + m) * dIn), m, dIn, width);
      enc.indices.set(part.indices, r0 * width);
      enc.values.set(part.values, r0 * width);
      enc.l0.set(part.l0, r0);
    }
    return enc;
  }

  /** x_hat from codes holding every active code, in row chunks that bound the gathered decoder rows. */
  private async decode(x: Float32Array, n: number, enc: SaeEncoding): Promise<Float32Array> {
    if (!this.decoder) throw new Error('SaeEncoder is closed');
    const { dIn } = this.config;
    const w = enc.width;
    const chunk = Math.max(1, Math.floor(DECODE_GATHER_FLOATS / (w * dIn)));
    const xHat = new Float32Array(n * dIn);
    for (let r0 = 0; r0 < n; r0 += chunk) {
      const m = Math.min(chunk, n - r0);
      const out = await this.decoder.run({
        x: new ort.Tensor('float32', x.subarray(r0 * dIn, (r0 + m) * dIn), [m, dIn]),
        values: new ort.Tensor('float32', enc.values.subarray(r0 * w, (r0 + m) * w), [m, w]),
        indices: new ort.Tensor('int32', enc.indices.subarray(r0 * w, (r0 + m) * w), [m, w]),
      });
      if (m === n) return out.x_hat.data as Float32Array;
      xHat.set(out.x_hat.data as Float32Array, r0 * dIn);
    }
    return xHat;
  }

  /** Rejects values the graph would turn into NaN codes, naming the vector and component. */
  private checkInput(x: Float32Array, n: number): void {
    const d = this.config.dIn;
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i])) {
        throw new AtlasError(
          'BAD_USER_INPUT',
          `Vector ${Math.floor(i / d)} has ${x[i]} at component ${i % d}; values must be finite.`,
        );
      }
    }
    // layer_norm keeps constant vectors finite through its eps; constant_norm_rescale divides by the norm.
    if (this.config.normalization.kind !== 'constant_norm_rescale') return;
    for (let r = 0; r < n; r++) {
      if (x.subarray(r * d, (r + 1) * d).every((v) => v === 0)) {
        throw new AtlasError(
          'BAD_USER_INPUT',
          `Vector ${r} is all zeros; this dictionary rescales each input to a fixed norm and cannot encode it.`,
        );
      }
    }
  }

  async close(): Promise<void> {
    const sessions = [this.session, this.decoder, this.screen];
    this.session = this.decoder = this.screen = null;
    for (const s of sessions) if (s) await s.release();
  }
}

/** The first k of each row's `width` codes (codes are sorted, highest first). */
export function narrowEncoding(e: SaeEncoding, n: number, k: number): SaeEncoding {
  if (k === e.width) return e;
  const indices = new Int32Array(n * k);
  const values = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    indices.set(e.indices.subarray(r * e.width, r * e.width + k), r * k);
    values.set(e.values.subarray(r * e.width, r * e.width + k), r * k);
  }
  return { ...e, width: k, indices, values };
}

/** Codes known to hold every active one of any row: a TopK dictionary's k, else 1 (widened as rows demand). */
function fixedWidth(cfg: SaeConfig): number {
  return cfg.architecture === 'topk' && cfg.k ? Math.min(cfg.k, cfg.dSae) : 1;
}

function encoderFeeds(x: Float32Array, n: number, dIn: number, width: number): Record<string, ort.Tensor> {
  return {
    x: new ort.Tensor('float32', x, [n, dIn]),
    top_k: new ort.Tensor('int64', BigInt64Array.from([BigInt(width)]), [1]),
  };
}

/**
 * An encode through the screen: its codes, with the rows it cannot prove encoded again by the dense graph. What
 * an encode of a small batch costs, so create()'s calibration times this too.
 */
async function screenedRun(
  dense: ort.InferenceSession,
  screen: ort.InferenceSession,
  x: Float32Array,
  n: number,
  dIn: number,
  width: number,
): Promise<SaeEncoding> {
  const out = await screen.run(encoderFeeds(x, n, dIn, width), SCREEN_OUTPUTS);
  const enc: SaeEncoding = {
    width,
    indices: out.indices.data as Int32Array,
    values: out.values.data as Float32Array,
    l0: out.l0.data as Int32Array,
    xHat: null,
  };
  const proved = out.screen_proved.data as Uint8Array;
  const rows: number[] = [];
  for (let r = 0; r < n; r++) if (!proved[r]) rows.push(r);
  if (rows.length === 0) return enc;
  const xs = new Float32Array(rows.length * dIn);
  rows.forEach((r, i) => xs.set(x.subarray(r * dIn, (r + 1) * dIn), i * dIn));
  const again = await dense.run(encoderFeeds(xs, rows.length, dIn, width));
  rows.forEach((r, i) => {
    enc.indices.set((again.indices.data as Int32Array).subarray(i * width, (i + 1) * width), r * width);
    enc.values.set((again.values.data as Float32Array).subarray(i * width, (i + 1) * width), r * width);
    enc.l0[r] = (again.l0.data as Int32Array)[i];
  });
  return enc;
}

async function screenRun(screen: ort.InferenceSession, x: Float32Array, n: number, dIn: number, width: number) {
  const out = await screen.run(encoderFeeds(x, n, dIn, width), ['screen_pre', 'screen_bound']);
  return { pre: out.screen_pre.data as Float32Array, bound: out.screen_bound.data as Float32Array };
}

/** Whether the screen's bound holds over every feature for PROBES random vectors, pre in float64. */
async function screenBoundHolds(screen: ort.InferenceSession, cfg: SaeConfig, params: SaeParams): Promise<boolean> {
  const rand = mulberry32(0x5ae5);
  const x = Float32Array.from({ length: PROBES * cfg.dIn }, () => 2 * rand() - 1);
  const { pre, bound } = await screenRun(screen, x, PROBES, cfg.dIn, 1);
  const input = saeInput(params, cfg, normalizeInput(cfg, x, PROBES).x, PROBES);
  return screenBoundRatio(cfg, params, input, PROBES, pre, bound) <= 1;
}

/**
 * The largest of 1, 2, 4 … SCREEN_MAX_ROWS random vectors up to which the screened encode's best time (its rows
 * not proved encoded again included) was at most SCREEN_GAIN of the dense graph's (runs alternated, so both see
 * the same machine); 0 if not even one vector's; Infinity if it paid at every one of those and then on
 * SCREEN_WIDE_ROWS vectors, timed where the runs on SCREEN_MAX_ROWS predict that to take WIDE_CALIBRATION_MS or less.
 */
async function screenPays(dense: ort.InferenceSession, screen: ort.InferenceSession, cfg: SaeConfig): Promise<number> {
  const rand = mulberry32(0xca1b);
  const width = fixedWidth(cfg);
  const time = async (n: number) => {
    const x = Float32Array.from({ length: n * cfg.dIn }, () => 2 * rand() - 1);
    const feeds = encoderFeeds(x, n, cfg.dIn, width);
    const best = { dense: Infinity, screen: Infinity };
    for (let r = 0; r <= CALIBRATION_RUNS; r++) {
      for (const name of ['dense', 'screen'] as const) {
        const t0 = performance.now();
        await (name === 'screen' ? screenedRun(dense, screen, x, n, cfg.dIn, width) : dense.run(feeds));
        if (r > 0) best[name] = Math.min(best[name], performance.now() - t0);
      }
    }
    return best;
  };
  let rows = 0;
  let last = { dense: Infinity, screen: Infinity };
  for (let n = 1; n <= SCREEN_MAX_ROWS; n *= 2) {
    last = await time(n);
    if (last.screen > SCREEN_GAIN * last.dense) return rows;
    rows = n;
  }
  const predictedMs = (1 + CALIBRATION_RUNS) * (SCREEN_WIDE_ROWS / SCREEN_MAX_ROWS) * (last.dense + last.screen);
  if (predictedMs > WIDE_CALIBRATION_MS) return rows;
  const wide = await time(SCREEN_WIDE_ROWS);
  return wide.screen <= SCREEN_GAIN * wide.dense ? Infinity : rows;
}
