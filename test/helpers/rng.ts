/** Seeded PRNG (mulberry32) and normal samples, so fixtures are the same on every run. */
import { mulberry32 } from '../../src/engine/random.js';

/** The engine's generator (src/engine/random.ts), under the name the tests use. */
export const rng = mulberry32;

export function normal(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/**
 * Decoder-like rows: unit-norm directions scattered around a few cluster centres, as trained
 * dictionaries are (pure random vectors are the worst case for HNSW and unlike real decoders).
 */
export function clusteredRows(seed: number, n: number, d: number, clusters = 12, spread = 0.6): Float32Array {
  const rand = rng(seed);
  const centres = Array.from({ length: clusters }, () => Array.from({ length: d }, () => normal(rand)));
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const c = centres[Math.floor(rand() * clusters)];
    let sq = 0;
    for (let j = 0; j < d; j++) {
      const v = c[j] + spread * normal(rand);
      out[i * d + j] = v;
      sq += v * v;
    }
    const norm = Math.sqrt(sq);
    for (let j = 0; j < d; j++) out[i * d + j] /= norm;
  }
  return out;
}
