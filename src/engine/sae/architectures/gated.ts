/**
 * Gated SAE (Rajamanoharan et al. 2024, SAELens gated, dictionary_learning GatedAutoEncoder): with
 * x' = x - b_dec, f = [x' W_enc + b_gate > 0] * relu(x' (W_enc * exp(r_mag)) + b_mag);
 * x_hat = f W_dec + b_dec. exp(r_mag) scales encoder columns, so
 * x' (W_enc * exp(r_mag)) = (x' W_enc) * exp(r_mag): one matrix product serves both paths.
 */
import { floatTensor, node } from '../../onnx/proto.js';
import type { Architecture } from './architecture.js';
import { affine, encoderProductGraph, linearDecode, linearDecodeGraph, need, saeInput } from './linear.js';

export const gated: Architecture = {
  paramShapes: (dIn, dSae) => ({
    W_enc: [dIn, dSae],
    W_dec: [dSae, dIn],
    b_dec: [dIn],
    b_gate: [dSae],
    b_mag: [dSae],
    r_mag: [dSae],
  }),
  encode(params, cfg, x, n) {
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
  },
  decode: linearDecode,
  encodeGraph(g, cfg, params, input) {
    encoderProductGraph(g, cfg, params, input);
    g.inits.push(
      floatTensor('b_gate', [cfg.dSae], need(params, 'b_gate', 'gated')),
      floatTensor('b_mag', [cfg.dSae], need(params, 'b_mag', 'gated')),
      floatTensor('exp_r_mag', [cfg.dSae], Float32Array.from(need(params, 'r_mag', 'gated'), Math.exp)),
    );
    g.nodes.push(
      node('Add', ['h', 'b_gate'], ['gate_pre']),
      node('Greater', ['gate_pre', 'zero'], ['gate_open']),
      node('Mul', ['h', 'exp_r_mag'], ['mag_h']),
      node('Add', ['mag_h', 'b_mag'], ['mag_pre']),
      node('Relu', ['mag_pre'], ['mag']),
      node('Where', ['gate_open', 'mag', 'zero'], ['codes']),
    );
    return null;
  },
  decodeGraph: linearDecodeGraph,
};
