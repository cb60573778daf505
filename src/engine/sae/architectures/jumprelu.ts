/**
 * JumpReLU SAE (Gemma Scope, SAELens): pre = (x - b_dec) W_enc + b_enc;
 * f = relu(pre) * (pre > threshold). With threshold >= 0 this is pre * (pre > threshold); the relu
 * matters only for a negative threshold, and both references apply it.
 */
import { SaeConfig, SaeParams } from '../types.js';
import { affine, linearDecode, need, saeInput } from './linear.js';

export function encode(params: SaeParams, cfg: SaeConfig, x: Float32Array, n: number): Float32Array {
  const pre = affine(saeInput(params, cfg, x, n), n, params.W_enc, cfg.dIn, cfg.dSae, need(params, 'b_enc', 'jumprelu'));
  const threshold = need(params, 'threshold', 'jumprelu');
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < cfg.dSae; j++) {
      const v = pre[r * cfg.dSae + j];
      pre[r * cfg.dSae + j] = v > threshold[j] && v > 0 ? v : 0;
    }
  }
  return pre;
}

export const decode = linearDecode;
