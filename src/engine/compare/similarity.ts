/**
 * Exact cosine best matches between two sets of decoder rows, by batched matrix products.
 *
 * With Â and B̂ the rows scaled to unit norm (a zero row stays zero, so its cosines are 0), the
 * cosine matrix is S = Â·B̂ᵀ. It is never held whole: blocks of m rows of A go through one
 * onnxruntime graph, Gemm(Â_blk, B̂, transB) → TopK(k, axis 1) for A's side, and ReduceMax / ArgMax
 * over axis 0 for B's side, which are folded across blocks here. The block height keeps one block of
 * S near 64 MB. onnxruntime's Gemm is multi-threaded and several times faster than a JS loop.
 */
import * as ort from 'onnxruntime-node';
import { node, serializeModel, valueInfo, int64Tensor } from '../onnx/proto.js';
import { createSession, type SessionSettings } from '../runtime/session.js';

/**
 * Scales each row of an [n, d] row-major matrix to unit Euclidean norm (zero rows stay zero), into
 * `out` (a new array by default; pass `rows` itself to scale in place).
 */
export function unitRows(
  rows: Float32Array,
  d: number,
  out: Float32Array = new Float32Array(rows.length),
): Float32Array {
  const n = rows.length / d;
  for (let i = 0; i < n; i++) {
    let sq = 0;
    for (let j = 0; j < d; j++) sq += rows[i * d + j] * rows[i * d + j];
    const s = sq > 0 ? 1 / Math.sqrt(sq) : 0;
    for (let j = 0; j < d; j++) out[i * d + j] = rows[i * d + j] * s;
  }
  return out;
}

export interface BestMatches {
  /** Per row of A, its k best rows of B by cosine, best first: [nA, k] row-major. */
  topIndices: Int32Array;
  topCosines: Float32Array;
  k: number;
  /** Per row of B, its best row of A and that cosine. */
  reverseIndices: Int32Array;
  reverseCosines: Float32Array;
}

export interface BestMatchOptions {
  /** How many best matches to keep per row of A (clamped to the rows of B). */
  k: number;
  session: SessionSettings;
  /** Fraction of A's rows done, after each block. */
  onProgress?: (fraction: number) => void;
  /** Rows of A per block (default: a block of S is about 16M cosines). */
  blockRows?: number;
}

const BLOCK_CELLS = 16 * 1024 * 1024;

function matchGraph(d: number, nB: number, k: number): Uint8Array {
  return serializeModel({
    name: 'best-matches',
    nodes: [
      node('Gemm', ['a', 'b'], ['s'], { transB: 1 }),
      node('TopK', ['s', 'k'], ['top_cos', 'top_idx'], { axis: 1, largest: 1, sorted: 1 }),
      node('ReduceMax', ['s'], ['col_max'], { axes: [0], keepdims: 0 }),
      node('ArgMax', ['s'], ['col_arg'], { axis: 0, keepdims: 0 }),
    ],
    initializers: [int64Tensor('k', [1], [k])],
    inputs: [valueInfo('a', 'float', ['m', d]), valueInfo('b', 'float', [nB, d])],
    outputs: [
      valueInfo('top_cos', 'float', ['m', k]),
      valueInfo('top_idx', 'int64', ['m', k]),
      valueInfo('col_max', 'float', [nB]),
      valueInfo('col_arg', 'int64', [nB]),
    ],
  });
}

/**
 * Best matches of every unit row of A among the unit rows of B and back. `unitA`/`unitB` must
 * already be unit rows (see unitRows); ties go to the lower index.
 */
export async function bestMatches(
  unitA: Float32Array,
  unitB: Float32Array,
  d: number,
  opts: BestMatchOptions,
): Promise<BestMatches> {
  const nA = unitA.length / d;
  const nB = unitB.length / d;
  const k = Math.max(1, Math.min(opts.k, nB));
  const topIndices = new Int32Array(nA * k);
  const topCosines = new Float32Array(nA * k);
  const reverseIndices = new Int32Array(nB);
  const reverseCosines = new Float32Array(nB).fill(-Infinity);
  const { session } = await createSession(matchGraph(d, nB, k), opts.session);
  try {
    const b = new ort.Tensor('float32', unitB, [nB, d]);
    const m = opts.blockRows ?? Math.max(1, Math.min(nA, Math.floor(BLOCK_CELLS / nB)));
    for (let start = 0; start < nA; start += m) {
      const rows = Math.min(m, nA - start);
      const a = new ort.Tensor('float32', unitA.subarray(start * d, (start + rows) * d), [rows, d]);
      const out = await session.run({ a, b });
      topCosines.set(out.top_cos.data as Float32Array, start * k);
      const idx = out.top_idx.data as BigInt64Array;
      for (let i = 0; i < idx.length; i++) topIndices[start * k + i] = Number(idx[i]);
      const colMax = out.col_max.data as Float32Array;
      const colArg = out.col_arg.data as BigInt64Array;
      // Strictly greater: an earlier block (lower index) keeps a tie.
      for (let j = 0; j < nB; j++) {
        if (colMax[j] > reverseCosines[j]) {
          reverseCosines[j] = colMax[j];
          reverseIndices[j] = start + Number(colArg[j]);
        }
      }
      for (const t of Object.values(out)) t.dispose?.();
      opts.onProgress?.((start + rows) / nA);
      // Let the event loop run (progress bars, Ctrl-C, other requests) between blocks.
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    await session.release();
  }
  return { topIndices, topCosines, k, reverseIndices, reverseCosines };
}
