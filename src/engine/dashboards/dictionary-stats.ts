/**
 * Dictionary-wide reconstruction statistics over the corpus's non-BOS tokens, streamed batch by
 * batch in float64:
 * - l0: mean number of active features per token (the same count as the densities, so l0 equals
 *   the sum of the features' densities);
 * - normalizedMse: Σ‖x − x̂‖² / Σ‖x − x̄‖², with x̄ the per-dimension mean over the whole corpus
 *   (reconstructionMetrics' definition with the corpus as the batch); the denominator is merged
 *   across batches with Chan et al.'s pairwise update, which stays accurate when the mean is large;
 * - explainedVariance: 1 − normalizedMse;
 * - deadFraction: share of features that never fired.
 */
import { AtlasError } from '../../errors.js';

export interface DictionarySummary {
  tokens: number;
  l0: number;
  deadFraction: number;
  normalizedMse: number;
  explainedVariance: number;
}

export class DictionaryStatsAccumulator {
  tokens = 0;
  private active = 0;
  private resid = 0;
  private readonly mean: Float64Array;
  /** Σ (x − mean)² per dimension. */
  private readonly m2: Float64Array;

  constructor(readonly dIn: number) {
    this.mean = new Float64Array(dIn);
    this.m2 = new Float64Array(dIn);
  }

  /** n input rows and their reconstructions ([n, dIn] each) with `active` codes among them. */
  add(x: Float32Array, xHat: Float32Array, n: number, active: number): void {
    if (n === 0) return;
    const d = this.dIn;
    const bMean = new Float64Array(d);
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < d; i++) {
        const a = x[r * d + i];
        bMean[i] += a;
        this.resid += (a - xHat[r * d + i]) ** 2;
      }
    }
    for (let i = 0; i < d; i++) bMean[i] /= n;
    const total = this.tokens + n;
    for (let i = 0; i < d; i++) {
      let bM2 = 0;
      for (let r = 0; r < n; r++) bM2 += (x[r * d + i] - bMean[i]) ** 2;
      const delta = bMean[i] - this.mean[i];
      this.m2[i] += bM2 + (delta * delta * this.tokens * n) / total;
      this.mean[i] += (delta * n) / total;
    }
    this.tokens = total;
    this.active += active;
  }

  summary(dSae: number, dead: number): DictionarySummary {
    const variance = this.m2.reduce((s, v) => s + v, 0);
    if (!(variance > 0)) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        `The corpus gave ${this.tokens} token(s) whose activations do not vary, so reconstruction quality is ` +
          `undefined; use a longer corpus.`,
      );
    }
    const normalizedMse = this.resid / variance;
    return {
      tokens: this.tokens,
      l0: this.active / this.tokens,
      deadFraction: dead / dSae,
      normalizedMse,
      explainedVariance: 1 - normalizedMse,
    };
  }
}
