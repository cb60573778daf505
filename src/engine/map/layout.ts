/**
 * A 2-D map of a dictionary: UMAP (McInnes et al. 2018, via umap-js) of the decoder directions under
 * cosine distance, dist(a, b) = 1 − a·b / (‖a‖‖b‖).
 *
 * The k nearest neighbours are exact, from the same batched Gemm as dictionary comparison
 * (a dictionary matched against itself, the point itself dropped), and handed to umap-js as a
 * precomputed graph; umap-js's approximate NN-descent would need every row as a JS number[].
 * Every random draw (initial positions, edge and negative sampling) comes from one seeded generator,
 * so the same rows and seed give the same map.
 */
import { UMAP } from 'umap-js';
import { bestMatches, unitRows } from '../compare/similarity.js';
import type { SessionSettings } from '../runtime/session.js';

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
  /** Optimisation epochs (default: umap-js's choice by size, 500 down to 200). */
  epochs?: number;
  minDist?: number;
  onProgress?: (phase: MapPhase, fraction: number) => void;
}

/** mulberry32: a small seeded generator with a full 2³² period. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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
  const indices: number[][] = [];
  const distances: number[][] = [];
  for (let i = 0; i < n; i++) {
    const idx: number[] = [];
    const dist: number[] = [];
    for (let t = 0; t < knn.k && idx.length < k; t++) {
      const j = knn.topIndices[i * knn.k + t];
      if (j === i) continue;
      idx.push(j);
      dist.push(Math.max(0, 1 - knn.topCosines[i * knn.k + t]));
    }
    indices.push(idx);
    distances.push(dist);
  }
  const umap = new UMAP({
    nComponents: 2,
    nNeighbors: k,
    minDist: opts.minDist ?? 0.1,
    random: seeded(opts.seed ?? 42),
    ...(opts.epochs ? { nEpochs: opts.epochs } : {}),
  });
  umap.setPrecomputedKNN(indices, distances);
  // With the neighbours given, umap-js only reads the number of points from X.
  const epochs = umap.initializeFit(Array.from({ length: n }, () => []));
  for (let e = 0; e < epochs; e++) {
    umap.step();
    if (e % 10 === 9 || e === epochs - 1) {
      opts.onProgress?.('layout', (e + 1) / epochs);
      await new Promise((r) => setImmediate(r));
    }
  }
  const embedding = umap.getEmbedding();
  const points = new Float32Array(n * 2);
  const bounds = { minX: Infinity, maxX: -Infinity, minY: Infinity, maxY: -Infinity };
  for (let i = 0; i < n; i++) {
    points[2 * i] = embedding[i][0];
    points[2 * i + 1] = embedding[i][1];
    // Bounds of the stored float32 values, so every point lies within them.
    const x = points[2 * i];
    const y = points[2 * i + 1];
    bounds.minX = Math.min(bounds.minX, x);
    bounds.maxX = Math.max(bounds.maxX, x);
    bounds.minY = Math.min(bounds.minY, y);
    bounds.maxY = Math.max(bounds.maxY, y);
  }
  return { points, bounds, neighbours: k, epochs };
}
