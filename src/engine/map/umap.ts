/**
 * UMAP (McInnes, Healy & Melville 2018) from a k-nearest-neighbour graph, in typed arrays.
 * umap-js implements the same steps over a string-keyed sparse matrix and number[][] embeddings,
 * which takes minutes on 16k points; this keeps its curve fit (findABParams) and does the rest here:
 *
 * 1. Per point i with neighbour distances d_ij: ρ_i = the smallest positive d_ij, and σ_i found by
 *    bisection so that Σ_j exp(−max(0, d_ij − ρ_i)/σ_i) = log₂ k (at least 1e-3 × the mean distance).
 * 2. Directed memberships w_ij = exp(−max(0, d_ij − ρ_i)/σ_i); symmetrised by the fuzzy union
 *    w = w_ij + w_ji − w_ij·w_ji. Edges below max(w)/epochs are dropped.
 * 3. SGD for `epochs` epochs on the cross entropy with q(d) = 1/(1 + a·d^(2b)): edge e is sampled
 *    every max(w)/w_e epochs, pulling both ends together by −2ab·d^(2(b−1))/(1 + a·d^(2b))·(y_i − y_j);
 *    each sample brings `negativeRate` random points pushed apart by 2b/((0.001 + d²)(1 + a·d^(2b)));
 *    gradients are clipped to ±4 and the learning rate falls linearly to 0.
 * Initial positions are uniform in [−10, 10]², as in umap-js.
 */
import { findABParams } from 'umap-js/dist/umap.js';

export interface UmapOptions {
  epochs: number;
  minDist: number;
  spread?: number;
  negativeRate?: number;
  random: () => number;
  /** Called after every epoch with the number done; a promise is awaited (to yield to the event loop). */
  onEpoch?: (done: number) => void | Promise<void>;
}

const SMOOTH_TOLERANCE = 1e-5;
const MIN_DIST_SCALE = 1e-3;
const CLIP = 4;

/** ρ and σ per point (step 1). `distances` is [n, k] row-major, each row ascending. */
export function smoothKnn(distances: Float32Array, n: number, k: number): { rho: Float64Array; sigma: Float64Array } {
  const target = Math.log2(k);
  const rho = new Float64Array(n);
  const sigma = new Float64Array(n);
  let total = 0;
  for (let t = 0; t < distances.length; t++) total += distances[t];
  const meanAll = total / Math.max(1, distances.length);
  for (let i = 0; i < n; i++) {
    const row = distances.subarray(i * k, (i + 1) * k);
    let r = 0;
    for (let j = 0; j < k; j++) {
      if (row[j] > 0) {
        r = row[j];
        break;
      }
    }
    rho[i] = r;
    let lo = 0;
    let hi = Infinity;
    let mid = 1;
    for (let iter = 0; iter < 64; iter++) {
      let psum = 0;
      for (let j = 0; j < k; j++) {
        const d = row[j] - r;
        psum += d > 0 ? Math.exp(-d / mid) : 1;
      }
      if (Math.abs(psum - target) < SMOOTH_TOLERANCE) break;
      if (psum > target) {
        hi = mid;
        mid = (lo + hi) / 2;
      } else {
        lo = mid;
        mid = hi === Infinity ? mid * 2 : (lo + hi) / 2;
      }
    }
    let mean = 0;
    for (let j = 0; j < k; j++) mean += row[j];
    mean /= k;
    sigma[i] = Math.max(mid, MIN_DIST_SCALE * (r > 0 ? mean : meanAll));
  }
  return { rho, sigma };
}

