/**
 * Exact nearest decoder rows by cosine: an 8-bit screen, then an exact re-rank of the rows it cannot
 * rule out; batches above SCREEN_MAX_QUERIES take the float32 product instead.
 *
 * Ŵ: the decoder rows scaled to unit norm ([n, d] float32, zero rows stay zero), s_r = ŵ_r·q. One query's
 * scan of Ŵ is bound by memory (4·n·d bytes read), so a screen reads an 8-bit copy W' instead (n·d bytes):
 * - W': per row and block of BLOCK columns, codes c ∈ [0, 255] with a float32 scale t and zero point z
 *   (lo = min(0, min w), hi = max(0, max w), t = (hi − lo)/255, z = round(−lo/t)), w' = (c − z)·t;
 *   e_r = ‖ŵ_r − w'_r‖₂ in float64 at create time.
 * - A query goes onto two per-block int8 grids: q̃₁ = grid(q), q̃₂ = grid(q − q̃₁), grid(x) = t_x·k with
 *   t_x = max|x_blk|/127 and integers |k| ≤ 127; δ = ‖q − q̃₁ − q̃₂‖₂ (about 2e-5 at d = 768, against 5e-3
 *   for one grid: the second row costs the memory-bound kernel almost nothing). onnxruntime's MatMulNBits
 *   (com.microsoft, bits 8, accuracy_level 4: per-block int8 activations) re-quantizes each grid row to
 *   the same k, so it computes w'_r·q̃ᵢ with the int8 products summed exactly in int32 per block; only the
 *   float32 scaling and summing round. s'_r = w'_r·q̃₁ + w'_r·q̃₂ (added in float64).
 * - Bound B_r: |s_r − s'_r| ≤ |ŵ_r·(q − q̃₁ − q̃₂)| + |(ŵ_r − w'_r)·(q̃₁ + q̃₂)| + float32 error
 *   ≤ ‖ŵ‖max·δ + (‖q̃₁‖ + ‖q̃₂‖)·E_r, E_r = e_r + γ(‖w'_r‖ + 2√d·ζ_r). Float32 error of one grid row: at most
 *   d + 2·blocks terms (per-column products, or per block an int sum times two scales less a block sum
 *   times z·t) of at most 3 roundings each, summed in any order: ≤ γ·Σ|terms| with γ = (d + 2·blocks + 8)·2⁻²⁴
 *   (the 8 spare roundings also cover the float64 sum), Σ|terms| ≤ Σ|q̃_i|(|w'_i| + 2ζ_r) ≤
 *   ‖q̃‖(‖w'_r‖ + 2√d·ζ_r), ζ_r = the row's largest z·t. At d = 768, e_r ≈ 5e-3 and the γ term a tenth of it.
 * - Per query: L = k-th largest of s'_r − B_r; a row with s'_r + B_r < L has k rows surely above it, so the
 *   candidates (s'_r + B_r ≥ L) hold a true top k. They are re-scored from Ŵ in float64 (few: the rows
 *   within about 2·B of the k-th cosine) and the top k kept.
 * One screen session per CHUNK_BYTES of codes keeps each model far below protobuf's 2 GB limit. The
 * int8 kernels are MLAS's (x64 AVX2 or later, ARM64); elsewhere MatMulNBits dequantizes W' on every
 * run (correct, much slower). test/exact-search.test.ts checks the bound row by row, and create() checks it
 * over every row on two probe queries: where it fails (a kernel that re-quantizes otherwise), every search
 * takes the float32 product.
 * Measured (bench/vs-torch.ts --paths nearest, 1 thread, 768-d, one query a call, load average 1–2):
 * 16,384 / 100,000 clustered rows 1.02 / 5.88 ms (re-scoring 95 / 162 rows a query, at most 115 / 210),
 * uniformly random rows 0.92 / 5.83 ms (22 / 23, at most 27 / 34), against 2.39 / 16.85 ms for the float32
 * MatMul → TopK over Ŵ alone; create 0.5 / 2.4 s against 0.2 / 1.2 s; memory exactSearchBytes, +32%.
 */
import * as ort from 'onnxruntime-node';
import { MS_DOMAIN, floatTensor, node, serializeModel, uint8Tensor, valueInfo } from './onnx/proto.js';
import { createSession, type SessionSettings } from './runtime/session.js';
import { unitRows } from './compare/similarity.js';
import { mulberry32 } from './random.js';

export interface RowHits {
  /** Row indices, highest cosine first. */
  indices: Int32Array;
  cosines: Float32Array;
}

/** Screen scores of m queries ([m, n] row-major) and their bound: |ŵ_r·q_j − scores[j·n + r]| ≤ bound(j, r). */
export interface Screened {
  scores: Float64Array;
  bound(j: number, r: number): number;
}

