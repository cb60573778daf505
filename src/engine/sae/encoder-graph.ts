/**
 * ONNX graphs of a dictionary pass, codes sparse end to end. The frame every architecture shares
 * (normalization in and out, x - b_dec, top-k and L0 outputs) sits around the architecture's own
 * encode and decode nodes (./architectures/).
 *
 * Encoder graph: inputs x [n, dIn] float, top_k [1] int64. Outputs indices [n, top_k] int32 and
 * values [n, top_k] float (the largest codes, sorted, ties to the lower index), l0 [n] int32
 * (nonzero codes per row). Codes are never negative, so a value of 0 marks a slot with no active
 * feature. An architecture with dense codes [n, dSae] has them cut by TopK; a TopK architecture
 * hands over its k kept codes, which are sliced (top_k < k) or padded with zeros (top_k > k), so no
 * dense [n, dSae] code array is ever built for it.
 *
 * Decoder graph, run only when a reconstruction is asked for: inputs x [n, dIn] float (for the
 * normalization's scale and a skip transcoder's x W_skip^T), values [n, K] float and indices
 * [n, K] int32 holding every active code of each row. Output x_hat [n, dIn] in x's scale (a
 * transcoder's output hook): Σ_j values[r, j] W_dec[indices[r, j]] + b_dec, a gather of K decoder
 * rows per vector instead of a dense [n, dSae] × [dSae, dIn] product.
 */
import { AtlasError } from '../../errors.js';
import { GraphSpec, floatTensor, int64Tensor, node, onnx, serializeModel, valueInfo } from '../onnx/proto.js';
import type { GraphParts } from './architectures/architecture.js';
import { skipGraph } from './architectures/linear.js';
import { screenWeightBytes } from './architectures/topk-screen.js';
import { ARCHITECTURES } from './architectures/index.js';
import { LAYER_NORM_EPS } from './normalization.js';
import { SaeConfig, SaeParams } from './types.js';
import type { Int8Weights } from '../runtime/int8-product.js';

/** protobuf caps a serialized message at 2 GiB; weights travel inside the model as initializers. */
const MAX_MODEL_BYTES = 2 ** 31 - 64 * 1024 * 1024;

/** Whether `bytes` of weights fit in one in-memory graph. */
function fitsOneGraph(bytes: number): boolean {
  return bytes <= MAX_MODEL_BYTES;
}

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT32 = onnx.TensorProto.DataType.INT32;

function checkSize(cfg: SaeConfig, floats: number): void {
  if (!fitsOneGraph(4 * floats)) {
    throw new AtlasError(
      'UNSUPPORTED',
      `A ${cfg.dSae} x ${cfg.dIn} dictionary needs ${((4 * floats) / 2 ** 30).toFixed(1)} GiB of weights in one ` +
        `graph, over the 2 GiB an in-memory ONNX model can hold.`,
    );
  }
}

/**
 * Normalization nodes on `x`: with `input`, the normalized input `x_norm` (or `x` itself); `undo`
 * turns a decoder output back into x's scale.
 */
