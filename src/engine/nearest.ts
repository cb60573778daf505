/**
 * Exact nearest decoder rows by cosine, by batched matrix products.
 *
 * With Ŵ the decoder rows scaled to unit norm ([n, d], zero rows stay zero) and Q̂ a batch of m unit
 * queries as columns ([d, m]), the cosines are S = Ŵ·Q̂ ([n, m]) and each query's k nearest rows are
 * TopK(S, k, axis 0). One onnxruntime graph, MatMul → TopK, runs a whole batch: Ŵ is read once from
 * memory per batch, which is what bounds a scan of a wide matrix (Ŵ on the left keeps MatMul from
 * repacking it per call). Ŵ lives in one Float32Array handed to onnxruntime as an input without a copy.
 */
import * as ort from 'onnxruntime-node';
import { node, serializeModel, valueInfo } from './onnx/proto.js';
import { createSession, type SessionSettings } from './runtime/session.js';
import { unitRows } from './compare/similarity.js';

export interface RowHits {
  /** Row indices, highest cosine first. */
  indices: Int32Array;
  cosines: Float32Array;
}

function searchGraph(d: number): Uint8Array {
  return serializeModel({
    name: 'exact-nearest',
    nodes: [
      node('MatMul', ['w', 'q'], ['s']),
      node('TopK', ['s', 'k'], ['top_cos', 'top_idx'], { axis: 0, largest: 1, sorted: 1 }),
    ],
    initializers: [],
    inputs: [valueInfo('w', 'float', ['n', d]), valueInfo('q', 'float', [d, 'm']), valueInfo('k', 'int64', [1])],
    outputs: [valueInfo('top_cos', 'float', ['k', 'm']), valueInfo('top_idx', 'int64', ['k', 'm'])],
  });
}

export class ExactSearch {
  private constructor(
    private session: ort.InferenceSession | null,
    private readonly w: ort.Tensor,
    readonly rows: number,
    readonly d: number,
  ) {}

  /** Takes ownership of `decoders` ([n, d] row-major) and scales its rows to unit norm in place. */
  static async create(decoders: Float32Array, d: number, settings: SessionSettings): Promise<ExactSearch> {
    const n = decoders.length / d;
    unitRows(decoders, d, decoders);
    const { session } = await createSession(searchGraph(d), settings);
    return new ExactSearch(session, new ort.Tensor('float32', decoders, [n, d]), n, d);
  }

  /** Memory held: the unit decoder matrix. */
  get bytes(): number {
    return this.rows * this.d * 4;
  }

  /**
   * The k nearest rows (k clamped to the rows) of each of m unit queries ([m, d] row-major), by
   * cosine; ties go to either row.
   */
  async search(queries: Float32Array, m: number, k: number): Promise<RowHits[]> {
    if (!this.session) throw new Error('ExactSearch is closed');
    const d = this.d;
    const kk = Math.max(1, Math.min(k, this.rows));
    const q = new Float32Array(d * m);
    for (let j = 0; j < m; j++) for (let i = 0; i < d; i++) q[i * m + j] = queries[j * d + i];
    const out = await this.session.run({
      w: this.w,
      q: new ort.Tensor('float32', q, [d, m]),
      k: new ort.Tensor('int64', BigInt64Array.from([BigInt(kk)]), [1]),
    });
    const cos = out.top_cos.data as Float32Array;
    const idx = out.top_idx.data as BigInt64Array;
    return Array.from({ length: m }, (_, j) => {
      const indices = new Int32Array(kk);
      const cosines = new Float32Array(kk);
      for (let r = 0; r < kk; r++) {
        indices[r] = Number(idx[r * m + j]);
        cosines[r] = cos[r * m + j];
      }
      return { indices, cosines };
    });
  }

  async close(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (s) await s.release();
  }
}
