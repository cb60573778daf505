/**
 * Decoder matrices with known structure for comparison and map tests: a permuted, noised copy of a
 * dictionary (the planted permutation is the answer), a wider dictionary made by splitting chosen
 * features into children (the parent is the answer), and rows drawn around separated cluster centres.
 */
import { normal, rng } from './rng.js';

export function randomRows(seed: number, n: number, d: number): Float32Array {
  const rand = rng(seed);
  return Float32Array.from({ length: n * d }, () => normal(rand));
}

/** Row i of the copy is row perm[i] of `rows` plus Gaussian noise of `noise` times its norm per √d. */
export function permutedCopy(
  rows: Float32Array,
  d: number,
  seed: number,
  noise: number,
): { rows: Float32Array; perm: number[] } {
  const n = rows.length / d;
  const rand = rng(seed);
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const out = new Float32Array(rows.length);
  for (let i = 0; i < n; i++) {
    let sq = 0;
    for (let t = 0; t < d; t++) sq += rows[perm[i] * d + t] ** 2;
    const scale = (noise * Math.sqrt(sq)) / Math.sqrt(d);
    for (let t = 0; t < d; t++) out[i * d + t] = rows[perm[i] * d + t] + scale * normal(rand);
  }
  return { rows: out, perm };
}

/**
 * A wider dictionary: every narrow feature appears once (rescaled), except those in `split`, each of
 * which is replaced by `children` features cos(θ)·f̂ + sin(θ)·û with û a random unit direction
 * orthogonal to f̂. Returns the rows and the parent of each wide feature.
 */
export function splitDictionary(
  narrow: Float32Array,
  d: number,
  seed: number,
  split: Set<number>,
  children: number,
  cosTheta: number,
): { rows: Float32Array; parent: number[] } {
  const n = narrow.length / d;
  const rand = rng(seed);
  const rows: number[] = [];
  const parent: number[] = [];
  const sinTheta = Math.sqrt(1 - cosTheta * cosTheta);
  for (let i = 0; i < n; i++) {
    const f = Array.from(narrow.subarray(i * d, (i + 1) * d));
    const fn = Math.hypot(...f);
    const unit = f.map((x) => x / fn);
    const copies = split.has(i) ? children : 1;
    for (let c = 0; c < copies; c++) {
      if (copies === 1) {
        rows.push(...unit.map((x) => 2 * x));
      } else {
        const u = Array.from({ length: d }, () => normal(rand));
        const along = u.reduce((s, x, t) => s + x * unit[t], 0);
        for (let t = 0; t < d; t++) u[t] -= along * unit[t];
        const un = Math.hypot(...u);
        rows.push(...unit.map((x, t) => cosTheta * x + (sinTheta * u[t]) / un));
      }
      parent.push(i);
    }
  }
  return { rows: Float32Array.from(rows), parent };
}

/** `clusters` groups of n/clusters rows each, spread around random centres; returns rows and labels. */
export function plantedClusters(
  seed: number,
  n: number,
  d: number,
  clusters: number,
  spread: number,
): { rows: Float32Array; label: number[] } {
  const rand = rng(seed);
  const centres = Array.from({ length: clusters }, () => Array.from({ length: d }, () => normal(rand)));
  const rows = new Float32Array(n * d);
  const label: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % clusters;
    label.push(c);
    for (let t = 0; t < d; t++) rows[i * d + t] = centres[c][t] + spread * normal(rand);
  }
  return { rows, label };
}

/** cos(a_i, b_j) in float64, the oracle for every test here. */
export function cosine64(a: Float32Array, i: number, b: Float32Array, j: number, d: number): number {
  let dot = 0,
    na = 0,
    nb = 0;
  for (let t = 0; t < d; t++) {
    dot += a[i * d + t] * b[j * d + t];
    na += a[i * d + t] ** 2;
    nb += b[j * d + t] ** 2;
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0;
}