function normalizationGraph(
  g: GraphParts,
  cfg: SaeConfig,
  input: boolean,
): { xn: string; undo: (y: string) => string } {
  const { nodes, inits } = g;
  const { dIn } = cfg;
  const { kind, scalingFactor } = cfg.normalization;
  const divideBy = (stat: string) => (y: string) => {
    nodes.push(node('Div', [y, stat], ['x_hat']));
    return 'x_hat';
  };
  if (kind === 'expected_average_only_in' && scalingFactor !== null) {
    inits.push(floatTensor('norm_factor', [], new Float32Array([scalingFactor])));
    if (input) nodes.push(node('Mul', ['x', 'norm_factor'], ['x_norm']));
    return { xn: 'x_norm', undo: divideBy('norm_factor') };
  }
  if (kind === 'constant_norm_rescale') {
    inits.push(floatTensor('sqrt_d_in', [], new Float32Array([Math.sqrt(dIn)])), int64Tensor('last_axis', [1], [-1]));
    nodes.push(
      node('Mul', ['x', 'x'], ['x_sq']),
      node('ReduceSum', ['x_sq', 'last_axis'], ['x_sumsq'], { keepdims: 1 }),
      node('Sqrt', ['x_sumsq'], ['x_norm2']),
      node('Div', ['sqrt_d_in', 'x_norm2'], ['x_coeff']),
    );
    if (input) nodes.push(node('Mul', ['x', 'x_coeff'], ['x_norm']));
    return { xn: 'x_norm', undo: divideBy('x_coeff') };
  }
  if (kind === 'layer_norm') {
    inits.push(
      floatTensor('d_in_minus_1', [], new Float32Array([dIn - 1])),
      floatTensor('ln_eps', [], new Float32Array([LAYER_NORM_EPS])),
      int64Tensor('last_axis', [1], [-1]),
    );
    nodes.push(
      node('ReduceMean', ['x'], ['ln_mu'], { axes: [-1], keepdims: 1 }),
      node('Sub', ['x', 'ln_mu'], ['ln_xc']),
      node('Mul', ['ln_xc', 'ln_xc'], ['ln_sq']),
      node('ReduceSum', ['ln_sq', 'last_axis'], ['ln_ss'], { keepdims: 1 }),
      node('Div', ['ln_ss', 'd_in_minus_1'], ['ln_var']),
      node('Sqrt', ['ln_var'], ['ln_std']),
    );
    if (input) nodes.push(node('Add', ['ln_std', 'ln_eps'], ['ln_den']), node('Div', ['ln_xc', 'ln_den'], ['x_norm']));
    return {
      xn: 'x_norm',
      undo: (y) => {
        nodes.push(node('Mul', [y, 'ln_std'], ['x_hat_scaled']), node('Add', ['x_hat_scaled', 'ln_mu'], ['x_hat']));
        return 'x_hat';
      },
    };
  }
  return { xn: 'x', undo: (y) => y };
}

export function buildEncoderGraph(cfg: SaeConfig, params: SaeParams): Uint8Array {
  const arch = ARCHITECTURES[cfg.architecture];
  checkSize(cfg, cfg.dIn * cfg.dSae + 4 * cfg.dSae + cfg.dIn);
  return encoderGraph(cfg, params, (g, input) => arch.encodeGraph(g, cfg, params, input), false)!;
}

/**
 * The encoder graph through the architecture's screened encode (./architectures/architecture.ts), with its
 * outputs besides: screen_proved [n] bool, screen_pre [n, dSae] and screen_bound [n, 1] float. Null when the
 * architecture has none for this dictionary, or when its weights (W_encᵀ in float32 beside the int8 copy)
 * would not fit in one graph: the dense graph then serves every batch.
 */
export function buildScreenGraph(cfg: SaeConfig, params: SaeParams, weights: Int8Weights): Uint8Array | null {
  const arch = ARCHITECTURES[cfg.architecture];
  if (!arch.screenGraph || !fitsOneGraph(screenWeightBytes(cfg.dIn, cfg.dSae) + 4 * cfg.dIn)) return null;
  return encoderGraph(cfg, params, (g, input) => arch.screenGraph!(g, cfg, params, input, weights), true);
}

