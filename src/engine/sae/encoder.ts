/** Runs a dictionary's encoder graph in onnxruntime: top-k features, L0 and reconstruction per vector. */
import * as ort from 'onnxruntime-node';
import { AtlasError } from '../../errors.js';
import { createSession, ExecutionProvider, SessionSettings } from '../runtime/session.js';
import { buildEncoderGraph } from './encoder-graph.js';
import { SaeConfig, SaeParams } from './types.js';

export interface SaeEncoderOptions {
  /** Execution provider and threads, as for the model sessions; CPU with onnxruntime's default threads when absent. */
  session?: SessionSettings;
}

export interface SaeEncoding {
  /** [n, topK] feature indices, highest activation first; a slot whose value is 0 holds no active feature. */
  indices: Int32Array;
  /** [n, topK] activations matching `indices`. */
  values: Float32Array;
  /** [n] number of nonzero codes per vector. */
  l0: Int32Array;
  /** [n, dIn] reconstruction in the input's scale. */
  xHat: Float32Array;
}

export class SaeEncoder {
  private constructor(
    readonly config: SaeConfig,
    private session: ort.InferenceSession | null,
    readonly provider: ExecutionProvider,
  ) {}

  static async create(cfg: SaeConfig, params: SaeParams, opts: SaeEncoderOptions = {}): Promise<SaeEncoder> {
    const model = buildEncoderGraph(cfg, params);
    const { session, provider } = await createSession(model, opts.session ?? { device: 'cpu', threads: 0 });
    return new SaeEncoder(cfg, session, provider);
  }

  async encode(x: Float32Array, n: number, topK: number): Promise<SaeEncoding> {
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
    if (n === 0)
      return {
        indices: new Int32Array(0),
        values: new Float32Array(0),
        l0: new Int32Array(0),
        xHat: new Float32Array(0),
      };
    if (!this.session) throw new Error('SaeEncoder is closed');
    const out = await this.session.run({
      x: new ort.Tensor('float32', x, [n, dIn]),
      top_k: new ort.Tensor('int64', BigInt64Array.from([BigInt(topK)]), [1]),
    });
    return {
      indices: out.indices.data as Int32Array,
      values: out.values.data as Float32Array,
      l0: out.l0.data as Int32Array,
      xHat: out.x_hat.data as Float32Array,
    };
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
    const s = this.session;
    this.session = null;
    if (s) await s.release();
  }
}
