/**
 * Gated SAE (Rajamanoharan et al. 2024, SAELens gated): with x' = x - b_dec,
 * f = [x' W_enc + b_gate > 0] * relu(x' (W_enc * exp(r_mag)) + b_mag); x_hat = f W_dec + b_dec.
 * exp(r_mag) scales encoder columns, so x' (W_enc * exp(r_mag)) = (x' W_enc) * exp(r_mag):
 * one matrix product serves both paths.
 */
import { SaeConfig, SaeParams } from '../types.js';
import { affine, linearDecode, need, saeInput } from './linear.js';

export function encode(params: SaeParams, cfg: SaeConfig, x: Float32Array, n: number): Float32Array {
  const h = affine(saeInput(params, cfg, x, n), n, params.W_enc, cfg.dIn, cfg.dSae);
  const bGate = need(params, 'b_gate', 'gated');
  const bMag = need(params, 'b_mag', 'gated');
  const rMag = need(params, 'r_mag', 'gated');
  const codes = new Float32Array(n * cfg.dSae);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < cfg.dSae; j++) {
      const v = h[r * cfg.dSae + j];
      if (!(v + bGate[j] > 0)) continue;
      const mag = v * Math.exp(rMag[j]) + bMag[j];
      codes[r * cfg.dSae + j] = mag > 0 ? mag : 0;
    }
  }
  return codes;
}

export const decode = linearDecode;
