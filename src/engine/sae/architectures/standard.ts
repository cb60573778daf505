/** Standard (ReLU) SAE: f = relu((x - b_dec) W_enc + b_enc); x_hat = f W_dec + b_dec. */
import { node } from '../../onnx/proto.js';
import type { Architecture } from './architecture.js';
import { baseShapes, linearDecode, linearDecodeGraph, preActivation, preActivationGraph } from './linear.js';

export const standard: Architecture = {
  paramShapes: baseShapes,
  encode(params, cfg, x, n) {
    const pre = preActivation(params, cfg, x, n);
    for (let i = 0; i < pre.length; i++) if (!(pre[i] > 0)) pre[i] = 0;
    return pre;
  },
  decode: linearDecode,
  encodeGraph(g, cfg, params, input) {
    preActivationGraph(g, cfg, params, input);
    g.nodes.push(node('Relu', ['pre'], ['codes']));
    return null;
  },
  decodeGraph: linearDecodeGraph,
};
