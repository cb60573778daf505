/**
 * Dictionary-to-dictionary comparison by decoder cosine, cos(a, b) = a·b / (‖a‖‖b‖):
 * - best match of every feature of A in B (and of B in A), with its cosine;
 * - mean max cosine both ways, MMCS(A→B) = (1/|A|) Σ_a max_b cos(a, b), and MMCS(B→A);
 * - histograms of the best-match cosines both ways over fixed edges −1, −0.95, …, 1 (the last bin is closed);
 * - for equally wide dictionaries, the one-to-one matching and its PW-MCC (see matching.ts).
 */
import { bestMatches, unitRows } from './similarity.js';
import { matchOneToOne, type OneToOne } from './matching.js';
import type { SessionSettings } from '../runtime/session.js';

export const HISTOGRAM_EDGES: number[] = Array.from({ length: 41 }, (_, i) => Math.round((-1 + i * 0.05) * 100) / 100);
/** Candidates per feature for the one-to-one auction. */
const MATCH_CANDIDATES = 16;

export interface Comparison {
  /** Best match in B of each feature of A, and its cosine. */
  aToB: { indices: Int32Array; cosines: Float32Array };
  /** Best match in A of each feature of B, and its cosine. */
  bToA: { indices: Int32Array; cosines: Float32Array };
  meanMaxAB: number;
  meanMaxBA: number;
  histogramAB: { edges: number[]; counts: number[] };
  histogramBA: { edges: number[]; counts: number[] };
  /** Null when the widths differ. */
  oneToOne: OneToOne | null;
}

export type ComparePhase = 'similarity' | 'matching';

export interface CompareOptions {
  session: SessionSettings;
  onProgress?: (phase: ComparePhase, fraction: number) => void;
}

export function histogram(values: ArrayLike<number>, edges: number[]): number[] {
  const counts = new Array<number>(edges.length - 1).fill(0);
  const lo = edges[0];
  const hi = edges[edges.length - 1];
  for (let i = 0; i < values.length; i++) {
    const v = Math.min(hi, Math.max(lo, values[i]));
    // Binary search for the bin [e_b, e_{b+1}); v = hi falls in the last bin.
    let a = 0;
    let b = edges.length - 2;
    while (a < b) {
      const mid = (a + b + 1) >> 1;
      if (edges[mid] <= v) a = mid;
      else b = mid - 1;
    }
    counts[a]++;
  }
  return counts;
}

function mean(values: Float32Array): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return values.length ? s / values.length : 0;
}

/** Compares decoder rows A [nA, d] with B [nB, d] (row-major, any norms). */
export async function compareDecoders(
  rowsA: Float32Array,
  rowsB: Float32Array,
  d: number,
  opts: CompareOptions,
): Promise<Comparison> {
  const unitA = unitRows(rowsA, d);
  const unitB = unitRows(rowsB, d);
  const nA = unitA.length / d;
  const nB = unitB.length / d;
  const sameWidth = nA === nB;
  const best = await bestMatches(unitA, unitB, d, {
    k: sameWidth ? MATCH_CANDIDATES : 1,
    session: opts.session,
    onProgress: (f) => opts.onProgress?.('similarity', f),
  });
  const aIdx = new Int32Array(nA);
  const aCos = new Float32Array(nA);
  for (let i = 0; i < nA; i++) {
    aIdx[i] = best.topIndices[i * best.k];
    aCos[i] = best.topCosines[i * best.k];
  }
  let oneToOne: OneToOne | null = null;
  if (sameWidth) {
    opts.onProgress?.('matching', 0);
    oneToOne = matchOneToOne(unitA, unitB, d, best.topIndices, best.topCosines, best.k);
    opts.onProgress?.('matching', 1);
  }
  return {
    aToB: { indices: aIdx, cosines: aCos },
    bToA: { indices: best.reverseIndices, cosines: best.reverseCosines },
    meanMaxAB: mean(aCos),
    meanMaxBA: mean(best.reverseCosines),
    histogramAB: { edges: HISTOGRAM_EDGES, counts: histogram(aCos, HISTOGRAM_EDGES) },
    histogramBA: { edges: HISTOGRAM_EDGES, counts: histogram(best.reverseCosines, HISTOGRAM_EDGES) },
    oneToOne,
  };
}
