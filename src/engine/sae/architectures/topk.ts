/**
 * TopK SAE (SAELens topk, sparsify): pre = (x - b_dec) W_enc + b_enc; keep the k largest entries
 * of pre, apply relu to them, zero the rest. Equal values keep the lower index first, as the ONNX
 * TopK operator does, so the engine and the ONNX graph choose the same features.
 */
import { AtlasError } from '../../../errors.js';
import { SaeConfig, SaeParams } from '../types.js';
import { affine, linearDecode, need, saeInput } from './linear.js';

export function encode(params: SaeParams, cfg: SaeConfig, x: Float32Array, n: number): Float32Array {
  const k = cfg.k;
  if (k === null) throw new AtlasError('BAD_FILE', 'A topk dictionary needs k in its configuration.');
  const pre = affine(saeInput(params, cfg, x, n), n, params.W_enc, cfg.dIn, cfg.dSae, need(params, 'b_enc', 'topk'));
  const codes = new Float32Array(n * cfg.dSae);
  const order = new Int32Array(cfg.dSae);
  for (let r = 0; r < n; r++) {
    const row = pre.subarray(r * cfg.dSae, (r + 1) * cfg.dSae);
    for (let j = 0; j < cfg.dSae; j++) order[j] = j;
    order.sort((a, b) => row[b] - row[a] || a - b);
    for (let t = 0; t < k; t++) {
      const j = order[t];
      codes[r * cfg.dSae + j] = row[j] > 0 ? row[j] : 0;
    }
  }
  return codes;
}

export const decode = linearDecode;
