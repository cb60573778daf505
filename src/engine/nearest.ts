/**
 * Exact nearest decoder rows by cosine: an 8-bit screen, then an exact re-rank of the rows it cannot
 * rule out.
 *
 * Ŵ: the decoder rows scaled to unit norm ([n, d] float32, zero rows stay zero), s_r = ŵ_r·q. One query's
 * scan of Ŵ is bound by memory (4·n·d bytes read), so a screen reads an 8-bit copy W' instead (n·d bytes):
 * - W': per row and block of BLOCK columns, codes c ∈ [0, 255] with a float32 scale t and zero point z
 *   (lo = min(0, min w), hi = max(0, max w), t = (hi − lo)/255, z = round(−lo/t)), w' = (c − z)·t;
 *   e_r = ‖ŵ_r − w'_r‖₂ in float64 at create time.
 * - Queries go onto a per-block int8 grid, q̃ = t_q·k (t_q = max|q_blk|/127, integers |k| ≤ 127),
 *   δ = ‖q − q̃‖₂. onnxruntime's MatMulNBits (com.microsoft, bits 8, accuracy_level 4, per-block int8
 *   activations) re-quantizes q̃ to the same k, so s'_r = w'_r·q̃ with int8 products summed exactly in
 *   int32 per block; only the float32 scaling and summing of block terms round.
 * - Bound: |s_r − s'_r| ≤ |ŵ_r·(q − q̃)| + |(ŵ_r − w'_r)·q̃| + float32 error ≤ ‖ŵ‖max·δ + ‖q̃‖·E_r, with
 *   E_r = e_r + γ(‖w'_r‖ + 2√d·ζ_r). Float32 error: at most d + 2·blocks terms (per-column products, or per
 *   block an int sum times two scales less a block sum times z·t) of at most 3 roundings each, in any
 *   order: ≤ γ·Σ|terms|, γ = (d + 2·blocks + 8)·2⁻²⁴, Σ|terms| ≤ Σ|q̃_i|(|w'_i| + 2ζ_r) ≤ ‖q̃‖(‖w'_r‖ + 2√d·ζ_r),
 *   ζ_r = the row's largest z·t. (At d = 768 the γ term is about a tenth of e_r ≈ 5e-3, and δ ≈ 5e-3.)
 * - Per query: L = k-th largest of s'_r − B_r; a row with s'_r + B_r < L has k rows surely above it, so the
 *   candidates (s'_r + B_r ≥ L) hold a true top k. They are re-scored from Ŵ in float64 (few rows: about
 *   those within 2·B of the k-th cosine) and the top k kept.
 * One screen session per CHUNK_BYTES of codes keeps each model far below protobuf's 2 GB limit. The
 * int8 kernels are MLAS's (x64 AVX2 or later, ARM64); elsewhere MatMulNBits dequantizes W' on every
 * run (correct, much slower).
 */
import * as ort from 'onnxruntime-node';
import { MS_DOMAIN, floatTensor, node, serializeModel, uint8Tensor, valueInfo } from './onnx/proto.js';
import { createSession, type SessionSettings } from './runtime/session.js';
import { unitRows } from './compare/similarity.js';

export interface RowHits {
  /** Row indices, highest cosine first. */
  indices: Int32Array;
  cosines: Float32Array;
}

/** Screen scores of m queries ([m, n] row-major) and their bound: |ŵ_r·q_j − scores[j·n + r]| ≤ bound(j, r). */
export interface Screened {
  scores: Float32Array;
  bound(j: number, r: number): number;
}

/** Columns per quantization block, of W' and of the queries (MatMulNBits' block_size). */
const BLOCK = 32;
/** Most code bytes per screen session. */
const CHUNK_BYTES = 2 ** 30;

/**
 * Memory an ExactSearch over n rows of width d holds: Ŵ in float32; W' codes (padded to whole blocks) and per
 * block a scale, a zero point and the block sum onnxruntime packs beside them; E_r in float64.
 */
export function exactSearchBytes(n: number, d: number): number {
  const blocks = Math.ceil(d / BLOCK);
  return n * (4 * d + blocks * (BLOCK + 9) + 8);
}

function screenGraph(d: number, rows: number, codes: Uint8Array, scales: Float32Array, zeros: Uint8Array) {
  const blocks = Math.ceil(d / BLOCK);
  return serializeModel({
    name: 'exact-nearest-screen',
    nodes: [
      {
        ...node('MatMulNBits', ['q', 'codes', 'scales', 'zeros'], ['s'], {
          K: d,
          N: rows,
          bits: 8,
          block_size: BLOCK,
          accuracy_level: 4,
        }),
        domain: MS_DOMAIN,
      },
    ],
    initializers: [
      uint8Tensor('codes', [rows, blocks, BLOCK], codes),
      floatTensor('scales', [rows * blocks], scales),
      uint8Tensor('zeros', [rows * blocks], zeros),
    ],
    inputs: [valueInfo('q', 'float', ['m', d])],
    outputs: [valueInfo('s', 'float', ['m', rows])],
  });
}