/** The symmetrised fuzzy graph (step 2) as edge lists. */
export function fuzzyGraph(
  indices: Int32Array,
  distances: Float32Array,
  n: number,
  k: number,
): { head: Int32Array; tail: Int32Array; weight: Float64Array } {
  const { rho, sigma } = smoothKnn(distances, n, k);
  const directed = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < k; t++) {
      const j = indices[i * k + t];
      if (j < 0 || j === i) continue;
      const d = distances[i * k + t] - rho[i];
      directed.set(i * n + j, d > 0 ? Math.exp(-d / sigma[i]) : 1);
    }
  }
  const head: number[] = [];
  const tail: number[] = [];
  const weight: number[] = [];
  for (const [key, w] of directed) {
    const i = Math.floor(key / n);
    const j = key - i * n;
    const back = directed.get(j * n + i);
    // Each undirected pair is emitted from both ends, as umap-learn's symmetric matrix holds it twice.
    const union = back === undefined ? w : w + back - w * back;
    head.push(i);
    tail.push(j);
    weight.push(union);
    if (back === undefined) {
      head.push(j);
      tail.push(i);
      weight.push(union);
    }
  }
  return { head: Int32Array.from(head), tail: Int32Array.from(tail), weight: Float64Array.from(weight) };
}

/** 2-D UMAP embedding [n, 2] of a kNN graph (indices and distances [n, k], rows ascending). */
export async function umap(
  indices: Int32Array,
  distances: Float32Array,
  n: number,
  k: number,
  opts: UmapOptions,
): Promise<Float32Array> {
  const graph = fuzzyGraph(indices, distances, n, k);
  let maxW = 0;
  for (const w of graph.weight) maxW = Math.max(maxW, w);
  const keep: number[] = [];
  for (let e = 0; e < graph.weight.length; e++) if (graph.weight[e] >= maxW / opts.epochs) keep.push(e);
  const m = keep.length;
  const head = Int32Array.from(keep, (e) => graph.head[e]);
  const tail = Int32Array.from(keep, (e) => graph.tail[e]);
  const epochsPerSample = Float64Array.from(keep, (e) => maxW / graph.weight[e]);
  const negativeRate = opts.negativeRate ?? 5;
  const epochsPerNegative = epochsPerSample.map((v) => v / negativeRate);
  const nextSample = Float64Array.from(epochsPerSample);
  const nextNegative = Float64Array.from(epochsPerNegative);
  const { a, b } = findABParams(opts.spread ?? 1, opts.minDist);
  const y = new Float32Array(n * 2);
  for (let i = 0; i < y.length; i++) y[i] = opts.random() * 20 - 10;
  const clip = (v: number) => (v > CLIP ? CLIP : v < -CLIP ? -CLIP : v);

  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const alpha = 1 - epoch / opts.epochs;
    for (let e = 0; e < m; e++) {
      if (nextSample[e] > epoch) continue;
      const i = head[e];
      const j = tail[e];
      let dx = y[2 * i] - y[2 * j];
      let dy = y[2 * i + 1] - y[2 * j + 1];
      let d2 = dx * dx + dy * dy;
      if (d2 > 0) {
        const pb = Math.pow(d2, b);
        const coeff = (-2 * a * b * (pb / d2)) / (a * pb + 1);
        const gx = clip(coeff * dx) * alpha;
        const gy = clip(coeff * dy) * alpha;
        y[2 * i] += gx;
        y[2 * i + 1] += gy;
        y[2 * j] -= gx;
        y[2 * j + 1] -= gy;
      }
      nextSample[e] += epochsPerSample[e];
      const negatives = Math.floor((epoch - nextNegative[e]) / epochsPerNegative[e]);
      for (let s = 0; s < negatives; s++) {
        const q = Math.floor(opts.random() * n);
        dx = y[2 * i] - y[2 * q];
        dy = y[2 * i + 1] - y[2 * q + 1];
        d2 = dx * dx + dy * dy;
        if (d2 > 0) {
          const coeff = (2 * b) / ((0.001 + d2) * (a * Math.pow(d2, b) + 1));
          y[2 * i] += clip(coeff * dx) * alpha;
          y[2 * i + 1] += clip(coeff * dy) * alpha;
        } else if (i !== q) {
          y[2 * i] += CLIP * alpha;
          y[2 * i + 1] += CLIP * alpha;
        }
      }
      nextNegative[e] += negatives * epochsPerNegative[e];
    }
    await opts.onEpoch?.(epoch + 1);
  }
  return y;
}
