/** What the architectures share: dense products in TypeScript (float64 sums) and their ONNX counterparts. */
import { AtlasError } from '../../../errors.js';
import { floatTensor, int64Tensor, node } from '../../onnx/proto.js';
import type { SaeConfig, SaeParams } from '../types.js';
import type { GraphParts } from './architecture.js';

/** out[n, cols] = x[n, rows] @ W[rows, cols] + bias[cols] (bias optional). */
export function affine(
  x: Float32Array,
  n: number,
  W: Float32Array,
  rows: number,
  cols: number,
  bias?: Float32Array,
): Float32Array {
  const out = new Float32Array(n * cols);
  const acc = new Float64Array(cols);
  for (let r = 0; r < n; r++) {
    if (bias) for (let j = 0; j < cols; j++) acc[j] = bias[j];
    else acc.fill(0);
    for (let i = 0; i < rows; i++) {
      const xi = x[r * rows + i];
      if (xi === 0) continue;
      const w = i * cols;
      for (let j = 0; j < cols; j++) acc[j] += xi * W[w + j];
    }
    out.set(acc, r * cols);
  }
  return out;
}

/** SAELens process_sae_in after normalization: x - b_dec when apply_b_dec_to_input. */
export function saeInput(params: SaeParams, cfg: SaeConfig, x: Float32Array, n: number): Float32Array {
  if (!cfg.applyBDecToInput) return x;
  const out = new Float32Array(n * cfg.dIn);
  for (let r = 0; r < n; r++)
    for (let i = 0; i < cfg.dIn; i++) out[r * cfg.dIn + i] = x[r * cfg.dIn + i] - params.b_dec[i];
  return out;
}

/** pre = (x - b_dec) W_enc + b_enc, the encoder every architecture but gated starts from. */
export function preActivation(params: SaeParams, cfg: SaeConfig, x: Float32Array, n: number): Float32Array {
  return affine(
    saeInput(params, cfg, x, n),
    n,
    params.W_enc,
    cfg.dIn,
    cfg.dSae,
    need(params, 'b_enc', cfg.architecture),
  );
}

/** Every architecture decodes the same way: codes @ W_dec + b_dec (in the normalized space). */
export function linearDecode(params: SaeParams, cfg: SaeConfig, codes: Float32Array, n: number): Float32Array {
  return affine(codes, n, params.W_dec, cfg.dSae, cfg.dIn, params.b_dec);
}

/** ONNX: h = input @ W_enc. */
export function encoderProductGraph(g: GraphParts, cfg: SaeConfig, params: SaeParams, input: string): void {
  g.inits.push(floatTensor('W_enc', [cfg.dIn, cfg.dSae], params.W_enc));
  g.nodes.push(node('MatMul', [input, 'W_enc'], ['h']));
}

/** ONNX: pre = input @ W_enc + b_enc. */
export function preActivationGraph(g: GraphParts, cfg: SaeConfig, params: SaeParams, input: string): void {
  encoderProductGraph(g, cfg, params, input);
  g.inits.push(floatTensor('b_enc', [cfg.dSae], need(params, 'b_enc', cfg.architecture)));
  g.nodes.push(node('Add', ['h', 'b_enc'], ['pre']));
}

/**
 * ONNX: decoded = Σ_j values[:, j] W_dec[indices[:, j]] + b_dec, the K decoder rows of each vector
 * gathered ([n, K, dIn]) and weighted by one batched [1, K] × [K, dIn] product per vector.
 */
export function linearDecodeGraph(g: GraphParts, cfg: SaeConfig, params: SaeParams): void {
  g.inits.push(floatTensor('W_dec', [cfg.dSae, cfg.dIn], params.W_dec), int64Tensor('row_axis', [1], [1]));
  g.nodes.push(
    node('Gather', ['W_dec', 'indices'], ['dec_rows'], { axis: 0 }),
    node('Unsqueeze', ['values', 'row_axis'], ['dec_weights']),
    node('MatMul', ['dec_weights', 'dec_rows'], ['dec_sum']),
    node('Squeeze', ['dec_sum', 'row_axis'], ['dec_h']),
    node('Add', ['dec_h', 'b_dec'], ['decoded']),
  );
}

/** The parameters of a linear encoder with bias and a linear decoder. */
export function baseShapes(dIn: number, dSae: number): Record<string, number[]> {
  return { W_enc: [dIn, dSae], b_enc: [dSae], W_dec: [dSae, dIn], b_dec: [dIn] };
}

export function need(
  params: SaeParams,
  name: 'b_enc' | 'threshold' | 'r_mag' | 'b_mag' | 'b_gate',
  arch: string,
): Float32Array {
  const v = params[name];
  if (!v)
    throw new AtlasError(
      'BAD_FILE',
      `The ${arch} architecture needs parameter "${name}", which this dictionary lacks.`,
    );
  return v;
}

/** Skip transcoders: y += x W_skip^T on the raw input x [n, dIn], W_skip [dIn (out), dIn (in)]. */
export function addSkip(params: SaeParams, x: Float32Array, y: Float32Array, n: number, d: number): Float32Array {
  const W = params.W_skip;
  if (!W) throw new AtlasError('BAD_FILE', 'This skip transcoder lacks its parameter "W_skip".');
  const out = y.slice();
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += x[r * d + i] * W[j * d + i];
      out[r * d + j] += s;
    }
  }
  return out;
}

/** ONNX: `${y}_skip` = y + x @ W_skip^T (W_skip stored transposed as an initializer). */
export function skipGraph(g: GraphParts, params: SaeParams, d: number, y: string): string {
  const W = params.W_skip;
  if (!W) throw new AtlasError('BAD_FILE', 'This skip transcoder lacks its parameter "W_skip".');
  const T = new Float32Array(d * d);
  for (let j = 0; j < d; j++) for (let i = 0; i < d; i++) T[i * d + j] = W[j * d + i];
  g.inits.push(floatTensor('W_skip_T', [d, d], T));
  g.nodes.push(node('MatMul', ['x', 'W_skip_T'], ['skip_out']), node('Add', [y, 'skip_out'], [`${y}_skip`]));
  return `${y}_skip`;
}
