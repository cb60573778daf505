/**
 * ONNX graph of a whole dictionary pass: the frame every architecture shares (normalization in and
 * out, x - b_dec, top-k and L0 outputs) around the architecture's own encode and decode nodes
 * (./architectures/). Inputs: x [n, dIn] float, top_k [1] int64.
 * Outputs: indices [n, top_k] int32 and values [n, top_k] float (the largest codes, sorted, ties
 * to the lower index), l0 [n] int32 (nonzero codes per row), x_hat [n, dIn] float in x's scale (a
 * transcoder's output hook, plus x W_skip^T for skip transcoders).
 * Codes are never negative, so a value of 0 marks a slot with no active feature.
 */
import { AtlasError } from '../../errors.js';
import { GraphSpec, floatTensor, int64Tensor, node, onnx, serializeModel, valueInfo } from '../onnx/proto.js';
import type { GraphParts } from './architectures/architecture.js';
import { skipGraph } from './architectures/linear.js';
import { ARCHITECTURES } from './architectures/index.js';
import { LAYER_NORM_EPS } from './normalization.js';
import { SaeConfig, SaeParams } from './types.js';

/** protobuf caps a serialized message at 2 GiB; weights travel inside the model as initializers. */
const MAX_MODEL_BYTES = 2 ** 31 - 64 * 1024 * 1024;

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT32 = onnx.TensorProto.DataType.INT32;

export function buildEncoderGraph(cfg: SaeConfig, params: SaeParams): Uint8Array {
  const { dIn, dSae } = cfg;
  const weightBytes = 4 * (2 * dIn * dSae + 4 * dSae + dIn + (cfg.transcoder?.skip ? dIn * dIn : 0));
  if (weightBytes > MAX_MODEL_BYTES) {
    throw new AtlasError(
      'UNSUPPORTED',
      `A ${dSae} x ${dIn} dictionary needs ${(weightBytes / 2 ** 30).toFixed(1)} GiB of weights, over the 2 GiB an ` +
        `in-memory ONNX model can hold.`,
    );
  }
  const arch = ARCHITECTURES[cfg.architecture];
  const g: GraphParts = {
    nodes: [],
    inits: [
      floatTensor('zero', [], new Float32Array([0])),
      int64Tensor('last_axis', [1], [-1]),
      floatTensor('b_dec', [dIn], params.b_dec),
    ],
  };
  const { nodes, inits } = g;

  // Normalization in; `undo` turns the decoder output back into x's scale.
  let xn = 'x';
  let undo: (y: string) => string = (y) => y;
  const { kind, scalingFactor } = cfg.normalization;
  if (kind === 'expected_average_only_in' && scalingFactor !== null) {
    inits.push(floatTensor('norm_factor', [], new Float32Array([scalingFactor])));
    nodes.push(node('Mul', ['x', 'norm_factor'], ['x_norm']));
    xn = 'x_norm';
    undo = (y) => {
      nodes.push(node('Div', [y, 'norm_factor'], ['x_hat']));
      return 'x_hat';
    };
  } else if (kind === 'constant_norm_rescale') {
    inits.push(floatTensor('sqrt_d_in', [], new Float32Array([Math.sqrt(dIn)])));
    nodes.push(
      node('Mul', ['x', 'x'], ['x_sq']),
      node('ReduceSum', ['x_sq', 'last_axis'], ['x_sumsq'], { keepdims: 1 }),
      node('Sqrt', ['x_sumsq'], ['x_norm2']),
      node('Div', ['sqrt_d_in', 'x_norm2'], ['x_coeff']),
      node('Mul', ['x', 'x_coeff'], ['x_norm']),
    );
    xn = 'x_norm';
    undo = (y) => {
      nodes.push(node('Div', [y, 'x_coeff'], ['x_hat']));
      return 'x_hat';
    };
  } else if (kind === 'layer_norm') {
    inits.push(
      floatTensor('d_in_minus_1', [], new Float32Array([dIn - 1])),
      floatTensor('ln_eps', [], new Float32Array([LAYER_NORM_EPS])),
    );
    nodes.push(
      node('ReduceMean', ['x'], ['ln_mu'], { axes: [-1], keepdims: 1 }),
      node('Sub', ['x', 'ln_mu'], ['ln_xc']),
      node('Mul', ['ln_xc', 'ln_xc'], ['ln_sq']),
      node('ReduceSum', ['ln_sq', 'last_axis'], ['ln_ss'], { keepdims: 1 }),
      node('Div', ['ln_ss', 'd_in_minus_1'], ['ln_var']),
      node('Sqrt', ['ln_var'], ['ln_std']),
      node('Add', ['ln_std', 'ln_eps'], ['ln_den']),
      node('Div', ['ln_xc', 'ln_den'], ['x_norm']),
    );
    xn = 'x_norm';
    undo = (y) => {
      nodes.push(node('Mul', [y, 'ln_std'], ['x_hat_scaled']), node('Add', ['x_hat_scaled', 'ln_mu'], ['x_hat']));
      return 'x_hat';
    };
  }

  let saeIn = xn;
  if (cfg.applyBDecToInput) {
    nodes.push(node('Sub', [xn, 'b_dec'], ['sae_in']));
    saeIn = 'sae_in';
  }

  arch.encodeGraph(g, cfg, params, saeIn);

  nodes.push(
    node('TopK', ['codes', 'top_k'], ['values', 'indices_i64'], { axis: -1, largest: 1, sorted: 1 }),
    node('Cast', ['indices_i64'], ['indices'], { to: INT32 }),
    node('Greater', ['codes', 'zero'], ['active']),
    node('Cast', ['active'], ['active_f'], { to: FLOAT }),
    // Float sums of ones are exact up to 2^24 features.
    node('ReduceSum', ['active_f', 'last_axis'], ['l0_f'], { keepdims: 0 }),
    node('Cast', ['l0_f'], ['l0'], { to: INT32 }),
  );
  arch.decodeGraph(g, cfg, params);
  let xHat = undo('decoded');
  if (cfg.transcoder?.skip) xHat = skipGraph(g, params, dIn, xHat);
  if (xHat !== 'x_hat') nodes.push(node('Identity', [xHat], ['x_hat']));

  const spec: GraphSpec = {
    name: `sae_${cfg.architecture}_${dSae}x${dIn}`,
    nodes,
    initializers: inits,
    inputs: [valueInfo('x', 'float', ['n', dIn]), valueInfo('top_k', 'int64', [1])],
    outputs: [
      valueInfo('indices', 'int32', ['n', 'top_k']),
      valueInfo('values', 'float', ['n', 'top_k']),
      valueInfo('l0', 'int32', ['n']),
      valueInfo('x_hat', 'float', ['n', dIn]),
    ],
  };
  return serializeModel(spec);
}