/**
 * W' of rows [r0, r0 + rows) of Ŵ; writes their E_r into `slack` and returns, besides, their largest
 * norm ‖ŵ_r‖.
 */
function quantizeRows(w: Float32Array, d: number, r0: number, rows: number, slack: Float64Array) {
  const blocks = Math.ceil(d / BLOCK);
  const gamma = (d + 2 * blocks + 8) * 2 ** -24;
  const codes = new Uint8Array(rows * blocks * BLOCK);
  const scales = new Float32Array(rows * blocks);
  const zeros = new Uint8Array(rows * blocks);
  let maxNorm = 0;
  for (let r = 0; r < rows; r++) {
    const row = (r0 + r) * d;
    let err = 0;
    let norm = 0;
    let normQ = 0;
    let zeta = 0;
    for (let b = 0; b < blocks; b++) {
      const from = row + b * BLOCK;
      const to = Math.min(from + BLOCK, row + d);
      let lo = 0;
      let hi = 0;
      for (let i = from; i < to; i++) {
        if (w[i] < lo) lo = w[i];
        else if (w[i] > hi) hi = w[i];
      }
      const t = Math.fround((hi - lo) / 255);
      const z = t > 0 ? Math.min(255, Math.round(-lo / t)) : 0;
      const at = (r * blocks + b) * BLOCK;
      scales[r * blocks + b] = t;
      zeros[r * blocks + b] = z;
      zeta = Math.max(zeta, z * t);
      for (let i = from; i < to; i++) {
        const c = t > 0 ? Math.min(255, Math.max(0, Math.round(w[i] / t) + z)) : 0;
        codes[at + i - from] = c;
        const dq = (c - z) * t;
        err += (w[i] - dq) ** 2;
        normQ += dq * dq;
        norm += w[i] * w[i];
      }
      // Padding columns dequantize to 0.
      codes.fill(z, at + to - from, at + BLOCK);
    }
    slack[r0 + r] = Math.sqrt(err) + gamma * (Math.sqrt(normQ) + 2 * Math.sqrt(d) * zeta);
    maxNorm = Math.max(maxNorm, Math.sqrt(norm));
  }
  return { codes, scales, zeros, maxNorm };
}

/**
 * Query `j` of `queries` onto its per-block int8 grid, written to the same place in `out`; returns ‖q̃‖₂ and
 * δ = ‖q − q̃‖₂.
 */
function onGrid(queries: Float32Array, j: number, d: number, out: Float32Array): { norm: number; err: number } {
  let norm = 0;
  let err = 0;
  for (let from = j * d; from < (j + 1) * d; from += BLOCK) {
    const to = Math.min(from + BLOCK, (j + 1) * d);
    let amax = 0;
    for (let i = from; i < to; i++) amax = Math.max(amax, Math.abs(queries[i]));
    const t = Math.fround(amax / 127);
    for (let i = from; i < to; i++) {
      const g = t > 0 ? Math.fround(Math.min(127, Math.max(-127, Math.round(queries[i] / t))) * t) : 0;
      out[i] = g;
      norm += g * g;
      err += (queries[i] - g) ** 2;
    }
  }
  return { norm: Math.sqrt(norm), err: Math.sqrt(err) };
}

/** ŵ_r·q in float64, w[at, at + d) against q; four partial sums let V8 overlap the multiply-adds. */
function dot(w: Float32Array, at: number, q: Float32Array, d: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let i = 0;
  for (; i + 3 < d; i += 4) {
    s0 += w[at + i] * q[i];
    s1 += w[at + i + 1] * q[i + 1];
    s2 += w[at + i + 2] * q[i + 2];
    s3 += w[at + i + 3] * q[i + 3];
  }
  for (; i < d; i++) s0 += w[at + i] * q[i];
  return s0 + s1 + (s2 + s3);
}

export class ExactSearch {
  /** Queries searched, candidates re-scored in all, and the most for one query (bench/vs-torch/nearest.ts). */
  readonly screening = { queries: 0, candidates: 0, most: 0 };

  private constructor(
    private screens: ort.InferenceSession[] | null,
    /** Rows per screen session (the last may hold fewer). */
    private readonly chunkRows: number,
    private readonly w: Float32Array,
    private readonly slack: Float64Array,
    private readonly maxNorm: number,
    readonly rows: number,
    readonly d: number,
  ) {}

