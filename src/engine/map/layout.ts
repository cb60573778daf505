/**
 * A 2-D map of a dictionary: UMAP (umap.ts) of the decoder directions under cosine distance,
 * dist(a, b) = 1 − a·b / (‖a‖‖b‖).
 *
 * The k nearest neighbours are exact, from the same batched Gemm as dictionary comparison (a
 * dictionary matched against itself, the point itself dropped). Every random draw (initial
 * positions, negative sampling) comes from one seeded generator, so the same rows and seed give the
 * same map. Epochs default to umap-learn's choice: 500 up to 10,000 points, 200 above.
 */
import { bestMatches, unitRows } from '../compare/similarity.js';
import { umap } from './umap.js';
import type { SessionSettings } from '../runtime/session.js';
import { mulberry32 } from '../random.js';

export interface MapLayout {
  /** x, y of each row, interleaved: [n, 2]. */
  points: Float32Array;
  bounds: { minX: number; maxX: number; minY: number; maxY: number };
  neighbours: number;
  epochs: number;
}

export type MapPhase = 'neighbours' | 'layout';

export interface LayoutOptions {
  session: SessionSettings;
  seed?: number;
  /** Neighbours per point (UMAP's n_neighbors, default 15). */
  neighbours?: number;
  /** Optimisation epochs (default 500 up to 10,000 points, 200 above). */
  epochs?: number;
  minDist?: number;
  onProgress?: (phase: MapPhase, fraction: number) => void;
}

/** Lays out decoder rows [n, d] (row-major, any norms) in two dimensions. */
export async function layoutDecoders(rows: Float32Array, d: number, opts: LayoutOptions): Promise<MapLayout> {
  const n = rows.length / d;
  const k = Math.max(2, Math.min(opts.neighbours ?? 15, n - 1));
  const unit = unitRows(rows, d);
  const knn = await bestMatches(unit, unit, d, {
    k: k + 1,
    session: opts.session,
    onProgress: (f) => opts.onProgress?.('neighbours', f),
  });
  const indices = new Int32Array(n * k).fill(-1);
  const distances = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    let t = 0;
    for (let c = 0; c < knn.k && t < k; c++) {
      const j = knn.topIndices[i * knn.k + c];
      if (j === i) continue;
      indices[i * k + t] = j;
      distances[i * k + t] = Math.max(0, 1 - knn.topCosines[i * knn.k + c]);
      t++;
    }
  }
  const epochs = opts.epochs ?? (n <= 10_000 ? 500 : 200);
  const embedding = await umap(indices, distances, n, k, {
    epochs,
    minDist: opts.minDist ?? 0.1,
    random: mulberry32(opts.seed ?? 42),
    onEpoch: async (done) => {
      if (done % 10 !== 0 && done !== epochs) return;
      opts.onProgress?.('layout', done / epochs);
      await new Promise((r) => setImmediate(r));
    },
  });
  const bounds = { minX: Infinity, maxX: -Infinity, minY: Infinity, maxY: -Infinity };
  for (let i = 0; i < n; i++) {
    const x = embedding[2 * i];
    const y = embedding[2 * i + 1];
    bounds.minX = Math.min(bounds.minX, x);
    bounds.maxX = Math.max(bounds.maxX, x);
    bounds.minY = Math.min(bounds.minY, y);
    bounds.maxY = Math.max(bounds.maxY, y);
  }
  return { points: embedding, bounds, neighbours: k, epochs };
}