/** Columns per quantization block, of W' and of the queries (MatMulNBits' block_size). */
const BLOCK = 32;
/** Most code bytes per screen session. */
const CHUNK_BYTES = 2 ** 30;
/**
 * Most queries searched through the screen at once; larger batches take the float32 product, which costs
 * little more for a batch than for one query, while the screen's kernel cost grows with every further row
 * and its selection and re-rank are per query. At 100,000 × 768 (1 thread, busy machine) the two broke even
 * near 4 queries: the screen took 0.5× the product's time for 1 or 2, 2.5× for 6 or 8.
 */
export const SCREEN_MAX_QUERIES = 2;
/** Queries create() checks the bound on, over every row, before it trusts the screen (boundHolds). */
const PROBES = 2;
/**
 * Rows quantized or checked between turns of the event loop (about 12 and 2 ms of work at d = 768): loading a
 * wide matrix, 1.2 s at 100,000 rows, then delays the server's other requests by one turn, not by all of it.
 */
const ROWS_PER_TURN = 1024;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Memory an ExactSearch over n rows of width d holds: Ŵ in float32; W' codes (padded to whole blocks) and per
 * block a scale, a zero point and the block sum onnxruntime packs beside them; E_r in float64.
 */
export function exactSearchBytes(n: number, d: number): number {
  const blocks = Math.ceil(d / BLOCK);
  return n * (4 * d + blocks * (BLOCK + 9) + 8);
}

/** Float32 cosines of a batch, S = Ŵ·Q̂ ([n, m]), and each query's top k by TopK over axis 0. */
function productGraph(d: number): Uint8Array {
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
 * norm ‖ŵ_r‖. Yields to the event loop every ROWS_PER_TURN rows.
 */
async function quantizeRows(w: Float32Array, d: number, r0: number, rows: number, slack: Float64Array) {
  const blocks = Math.ceil(d / BLOCK);
  const gamma = (d + 2 * blocks + 8) * 2 ** -24;
  const codes = new Uint8Array(rows * blocks * BLOCK);
  const scales = new Float32Array(rows * blocks);
  const zeros = new Uint8Array(rows * blocks);
  let maxNorm = 0;
  for (let r = 0; r < rows; r++) {
    if (r > 0 && r % ROWS_PER_TURN === 0) await nextTurn();
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
        const v = w[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
      }
      const t = Math.fround((hi - lo) / 255);
      const z = t > 0 ? Math.min(255, Math.round(-lo / t)) : 0;
      const at = (r * blocks + b) * BLOCK;
      scales[r * blocks + b] = t;
      zeros[r * blocks + b] = z;
      zeta = Math.max(zeta, z * t);
      // Codes from the reciprocal: any rounding of it is accounted for, as e_r is measured from the codes.
      const inv = t > 0 ? 1 / t : 0;
      for (let i = from; i < to; i++) {
        const v = w[i];
        let c = Math.floor(v * inv + z + 0.5);
        c = c < 0 ? 0 : c > 255 ? 255 : c;
        codes[at + i - from] = c;
        const dq = (c - z) * t;
        const e = v - dq;
        err += e * e;
        normQ += dq * dq;
        norm += v * v;
      }
      // Padding columns dequantize to 0.
      if (to - from < BLOCK) codes.fill(z, at + to - from, at + BLOCK);
    }
    slack[r0 + r] = Math.sqrt(err) + gamma * (Math.sqrt(normQ) + 2 * Math.sqrt(d) * zeta);
    maxNorm = Math.max(maxNorm, Math.sqrt(norm));
  }
  return { codes, scales, zeros, maxNorm };
}

/**
 * x (one query, or what two grids leave of it) onto its per-block int8 grid, into out[at, at + d); returns
 * ‖x̃‖₂. A block below 2⁻¹⁰⁰ is left at 0 rather than given a scale near float32's subnormals (what is left
 * out counts in δ).
 */
