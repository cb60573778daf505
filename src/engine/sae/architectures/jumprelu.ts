/**
 * JumpReLU SAE (Gemma Scope, SAELens): pre = (x - b_dec) W_enc + b_enc;
 * f = relu(pre) * (pre > threshold). With threshold >= 0 this is pre * (pre > threshold); the relu
 * matters only for a negative threshold, and both references apply it. Dictionaries with one
 * threshold for every feature (dictionary_learning BatchTopK, Llama Scope) carry it repeated.
 */
import { floatTensor, node } from '../../onnx/proto.js';
import type { Architecture } from './architecture.js';
import { baseShapes, linearDecode, linearDecodeGraph, need, preActivation, preActivationGraph } from './linear.js';

export const jumprelu: Architecture = {
  paramShapes: (dIn, dSae) => ({ ...baseShapes(dIn, dSae), threshold: [dSae] }),
  encode(params, cfg, x, n) {
    const pre = preActivation(params, cfg, x, n);
    const threshold = need(params, 'threshold', 'jumprelu');
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < cfg.dSae; j++) {
        const v = pre[r * cfg.dSae + j];
        pre[r * cfg.dSae + j] = v > threshold[j] && v > 0 ? v : 0;
      }
    }
    return pre;
  },
  decode: linearDecode,
  encodeGraph(g, cfg, params, input) {
    preActivationGraph(g, cfg, params, input);
    g.inits.push(floatTensor('threshold', [cfg.dSae], need(params, 'threshold', 'jumprelu')));
    g.nodes.push(
      node('Greater', ['pre', 'threshold'], ['above']),
      node('Relu', ['pre'], ['pre_relu']),
      node('Where', ['above', 'pre_relu', 'zero'], ['codes']),
    );
    return null;
  },
  decodeGraph: linearDecodeGraph,
};
