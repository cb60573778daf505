/** Dense helpers the architectures share (plain TypeScript, float32 storage, float64 sums). */
import { AtlasError } from '../../../errors.js';
import { SaeConfig, SaeParams } from '../types.js';

/** out[n, cols] = x[n, rows] @ W[rows, cols] + bias[cols] (bias optional). */
export function affine(x: Float32Array, n: number, W: Float32Array, rows: number, cols: number, bias?: Float32Array): Float32Array {
  const out = new Float32Array(n * cols);
  const acc = new Float64Array(cols);
  for (let r = 0; r < n; r++) {
    if (bias) for (let j = 0; j < cols; j++) acc[j] = bias[j];
    else acc.fill(0);
    for (let i = 0; i < rows; i++) {
      const xi = x[r * rows + i];
      if (xi === 0) continue;
      const w = i * cols;
      for (let j = 0; j < cols; j++) acc[j] += xi * W[w + j];
    }
    out.set(acc, r * cols);
  }
  return out;
}

/** SAELens process_sae_in after normalization: x - b_dec when apply_b_dec_to_input. */
export function saeInput(params: SaeParams, cfg: SaeConfig, x: Float32Array, n: number): Float32Array {
  if (!cfg.applyBDecToInput) return x;
  const out = new Float32Array(n * cfg.dIn);
  for (let r = 0; r < n; r++) for (let i = 0; i < cfg.dIn; i++) out[r * cfg.dIn + i] = x[r * cfg.dIn + i] - params.b_dec[i];
  return out;
}

/** Every architecture decodes the same way: codes @ W_dec + b_dec (in the normalized space). */
export function linearDecode(params: SaeParams, cfg: SaeConfig, codes: Float32Array, n: number): Float32Array {
  return affine(codes, n, params.W_dec, cfg.dSae, cfg.dIn, params.b_dec);
}

export function need(params: SaeParams, name: 'b_enc' | 'threshold' | 'r_mag' | 'b_mag' | 'b_gate', arch: string): Float32Array {
  const v = params[name];
  if (!v) throw new AtlasError('BAD_FILE', `The ${arch} architecture needs parameter "${name}", which this dictionary lacks.`);
  return v;
}
