/**
 * Per-feature statistics over the corpus, streamed one activation at a time: firing count, sum,
 * minimum and maximum of the positive activations, and a histogram on a fixed log grid of
 * BINS_PER_OCTAVE bins per octave. The grid is fixed in advance so that counts can be streamed
 * without knowing a feature's range; at the end each histogram is cut to the bins the feature uses,
 * and its outer edges are widened to the feature's min and max when those fall off the grid.
 */

export const BINS_PER_OCTAVE = 4;
/** The grid spans 2^MIN_EXP .. 2^MAX_EXP; activations outside it land in the first or last bin. */
const MIN_EXP = -20;
const MAX_EXP = 20;
const BINS = (MAX_EXP - MIN_EXP) * BINS_PER_OCTAVE;

export interface Histogram {
  /**
   * counts.length + 1 increasing edges; bin i holds edges[i] <= a < edges[i+1] (the last bin also a = its upper edge).
   */
  edges: number[];
  counts: number[];
}

export interface FeatureSummary {
  /** Firing positions over non-BOS corpus tokens. */
  density: number;
  /** 0 for a feature that never fired. */
  maxActivation: number;
  /** Mean over the positions where it fired; null when it never did. */
  meanActivation: number | null;
  histogram: Histogram;
  fired: number;
}

/** Lower edge of grid bin b. */
const edge = (b: number): number => 2 ** (MIN_EXP + b / BINS_PER_OCTAVE);

/** Grid bin of a positive value, consistent with `edge` even where log2 rounds. */
export function gridBin(v: number): number {
  let b = Math.floor((Math.log2(v) - MIN_EXP) * BINS_PER_OCTAVE);
  if (b > 0 && b < BINS && v < edge(b)) b--;
  else if (b + 1 < BINS && b >= 0 && v >= edge(b + 1)) b++;
  return Math.min(BINS - 1, Math.max(0, b));
}

export class FeatureStats {
  readonly count: Float64Array;
  readonly sum: Float64Array;
  readonly max: Float32Array;
  readonly min: Float32Array;
  private readonly bins: Uint32Array;

  constructor(readonly dSae: number) {
    this.count = new Float64Array(dSae);
    this.sum = new Float64Array(dSae);
    this.max = new Float32Array(dSae);
    this.min = new Float32Array(dSae).fill(Infinity);
    this.bins = new Uint32Array(dSae * BINS);
  }

  /** One positive activation of feature f. */
  add(f: number, v: number): void {
    this.count[f]++;
    this.sum[f] += v;
    if (v > this.max[f]) this.max[f] = v;
    if (v < this.min[f]) this.min[f] = v;
    this.bins[f * BINS + gridBin(v)]++;
  }

  summary(f: number, tokens: number): FeatureSummary {
    const fired = this.count[f];
    if (fired === 0)
      return { density: 0, maxActivation: 0, meanActivation: null, histogram: { edges: [], counts: [] }, fired };
    const row = this.bins.subarray(f * BINS, (f + 1) * BINS);
    const lo = gridBin(this.min[f]);
    const hi = gridBin(this.max[f]);
    const counts = Array.from(row.subarray(lo, hi + 1));
    const edges = Array.from({ length: counts.length + 1 }, (_, i) => edge(lo + i));
    edges[0] = Math.min(edges[0], this.min[f]);
    edges[edges.length - 1] = Math.max(edges[edges.length - 1], this.max[f]);
    return {
      density: fired / tokens,
      maxActivation: this.max[f],
      meanActivation: this.sum[f] / fired,
      histogram: { edges, counts },
      fired,
    };
  }
}
