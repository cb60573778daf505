/** Standard (ReLU) SAE: f = relu((x - b_dec) W_enc + b_enc); x_hat = f W_dec + b_dec. */
import { SaeConfig, SaeParams } from '../types.js';
import { affine, linearDecode, need, saeInput } from './linear.js';

/** `x` [n, dIn] is already in the dictionary's normalized space (see normalization.ts). */
export function encode(params: SaeParams, cfg: SaeConfig, x: Float32Array, n: number): Float32Array {
  const pre = affine(saeInput(params, cfg, x, n), n, params.W_enc, cfg.dIn, cfg.dSae, need(params, 'b_enc', 'standard'));
  for (let i = 0; i < pre.length; i++) if (!(pre[i] > 0)) pre[i] = 0;
  return pre;
}

export const decode = linearDecode;