function encoderGraph(
  cfg: SaeConfig,
  params: SaeParams,
  encode: (g: GraphParts, input: string) => number | null,
  screen: boolean,
): Uint8Array | null {
  const { dIn, dSae } = cfg;
  const g: GraphParts = { nodes: [], inits: [floatTensor('zero', [], new Float32Array([0]))] };
  const { nodes, inits } = g;
  const { xn } = normalizationGraph(g, cfg, true);
  let saeIn = xn;
  if (cfg.applyBDecToInput) {
    inits.push(floatTensor('b_dec', [dIn], params.b_dec));
    nodes.push(node('Sub', [xn, 'b_dec'], ['sae_in']));
    saeIn = 'sae_in';
  }

  const sparse = encode(g, saeIn);
  if (screen && sparse === null) return null;
  if (sparse === null) {
    inits.push(int64Tensor('code_axis', [1], [-1]));
    nodes.push(
      node('TopK', ['codes', 'top_k'], ['values', 'indices_i64'], { axis: -1, largest: 1, sorted: 1 }),
      node('Greater', ['codes', 'zero'], ['active']),
    );
  } else {
    // The k kept codes, cut to top_k columns or padded with zeros to top_k.
    inits.push(
      int64Tensor('code_axis', [1], [1]),
      int64Tensor('slice_start', [1], [0]),
      int64Tensor('arch_width', [1], [sparse]),
      int64Tensor('pad_zero', [3], [0, 0, 0]),
      int64Tensor('pad_none', [1], [0]),
    );
    nodes.push(
      node('Slice', ['codes_values', 'slice_start', 'top_k', 'code_axis'], ['cut_values']),
      node('Slice', ['codes_indices', 'slice_start', 'top_k', 'code_axis'], ['cut_indices']),
      node('Sub', ['top_k', 'arch_width'], ['pad_wanted']),
      node('Max', ['pad_wanted', 'pad_none'], ['pad_cols']),
      node('Concat', ['pad_zero', 'pad_cols'], ['pads'], { axis: 0 }),
      node('Pad', ['cut_values', 'pads'], ['values']),
      node('Pad', ['cut_indices', 'pads'], ['indices_i64']),
      node('Greater', ['codes_values', 'zero'], ['active']),
    );
  }
  nodes.push(
    node('Cast', ['indices_i64'], ['indices'], { to: INT32 }),
    node('Cast', ['active'], ['active_f'], { to: FLOAT }),
    // Float sums of ones are exact up to 2^24 features.
    node('ReduceSum', ['active_f', 'code_axis'], ['l0_f'], { keepdims: 0 }),
    node('Cast', ['l0_f'], ['l0'], { to: INT32 }),
  );

  const spec: GraphSpec = {
    name: `sae_${cfg.architecture}_${dSae}x${dIn}_encode${screen ? '_screen' : ''}`,
    nodes,
    initializers: inits,
    inputs: [valueInfo('x', 'float', ['n', dIn]), valueInfo('top_k', 'int64', [1])],
    outputs: [
      valueInfo('indices', 'int32', ['n', 'top_k']),
      valueInfo('values', 'float', ['n', 'top_k']),
      valueInfo('l0', 'int32', ['n']),
      ...(screen
        ? [
            valueInfo('screen_proved', 'bool', ['n']),
            valueInfo('screen_pre', 'float', ['n', dSae]),
            valueInfo('screen_bound', 'float', ['n', 1]),
          ]
        : []),
    ],
  };
  return serializeModel(spec);
}

export function buildDecoderGraph(cfg: SaeConfig, params: SaeParams): Uint8Array {
  const { dIn, dSae } = cfg;
  checkSize(cfg, dIn * dSae + dIn + (cfg.transcoder?.skip ? dIn * dIn : 0));
  const arch = ARCHITECTURES[cfg.architecture];
  const g: GraphParts = { nodes: [], inits: [floatTensor('b_dec', [dIn], params.b_dec)] };
  const { undo } = normalizationGraph(g, cfg, false);
  arch.decodeGraph(g, cfg, params);
  let xHat = undo('decoded');
  if (cfg.transcoder?.skip) xHat = skipGraph(g, params, dIn, xHat);
  if (xHat !== 'x_hat') g.nodes.push(node('Identity', [xHat], ['x_hat']));
  const spec: GraphSpec = {
    name: `sae_${cfg.architecture}_${dSae}x${dIn}_decode`,
    nodes: g.nodes,
    initializers: g.inits,
    inputs: [
      valueInfo('x', 'float', ['n', dIn]),
      valueInfo('values', 'float', ['n', 'width']),
      valueInfo('indices', 'int32', ['n', 'width']),
    ],
    outputs: [valueInfo('x_hat', 'float', ['n', dIn])],
  };
  return serializeModel(spec);
}
