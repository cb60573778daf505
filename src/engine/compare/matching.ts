/**
 * One-to-one matching of two equally wide dictionaries: the permutation π maximising Σᵢ cos(aᵢ, b_π(i)).
 * Its mean, (1/n) Σᵢ cos(aᵢ, b_π(i)), is the pairwise mean max cosine (PW-MCC) of SAELens RFC #230.
 *
 * 1. Auction (Bertsekas) with ε-scaling over each row's k best candidates (from bestMatches):
 *    an unassigned row i bids for j* = argmax_j (c_ij − p_j), raising p_j* by (v₁ − v₂ + ε), where v₂
 *    is the second-best net value. A row may also settle for "unassigned" (value UNASSIGNED), so the
 *    auction ends even when the candidate graph has no perfect matching. Each phase's result is
 *    ε-optimal: within n·ε of the best total over the candidate graph.
 * 2. Rows left over are matched to the columns left over exactly with the Hungarian algorithm
 *    (shortest augmenting paths with potentials, O(r³)) on their dense cosine block.
 */
import { AtlasError } from '../../errors.js';

/** Net value of staying unassigned: below any cosine, so a row only drops out when prices are high. */
const UNASSIGNED = -2;
const EPSILONS = [0.05, 0.005, 5e-4, 5e-5];
/** Hungarian is O(r³); above this many leftovers the pairing would take too long. */
export const MAX_LEFTOVER = 4000;

/**
 * Hungarian algorithm on a dense r×r benefit matrix (row-major), maximising the total. Returns the
 * column of each row.
 */
export function hungarian(benefit: Float64Array, r: number): Int32Array {
  // Minimise cost = −benefit; 1-based arrays with a virtual column 0 (e-maxx formulation).
  const INF = Number.POSITIVE_INFINITY;
  const u = new Float64Array(r + 1);
  const v = new Float64Array(r + 1);
  const p = new Int32Array(r + 1); // p[j]: row matched to column j (0 = none)
  const way = new Int32Array(r + 1);
  const minv = new Float64Array(r + 1);
  const used = new Uint8Array(r + 1);
  for (let i = 1; i <= r; i++) {
    p[0] = i;
    let j0 = 0;
    minv.fill(INF);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = p[j0];
      let delta = INF;
      let j1 = 0;
      const row = (i0 - 1) * r;
      for (let j = 1; j <= r; j++) {
        if (used[j]) continue;
        const cur = -benefit[row + j - 1] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (let j = 0; j <= r; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  const out = new Int32Array(r);
  for (let j = 1; j <= r; j++) out[p[j] - 1] = j - 1;
  return out;
}

/**
 * Auction over sparse candidates: `cand[i*k + t]` is a column for row i with benefit `benefit[i*k + t]`.
 * Returns the column of each row, −1 for rows left unassigned.
 */
export function auction(cand: Int32Array, benefit: Float32Array, k: number, nCols: number): Int32Array {
  const n = cand.length / k;
  const prices = new Float64Array(nCols);
  const rowOf = new Int32Array(nCols);
  const colOf = new Int32Array(n);
  for (const eps of EPSILONS) {
    rowOf.fill(-1);
    colOf.fill(-1);
    const queue: number[] = [];
    for (let i = n - 1; i >= 0; i--) queue.push(i);
    while (queue.length) {
      const i = queue.pop()!;
      let best = -1;
      let v1 = UNASSIGNED;
      let v2 = UNASSIGNED;
      for (let t = 0; t < k; t++) {
        const j = cand[i * k + t];
        const v = benefit[i * k + t] - prices[j];
        if (v > v1) {
          v2 = v1;
          v1 = v;
          best = j;
        } else if (v > v2) {
          v2 = v;
        }
      }
      if (best < 0) continue; // every candidate costs more than it is worth: stay unassigned
      prices[best] += v1 - v2 + eps;
      const previous = rowOf[best];
      rowOf[best] = i;
      colOf[i] = best;
      if (previous >= 0) {
        colOf[previous] = -1;
        queue.push(previous);
      }
    }
  }
  return colOf;
}

export interface OneToOne {
  /** Column of B matched to each row of A. */
  pairs: Int32Array;
  /** cos(aᵢ, b_pairs[i]). */
  cosines: Float32Array;
  /** Mean of `cosines`: the PW-MCC. */
  score: number;
  /** Rows that the auction left over and the Hungarian step paired. */
  leftover: number;
}

/**
 * One-to-one matching of the unit rows of A and B (same count n, width d), starting from each row's
 * k best candidates (bestMatches' topIndices/topCosines).
 */
export function matchOneToOne(
  unitA: Float32Array,
  unitB: Float32Array,
  d: number,
  topIndices: Int32Array,
  topCosines: Float32Array,
  k: number,
): OneToOne {
  const n = unitA.length / d;
  if (unitB.length / d !== n)
    throw new AtlasError(
      'DIMENSION_MISMATCH',
      `One-to-one matching needs dictionaries of the same width, got ${n} and ${unitB.length / d} features.`,
    );
  const pairs = auction(topIndices, topCosines, k, n);
  const taken = new Uint8Array(n);
  const rows: number[] = [];
  for (let i = 0; i < n; i++) {
    if (pairs[i] >= 0) taken[pairs[i]] = 1;
    else rows.push(i);
  }
  if (rows.length > 0) {
    if (rows.length > MAX_LEFTOVER) {
      throw new AtlasError(
        'UNSUPPORTED',
        `One-to-one matching left ${rows.length} features without a candidate pair (at most ${MAX_LEFTOVER} are ` +
          `paired exactly); the dictionaries share too little structure for a matching score.`,
      );
    }
    const cols: number[] = [];
    for (let j = 0; j < n; j++) if (!taken[j]) cols.push(j);
    const r = rows.length;
    const block = new Float64Array(r * r);
    for (let x = 0; x < r; x++) {
      for (let y = 0; y < r; y++) block[x * r + y] = dot(unitA, rows[x], unitB, cols[y], d);
    }
    const assigned = hungarian(block, r);
    for (let x = 0; x < r; x++) pairs[rows[x]] = cols[assigned[x]];
  }
  const cosines = new Float32Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    cosines[i] = dot(unitA, i, unitB, pairs[i], d);
    sum += cosines[i];
  }
  return { pairs, cosines, score: n ? sum / n : 0, leftover: rows.length };
}

function dot(a: Float32Array, i: number, b: Float32Array, j: number, d: number): number {
  let s = 0;
  for (let t = 0; t < d; t++) s += a[i * d + t] * b[j * d + t];
  return s;
}
