/**
 * TopK SAE (SAELens topk, sparsify, OpenAI, dictionary_learning): pre = (x - b_dec) W_enc + b_enc;
 * keep the k largest entries of pre, apply relu to them, zero the rest. Equal values keep the lower
 * index first, as the ONNX TopK operator does, so the engine and the ONNX graph choose the same
 * features. The graph hands over the k kept codes as they are, sparse; small batches take an 8-bit screen
 * with an exact re-score instead (./topk-screen.ts).
 */
import { AtlasError } from '../../../errors.js';
import { int64Tensor, node } from '../../onnx/proto.js';
import type { SaeConfig } from '../types.js';
import type { Architecture } from './architecture.js';
import { screenFits, topkScreenGraph } from './topk-screen.js';
import { baseShapes, linearDecode, linearDecodeGraph, preActivation, preActivationGraph } from './linear.js';

function kOf(cfg: SaeConfig): number {
  if (cfg.k === null) throw new AtlasError('BAD_FILE', 'A topk dictionary needs k in its configuration.');
  return cfg.k;
}

export const topk: Architecture = {
  paramShapes: baseShapes,
  encode(params, cfg, x, n) {
    const k = kOf(cfg);
    const pre = preActivation(params, cfg, x, n);
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
  },
  decode: linearDecode,
  encodeGraph(g, cfg, params, input) {
    preActivationGraph(g, cfg, params, input);
    const k = Math.min(kOf(cfg), cfg.dSae);
    g.inits.push(int64Tensor('arch_k', [1], [k]));
    g.nodes.push(
      node('TopK', ['pre', 'arch_k'], ['kept_values', 'codes_indices'], { axis: -1, largest: 1, sorted: 1 }),
      node('Relu', ['kept_values'], ['codes_values']),
    );
    return k;
  },
  screenGraph(g, cfg, params, input, weights) {
    const k = Math.min(kOf(cfg), cfg.dSae);
    if (!screenFits(k, cfg.dSae)) return null;
    topkScreenGraph(g, cfg, params, input, k, weights);
    return k;
  },
  decodeGraph: linearDecodeGraph,
};