  /** Takes ownership of `decoders` ([n, d] row-major) and scales its rows to unit norm in place. */
  static async create(decoders: Float32Array, d: number, settings: SessionSettings): Promise<ExactSearch> {
    const n = decoders.length / d;
    unitRows(decoders, d, decoders);
    const chunkRows = Math.max(1, Math.floor(CHUNK_BYTES / (Math.ceil(d / BLOCK) * BLOCK)));
    const slack = new Float64Array(n);
    const screens: ort.InferenceSession[] = [];
    let maxNorm = 0;
    try {
      for (let r0 = 0; r0 < n; r0 += chunkRows) {
        const rows = Math.min(chunkRows, n - r0);
        const q = quantizeRows(decoders, d, r0, rows, slack);
        maxNorm = Math.max(maxNorm, q.maxNorm);
        screens.push((await createSession(screenGraph(d, rows, q.codes, q.scales, q.zeros), settings)).session);
      }
    } catch (e) {
      for (const s of screens) await s.release();
      throw e;
    }
    return new ExactSearch(screens, chunkRows, decoders, slack, maxNorm, n, d);
  }

  /** Memory held: exactSearchBytes(rows, d). */
  get bytes(): number {
    return exactSearchBytes(this.rows, this.d);
  }

  /** The screen's scores of m queries ([m, d] row-major) and their bounds (the header's B_r). */
  async screen(queries: Float32Array, m: number): Promise<Screened> {
    const { scores, norms, offsets } = await this.run(queries, m);
    const slack = this.slack;
    return { scores, bound: (j, r) => slack[r] * norms[j] + offsets[j] };
  }

  /**
   * The k nearest rows (k clamped to the rows) of each of m unit queries ([m, d] row-major), by
   * cosine; ties go to either row.
   */
  async search(queries: Float32Array, m: number, k: number): Promise<RowHits[]> {
    const { scores, norms, offsets } = await this.run(queries, m);
    const { rows: n, d } = this;
    const kk = Math.min(Math.max(1, k), n);
    return Array.from({ length: m }, (_, j) =>
      this.pick(scores.subarray(j * n, (j + 1) * n), queries.subarray(j * d, (j + 1) * d), kk, norms[j], offsets[j]),
    );
  }

  /** Screen scores [m, n]; per query ‖q̃‖ and ‖ŵ‖max·δ, so that B_r = slack_r·norm + offset. */
  private async run(queries: Float32Array, m: number) {
    if (!this.screens) throw new Error('ExactSearch is closed');
    const { d, rows: n, chunkRows } = this;
    const grid = new Float32Array(m * d);
    const norms = new Float64Array(m);
    const offsets = new Float64Array(m);
    for (let j = 0; j < m; j++) {
      const { norm, err } = onGrid(queries, j, d, grid);
      norms[j] = norm;
      offsets[j] = this.maxNorm * err;
    }
    const q = new ort.Tensor('float32', grid, [m, d]);
    let scores: Float32Array;
    if (this.screens.length === 1) scores = (await this.screens[0].run({ q })).s.data as Float32Array;
    else {
      scores = new Float32Array(m * n);
      for (let c = 0; c < this.screens.length; c++) {
        const part = (await this.screens[c].run({ q })).s.data as Float32Array;
        const r0 = c * chunkRows;
        const rows = Math.min(chunkRows, n - r0);
        for (let j = 0; j < m; j++) scores.set(part.subarray(j * rows, (j + 1) * rows), j * n + r0);
      }
    }
    return { scores, norms, offsets };
  }

  /** One query's top k: the k-th largest lower bound, the rows whose upper bound reaches it, re-scored. */
  private pick(scores: Float32Array, query: Float32Array, k: number, norm: number, offset: number): RowHits {
    const { rows: n, d, slack, w } = this;
    // Min-heap of the k largest lower bounds s'_r − B_r.
    const heap = new Float64Array(k).fill(-Infinity);
    for (let r = 0; r < n; r++) {
      const lower = scores[r] - slack[r] * norm - offset;
      if (lower <= heap[0]) continue;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= k) break;
        const c = left + 1 < k && heap[left + 1] < heap[left] ? left + 1 : left;
        if (heap[c] >= lower) break;
        heap[i] = heap[c];
        i = c;
      }
      heap[i] = lower;
    }
    const floor = heap[0];
    const candidates: number[] = [];
    for (let r = 0; r < n; r++) if (scores[r] + slack[r] * norm + offset >= floor) candidates.push(r);
    const exact = candidates.map((r) => dot(w, r * d, query, d));
    const order = candidates.map((_, i) => i).sort((a, b) => exact[b] - exact[a] || candidates[a] - candidates[b]);
    const st = this.screening;
    st.queries++;
    st.candidates += candidates.length;
    st.most = Math.max(st.most, candidates.length);
    return {
      indices: Int32Array.from(order.slice(0, k), (i) => candidates[i]),
      cosines: Float32Array.from(order.slice(0, k), (i) => exact[i]),
    };
  }

  async close(): Promise<void> {
    const s = this.screens;
    this.screens = null;
    if (s) for (const x of s) await x.release();
  }
}
