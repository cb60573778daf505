/**
 * The k nearest neighbours of every unit row by cosine, the point itself left out.
 *
 * Up to `exactBelow` rows: exact, one batched Gemm of the rows against themselves (n² d flops).
 * Above: an inverted-file search. Spherical k-means (C = ⌈√n⌉ centroids drawn from the rows with a
 * seeded generator, 5 Lloyd rounds, centroid = normalised mean of its members) partitions the rows;
 * every row is then matched exactly against the members of the `probes` clusters whose centroids
 * are nearest to it (default ⌈C/4⌉), batched per cluster. That costs about n² d · probes / C, a
 * quarter of the exact search, and a neighbour is missed only when it sits in none of those clusters
 * (recall@15 in bench/compare.ts).
 */
import { bestMatches } from '../compare/similarity.js';
import type { SessionSettings } from '../runtime/session.js';

export interface Neighbours {
  /** [n, k] row-major, nearest first. */
  indices: Int32Array;
  cosines: Float32Array;
  k: number;
}

export interface NeighbourOptions {
  session: SessionSettings;
  random: () => number;
  /** Exact search up to this many rows (default 20,000). */
  exactBelow?: number;
  /** Clusters searched per cluster (default ⌈C/4⌉ of the C = ⌈√n⌉ clusters). */
  probes?: number;
  onProgress?: (fraction: number) => void;
}

const KMEANS_ROUNDS = 5;

function gather(unit: Float32Array, d: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * d);
  for (let r = 0; r < rows.length; r++) out.set(unit.subarray(rows[r] * d, (rows[r] + 1) * d), r * d);
  return out;
}

/** Keeps the first k matches of each row that are not the row itself; `ids` maps match columns to rows. */
function dropSelf(self: ArrayLike<number>, ids: ArrayLike<number>, top: Int32Array, cos: Float32Array, kk: number, k: number, out: Neighbours): void {
  for (let r = 0; r < self.length; r++) {
    let t = 0;
    for (let c = 0; c < kk && t < k; c++) {
      const j = ids[top[r * kk + c]];
      if (j === self[r]) continue;
      out.indices[self[r] * k + t] = j;
      out.cosines[self[r] * k + t] = cos[r * kk + c];
      t++;
    }
  }
}

export async function nearestNeighbours(unit: Float32Array, d: number, k: number, opts: NeighbourOptions): Promise<Neighbours> {
  const n = unit.length / d;
  const out: Neighbours = { indices: new Int32Array(n * k).fill(-1), cosines: new Float32Array(n * k), k };
  const all = Int32Array.from({ length: n }, (_, i) => i);
  if (n <= (opts.exactBelow ?? 20_000)) {
    const m = await bestMatches(unit, unit, d, { k: k + 1, session: opts.session, onProgress: opts.onProgress });
    dropSelf(all, all, m.topIndices, m.topCosines, m.k, k, out);
    return out;
  }

  // Spherical k-means from C distinct rows (partial Fisher–Yates shuffle).
  const C = Math.ceil(Math.sqrt(n));
  const order = Int32Array.from(all);
  for (let i = 0; i < C; i++) {
    const j = i + Math.floor(opts.random() * (n - i));
    [order[i], order[j]] = [order[j], order[i]];
  }
  let centroids = gather(unit, d, order.subarray(0, C));
  for (let round = 0; round < KMEANS_ROUNDS; round++) {
    const assign = (await bestMatches(unit, centroids, d, { k: 1, session: opts.session })).topIndices;
    const sums = new Float64Array(C * d);
    for (let i = 0; i < n; i++) {
      const c = assign[i];
      for (let t = 0; t < d; t++) sums[c * d + t] += unit[i * d + t];
    }
    const next = new Float32Array(C * d);
    for (let c = 0; c < C; c++) {
      let sq = 0;
      for (let t = 0; t < d; t++) sq += sums[c * d + t] ** 2;
      // An emptied cluster keeps its centroid.
      if (sq === 0) next.set(centroids.subarray(c * d, (c + 1) * d), c * d);
      else for (let t = 0; t < d; t++) next[c * d + t] = sums[c * d + t] / Math.sqrt(sq);
    }
    centroids = next;
    opts.onProgress?.((0.1 * (round + 1)) / KMEANS_ROUNDS);
  }
  // Each point is searched for in the clusters of its `probes` nearest centroids.
  const probes = Math.min(C, opts.probes ?? Math.ceil(C / 4));
  const probe = await bestMatches(unit, centroids, d, { k: probes, session: opts.session });
  const members: number[][] = Array.from({ length: C }, () => []);
  const queries: number[][] = Array.from({ length: C }, () => []);
  for (let i = 0; i < n; i++) {
    members[probe.topIndices[i * probe.k]].push(i);
    for (let p = 0; p < probe.k; p++) queries[probe.topIndices[i * probe.k + p]].push(i);
  }
  out.cosines.fill(-Infinity);
  let done = 0;
  for (let c = 0; c < C; c++) {
    done += queries[c].length;
    if (members[c].length === 0 || queries[c].length === 0) continue;
    const m = await bestMatches(gather(unit, d, queries[c]), gather(unit, d, members[c]), d, { k: k + 1, session: opts.session });
    // Merge into each query's sorted top k (members of different clusters never repeat).
    for (let r = 0; r < queries[c].length; r++) {
      const q = queries[c][r];
      for (let t = 0; t < m.k; t++) {
        const j = members[c][m.topIndices[r * m.k + t]];
        const cos = m.topCosines[r * m.k + t];
        if (j === q || cos <= out.cosines[q * k + k - 1]) continue;
        let s2 = k - 1;
        while (s2 > 0 && out.cosines[q * k + s2 - 1] < cos) {
          out.cosines[q * k + s2] = out.cosines[q * k + s2 - 1];
          out.indices[q * k + s2] = out.indices[q * k + s2 - 1];
          s2--;
        }
        out.cosines[q * k + s2] = cos;
        out.indices[q * k + s2] = j;
      }
    }
    opts.onProgress?.(0.1 + (0.9 * done) / (n * probe.k));
  }
  // Points whose probed clusters held fewer than k others are searched exactly.
  const short: number[] = [];
  for (let i = 0; i < n; i++) if (out.indices[i * k + k - 1] < 0) short.push(i);
  if (short.length) {
    const m = await bestMatches(gather(unit, d, short), unit, d, { k: k + 1, session: opts.session });
    dropSelf(short, all, m.topIndices, m.topCosines, m.k, k, out);
  }
  return out;
}