function onGrid(x: Float64Array, out: Float32Array, at: number): number {
  let norm = 0;
  for (let from = 0; from < x.length; from += BLOCK) {
    const to = Math.min(from + BLOCK, x.length);
    let amax = 0;
    for (let i = from; i < to; i++) amax = Math.max(amax, Math.abs(x[i]));
    const t = amax >= 2 ** -100 ? Math.fround(amax / 127) : 0;
    for (let i = from; i < to; i++) {
      const g = t > 0 ? Math.fround(Math.min(127, Math.max(-127, Math.round(x[i] / t))) * t) : 0;
      out[at + i] = g;
      norm += g * g;
    }
  }
  return Math.sqrt(norm);
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
  /** False when the bound failed create()'s check on this CPU: every search then takes the float32 product. */
  screened = true;

  private constructor(
    /** Null once closed. */
    private sessions: { screens: ort.InferenceSession[]; product: ort.InferenceSession } | null,
    /** Rows per screen session (the last may hold fewer). */
    private readonly chunkRows: number,
    /** Ŵ, [n, d] row-major. */
    private readonly w: Float32Array,
    /** E_r per row (the header's), so that B_r = E_r·(‖q̃₁‖ + ‖q̃₂‖) + ‖ŵ‖max·δ. */
    private readonly slack: Float64Array,
    /** ‖ŵ‖max. */
    private readonly maxNorm: number,
    readonly rows: number,
    readonly d: number,
  ) {}

  /**
   * Takes ownership of `decoders` ([n, d] row-major) and scales its rows to unit norm in place. `chunkBytes`:
   * the most code bytes per screen session (tests make it small to run several).
   */
  static async create(
    decoders: Float32Array,
    d: number,
    settings: SessionSettings,
    chunkBytes = CHUNK_BYTES,
  ): Promise<ExactSearch> {
    const n = decoders.length / d;
    unitRows(decoders, d, decoders);
    const chunkRows = Math.max(1, Math.floor(chunkBytes / (Math.ceil(d / BLOCK) * BLOCK)));
    const slack = new Float64Array(n);
    const made: ort.InferenceSession[] = [];
    let maxNorm = 0;
    try {
      made.push((await createSession(productGraph(d), settings)).session);
      for (let r0 = 0; r0 < n; r0 += chunkRows) {
        const rows = Math.min(chunkRows, n - r0);
        const q = await quantizeRows(decoders, d, r0, rows, slack);
        maxNorm = Math.max(maxNorm, q.maxNorm);
        made.push((await createSession(screenGraph(d, rows, q.codes, q.scales, q.zeros), settings)).session);
      }
    } catch (e) {
      for (const s of made) await s.release();
      throw e;
    }
    const [product, ...screens] = made;
    const search = new ExactSearch({ screens, product }, chunkRows, decoders, slack, maxNorm, n, d);
    search.screened = await search.boundHolds();
    return search;
  }

  /**
   * Whether B_r bounds |ŵ_r·q − s'_r| for every row on PROBES queries (a random direction, and the mean of
   * the first rows for cosines near the top). The bound rests on onnxruntime's int8 kernel re-quantizing the
   * grid rows to the same integers, as MLAS's x64 and ARM64 kernels do; a CPU whose kernel differs shows here.
   */
  private async boundHolds(): Promise<boolean> {
    const { d, rows: n, w } = this;
    const random = mulberry32(0x5eed);
    const q = new Float32Array(PROBES * d);
    for (let i = 0; i < d; i++) q[i] = random() - 0.5;
    for (let r = 0; r < Math.min(n, 8); r++) for (let i = 0; i < d; i++) q[d + i] += w[r * d + i];
    unitRows(q, d, q);
    const { scores, bound } = await this.screen(q, PROBES);
    for (let j = 0; j < PROBES; j++) {
      const probe = q.subarray(j * d, (j + 1) * d);
      for (let r = 0; r < n; r++) {
        if (r > 0 && r % ROWS_PER_TURN === 0) await nextTurn();
        if (Math.abs(dot(w, r * d, probe, d) - scores[j * n + r]) > bound(j, r)) return false;
      }
    }
    return true;
  }

  /** Memory held: exactSearchBytes(rows, d). */
  get bytes(): number {
    return exactSearchBytes(this.rows, this.d);
  }

  /** The screen's scores of m queries ([m, d] row-major) and their bounds (the header's B_r). */
  async screen(queries: Float32Array, m: number): Promise<Screened> {
    const { parts, norms, offsets } = await this.run(queries, m);
    const { rows: n, chunkRows, slack } = this;
    const scores = new Float64Array(m * n);
    parts.forEach((part, c) => {
      const [r0, rows] = [c * chunkRows, part.length / (2 * m)];
      for (let j = 0; j < m; j++) {
        for (let i = 0; i < rows; i++) scores[j * n + r0 + i] = part[2 * j * rows + i] + part[(2 * j + 1) * rows + i];
      }
    });
    return { scores, bound: (j, r) => slack[r] * norms[j] + offsets[j] };
  }

  /**
   * The k nearest rows (k clamped to the rows) of each of m unit queries ([m, d] row-major), by
   * cosine; ties go to either row.
   */
  async search(queries: Float32Array, m: number, k: number): Promise<RowHits[]> {
    const { rows: n, d } = this;
    const kk = Math.min(Math.max(1, k), n);
    if (m > SCREEN_MAX_QUERIES || !this.screened) return this.product(queries, m, kk);
    const { parts, norms, offsets } = await this.run(queries, m);
    return Array.from({ length: m }, (_, j) =>
      this.pick(parts, m, j, queries.subarray(j * d, (j + 1) * d), kk, norms[j], offsets[j]),
    );
  }

  /**
   * The screen's output per session ([2m, rows]: each query's two grid rows, whose sum is s'); per query
   * ‖q̃₁‖ + ‖q̃₂‖ and ‖ŵ‖max·δ, so that B_r = slack_r·norm + offset.
   */
  private async run(queries: Float32Array, m: number) {
    if (!this.sessions) throw new Error('ExactSearch is closed');
    const d = this.d;
    const grid = new Float32Array(2 * m * d);
    const norms = new Float64Array(m);
    const offsets = new Float64Array(m);
    const rest = new Float64Array(d);
    for (let j = 0; j < m; j++) {
      const [first, second] = [2 * j * d, (2 * j + 1) * d];
      for (let i = 0; i < d; i++) rest[i] = queries[j * d + i];
      norms[j] = onGrid(rest, grid, first);
      for (let i = 0; i < d; i++) rest[i] -= grid[first + i];
      norms[j] += onGrid(rest, grid, second);
      let err = 0;
      for (let i = 0; i < d; i++) err += (rest[i] - grid[second + i]) ** 2;
      offsets[j] = this.maxNorm * Math.sqrt(err);
    }
    const q = new ort.Tensor('float32', grid, [2 * m, d]);
    const parts: Float32Array[] = [];
    for (const screen of this.sessions.screens) parts.push((await screen.run({ q })).s.data as Float32Array);
    return { parts, norms, offsets };
  }

  /**
   * Query j's top k in one pass: a min-heap of the k largest lower bounds s'_r − B_r, and the rows whose
   * upper bound reaches its least so far (it only rises to L, so no candidate is missed); then those
   * reaching L are re-scored.
   */
  private pick(
    parts: Float32Array[],
    m: number,
    j: number,
    query: Float32Array,
    k: number,
    norm: number,
    offset: number,
  ): RowHits {
    const { d, slack, w, chunkRows } = this;
    const heap = new Float64Array(k).fill(-Infinity);
    const kept: number[] = [];
    const uppers: number[] = [];
    parts.forEach((part, c) => {
      const [r0, rows] = [c * chunkRows, part.length / (2 * m)];
      const [a, b] = [2 * j * rows, (2 * j + 1) * rows];
      for (let i = 0; i < rows; i++) {
        const score = part[a + i] + part[b + i];
        const bound = slack[r0 + i] * norm + offset;
        if (score + bound < heap[0]) continue;
        kept.push(r0 + i);
        uppers.push(score + bound);
        const lower = score - bound;
        if (lower <= heap[0]) continue;
        let at = 0;
        for (;;) {
          const left = 2 * at + 1;
          if (left >= k) break;
          const child = left + 1 < k && heap[left + 1] < heap[left] ? left + 1 : left;
          if (heap[child] >= lower) break;
          heap[at] = heap[child];
          at = child;
        }
        heap[at] = lower;
      }
    });
    const floor = heap[0];
    const candidates = kept.filter((_, i) => uppers[i] >= floor);
    const exact = candidates.map((r) => dot(w, r * d, query, d));
    const order = candidates.map((_, i) => i).sort((x, y) => exact[y] - exact[x] || candidates[x] - candidates[y]);
    const st = this.screening;
    st.queries++;
    st.candidates += candidates.length;
    st.most = Math.max(st.most, candidates.length);
    return {
      indices: Int32Array.from(order.slice(0, k), (i) => candidates[i]),
      cosines: Float32Array.from(order.slice(0, k), (i) => exact[i]),
    };
  }

  /** A batch's top k from the float32 product over Ŵ, Ŵ handed to onnxruntime without a copy. */
  private async product(queries: Float32Array, m: number, k: number): Promise<RowHits[]> {
    if (!this.sessions) throw new Error('ExactSearch is closed');
    const d = this.d;
    const q = new Float32Array(d * m);
    for (let j = 0; j < m; j++) for (let i = 0; i < d; i++) q[i * m + j] = queries[j * d + i];
    const out = await this.sessions.product.run({
      w: new ort.Tensor('float32', this.w, [this.rows, d]),
      q: new ort.Tensor('float32', q, [d, m]),
      k: new ort.Tensor('int64', BigInt64Array.from([BigInt(k)]), [1]),
    });
    const cos = out.top_cos.data as Float32Array;
    const idx = out.top_idx.data as BigInt64Array;
    return Array.from({ length: m }, (_, j) => ({
      indices: Int32Array.from({ length: k }, (_, r) => Number(idx[r * m + j])),
      cosines: Float32Array.from({ length: k }, (_, r) => cos[r * m + j]),
    }));
  }

  async close(): Promise<void> {
    const s = this.sessions;
    this.sessions = null;
    if (s) for (const x of [s.product, ...s.screens]) await x.release();
  }
}
