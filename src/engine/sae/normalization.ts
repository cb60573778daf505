/**
 * Input normalization of SAELens `normalize_activations`, applied before the encoder and undone
 * after the decoder with the same per-vector statistics:
 * - none: identity.
 * - expected_average_only_in: x * s with the release's norm_scaling_factor s; output / s (what
 *   SAELens's fold_activation_norm_scaling_factor computes). Without a factor SAELens runs the
 *   identity, and so does this.
 * - constant_norm_rescale: c = sqrt(d_in) / ||x||; x * c; output / c.
 * - layer_norm: mu = mean(x), std = unbiased std of x - mu; (x - mu) / (std + 1e-5); output * std + mu
 *   (SAELens adds eps only on the way in).
 */
import { SaeConfig } from './types.js';

export const LAYER_NORM_EPS = 1e-5;

export interface NormState {
  /** Per-vector multiplier applied on input (constant_norm_rescale, expected_average_only_in). */
  scale?: Float32Array;
  mu?: Float32Array;
  std?: Float32Array;
}

export function normalizeInput(cfg: SaeConfig, x: Float32Array, n: number): { x: Float32Array; state: NormState } {
  const d = cfg.dIn;
  const { kind, scalingFactor } = cfg.normalization;
  if (kind === 'none' || (kind === 'expected_average_only_in' && scalingFactor === null)) return { x, state: {} };
  const out = new Float32Array(n * d);
  if (kind === 'expected_average_only_in' || kind === 'constant_norm_rescale') {
    const scale = new Float32Array(n);
    for (let r = 0; r < n; r++) {
      let c = scalingFactor ?? 1;
      if (kind === 'constant_norm_rescale') {
        let ss = 0;
        for (let i = 0; i < d; i++) ss += x[r * d + i] ** 2;
        c = Math.sqrt(d) / Math.sqrt(ss);
      }
      scale[r] = c;
      for (let i = 0; i < d; i++) out[r * d + i] = x[r * d + i] * c;
    }
    return { x: out, state: { scale } };
  }
  const mu = new Float32Array(n);
  const std = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let i = 0; i < d; i++) s += x[r * d + i];
    const m = s / d;
    let ss = 0;
    for (let i = 0; i < d; i++) ss += (x[r * d + i] - m) ** 2;
    const sd = Math.sqrt(ss / (d - 1));
    mu[r] = m;
    std[r] = sd;
    for (let i = 0; i < d; i++) out[r * d + i] = (x[r * d + i] - m) / (sd + LAYER_NORM_EPS);
  }
  return { x: out, state: { mu, std } };
}

export function denormalizeOutput(cfg: SaeConfig, y: Float32Array, n: number, state: NormState): Float32Array {
  const d = cfg.dIn;
  if (state.scale) {
    const out = new Float32Array(n * d);
    for (let r = 0; r < n; r++) for (let i = 0; i < d; i++) out[r * d + i] = y[r * d + i] / state.scale[r];
    return out;
  }
  if (state.mu && state.std) {
    const out = new Float32Array(n * d);
    for (let r = 0; r < n; r++) for (let i = 0; i < d; i++) out[r * d + i] = y[r * d + i] * state.std[r] + state.mu[r];
    return out;
  }
  return y;
}
