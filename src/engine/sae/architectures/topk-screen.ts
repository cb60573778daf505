/**
 * A TopK dictionary's encode through an 8-bit screen with a guaranteed bound, then an exact float32 re-score of
 * the candidates it cannot rule out (issue #19; the same scheme as the exact nearest search, ../../nearest.ts).
 * pre_j = x·w_j + b_j, x the encoder input [n, dIn] (normalized, b_dec subtracted), w_j column j of W_enc.
 * - Create time: ŵ_j = s_j·q_j, integer q_j ∈ [−127, 127], s_j = max|w_j|/127 (float32); e_j = ‖w_j − ŵ_j‖₂ in
 *   float64; E = max e_j, Wn = max(‖w_j‖, ‖ŵ_j‖), bmax = max|b_j|. The codes are stored as int8, or as uint8
 *   q_j + 128 with zero point 128 on CPUs whose u8 × s8 kernel saturates (AVX2 without VNNI;
 *   ../../runtime/int8-product.ts): the same ŵ_j and the same exact integer sums either way.
 * - In the graph: DynamicQuantizeLinear puts the batch on one uint8 grid, x̂ = t·(c − z) (t = (max(0, max x) −
 *   min(0, min x))/255, zero point z, c ∈ [0, 255]); MatMulIntegerToFloat (com.microsoft) sums (c − z)·q_j exactly
 *   in int32 and returns pre'_j = acc·(t·s_j) + b_j in float32.
 * - Bound: |pre_j − pre'_j| ≤ |x·(w_j − ŵ_j)| + |(x − x̂)·ŵ_j| + float32 error ≤ ‖x‖·E + δ·Wn + R, δ = ‖x − x̂‖.
 *   R: casting acc, the scale t·s_j, its product and the add round at most 4 times relative to |x̂·ŵ_j| ≤
 *   (‖x‖ + δ)·Wn or to |pre'_j| ≤ (‖x‖ + δ)·Wn + bmax; the proof's own add and compare round once more each; and the
 *   float32 re-score (or any float32 dense product) of a feature differs from pre_j by at most (dIn + 2)·u·‖x‖·Wn +
 *   u·bmax (u = 2⁻²⁴): R = u·((dIn + 12)·(‖x‖ + δ)·Wn + 8·bmax) + 1e-30 (underflow). ‖x‖ and δ are float32 sums of
 *   squares in the graph: the true δ is at most δ' + 2u(‖x'‖ + δ') (x̂ and x − x̂ each rounded once), and every
 *   computed norm and the few operations forming B are within a factor κ = 1 + 2(dIn + 16)·u of exact, so
 *   B = κ·(‖x'‖·(E + (dIn + 14)·u·Wn) + δ'·Wn·(1 + (dIn + 14)·u) + 8u·bmax + 1e-30), coefficients rounded up.
 * - Candidates: the top K' of pre', in any order. Every feature outside has pre' ≤ v_K' (their smallest), so its
 *   pre is at most v_K' + B, while the top k of pre' have pre ≥ v_k − B (v_k: the k-th largest). When
 *   v_K' + 2B < v_k the true top k are all among the K' (strictly above everything else, so ties cannot cross):
 *   `screen_proved`. Those K' are re-scored in float32 from W_encᵀ (Gather of K' rows, one [K', dIn] × [dIn, 1]
 *   product per vector) in ascending feature order, so TopK keeps equal values at the lower index as the dense
 *   graph does; relu on the k kept. A row not proved must be encoded by the dense graph (../encoder.ts does so).
 * Measured (random 24576 × 768, x uniform in [−1, 1], k = 32): E ≈ 2.4e-3, Wn ≈ 0.61, B ≈ 0.077 against a
 * k-th pre of about 1.03 (the real error is about a tenth of B); 110–160 features within 2B of the k-th, hence
 * K' = 4k + 64 (every row proved). Kernels, 1 thread, [n, 768] × [768, 24576] at n = 1 / 16 / 64 / 256 (ms, load
 * average 2): float32 MatMul 2.3 / 6.8 / 16.4 / 57; MatMulInteger u8s8 0.41 / 1.6 / 5.6 / 20 (MatMulIntegerToFloat
 * the same); MatMulNBits 8-bit accuracy_level 4 0.64 / 3.3 / 11.7 / 47 (a CPU with AVX-512 VNNI). On an AMD EPYC
 * with AVX2 only, n = 1 / 16 / 64: float32 7.3 / 15.8 / 36.1, u8 × s8 2.3 / 7.3 / 18.2 (inexact there), u8 × u8
 * 2.8 / 8.0 / 22.3. The rest is per vector: TopK of K' = 192 over 24576 about 80 µs (TopK of 32: 25), the Gather
 * and product of the re-score about 90 µs, which is why the screen stops paying between 32 and 128 vectors
 * (../encoder.ts, SCREEN_MAX_ROWS).
 * Resident cost beside the dense graph's W_enc: the 8-bit copy (dIn·dSae bytes, a quarter of W_enc) and W_encᵀ in
 * float32 for the re-score (as large as W_enc): 2.25× the dense encoder's weights (+94 MB at 24576 × 768).
 */
import { MS_DOMAIN, floatTensor, int64Tensor, node, onnx } from '../../onnx/proto.js';
import { weightCodes, type Int8Weights } from '../../runtime/int8-product.js';
import type { SaeConfig, SaeParams } from '../types.js';
import type { GraphParts } from './architecture.js';
import { need } from './linear.js';

const U = 2 ** -24;

/** Candidates re-scored per vector for a TopK of k: K' = 4k + 64 (see the header). */
export function screenWidth(k: number): number {
  return 4 * k + 64;
}

/**
 * Bytes of the screen's own weights: the 8-bit copy of W_enc, W_encᵀ in float32 for the re-score, the scales,
 * b_enc and the uint8 codes' zero points (the header's resident cost; d_sae bytes over with int8 codes).
 */
export function screenWeightBytes(dIn: number, dSae: number): number {
  return 5 * dIn * dSae + 9 * dSae;
}

/** Whether a screen pays at all: its candidates must be a small part of the dictionary. */
export function screenFits(k: number, dSae: number): boolean {
  return 2 * screenWidth(k) <= dSae;
}

/** The smallest float32 at or above v (v ≥ 0). */
function f32Up(v: number): number {
  const f = Math.fround(v);
  if (f >= v) return f;
  const bits = new Uint32Array(new Float32Array([f]).buffer);
  bits[0] += 1;
  return new Float32Array(bits.buffer)[0];
}

interface Quantized {
  codes: Int8Array;
  scales: Float32Array;
  /** max_j e_j, max_j max(‖w_j‖, ‖ŵ_j‖), max_j |b_j|. */
  E: number;
  Wn: number;
  bmax: number;
}

/** ŵ_j = s_j q_j per column of W_enc [dIn, dSae], with the bound's constants (float64). */
function quantizeColumns(W: Float32Array, b: Float32Array, dIn: number, dSae: number): Quantized {
  const scales = new Float32Array(dSae);
  for (let i = 0; i < dIn; i++) {
    const o = i * dSae;
    for (let j = 0; j < dSae; j++) {
      const a = Math.abs(W[o + j]);
      if (a > scales[j]) scales[j] = a;
    }
  }
  for (let j = 0; j < dSae; j++) scales[j] = scales[j] > 0 ? Math.fround(scales[j] / 127) : 1;
  const codes = new Int8Array(dIn * dSae);
  const err = new Float64Array(dSae);
  const norm = new Float64Array(dSae);
  const normQ = new Float64Array(dSae);
  for (let i = 0; i < dIn; i++) {
    const o = i * dSae;
    for (let j = 0; j < dSae; j++) {
      const w = W[o + j];
      const c = Math.max(-127, Math.min(127, Math.round(w / scales[j])));
      codes[o + j] = c;
      const wq = c * scales[j];
      err[j] += (w - wq) ** 2;
      norm[j] += w * w;
      normQ[j] += wq * wq;
    }
  }
  let E = 0;
  let Wn = 0;
  let bmax = 0;
  for (let j = 0; j < dSae; j++) {
    E = Math.max(E, Math.sqrt(err[j]));
    Wn = Math.max(Wn, Math.sqrt(norm[j]), Math.sqrt(normQ[j]));
    bmax = Math.max(bmax, Math.abs(b[j]));
  }
  return { codes, scales, E, Wn, bmax };
}

/**
 * ONNX nodes of the screened encode from the tensor `input` (see the header): `codes_values` [n, k] float and
 * `codes_indices` [n, k] int64 as the dense TopK writes them, `screen_proved` [n] bool, and for checks the screen
 * scores `screen_pre` [n, dSae] and bound `screen_bound` [n, 1]. `weights`: how the codes are stored (the header).
 */
export function topkScreenGraph(
  g: GraphParts,
  cfg: SaeConfig,
  params: SaeParams,
  input: string,
  k: number,
  weights: Int8Weights,
): void {
  const { dIn, dSae } = cfg;
  const b = need(params, 'b_enc', cfg.architecture);
  const q = quantizeColumns(params.W_enc, b, dIn, dSae);
  const codes = weightCodes('screen_codes', [dIn, dSae], q.codes, weights);
  const wT = new Float32Array(dSae * dIn);
  for (let i = 0; i < dIn; i++) for (let j = 0; j < dSae; j++) wT[j * dIn + i] = params.W_enc[i * dSae + j];
  const kappa = 1 + 2 * (dIn + 16) * U;
  const width = screenWidth(k);
  const f = (name: string, v: number) => floatTensor(name, [], new Float32Array([v]));
  g.inits.push(
    ...codes.initializers,
    floatTensor('screen_scales', [dSae], q.scales),
    floatTensor('b_enc', [dSae], b),
    floatTensor('W_enc_T', [dSae, dIn], wT),
    f('screen_cx', f32Up(kappa * (q.E + (dIn + 14) * U * q.Wn))),
    f('screen_cd', f32Up(kappa * q.Wn * (1 + (dIn + 14) * U))),
    f('screen_c0', f32Up(kappa * (8 * U * q.bmax + 1e-30))),
    f('screen_two', 2),
    int64Tensor('screen_width', [1], [width]),
    int64Tensor('screen_k', [1], [k]),
    int64Tensor('screen_cols', [1], [1]),
    int64Tensor('screen_last', [1], [2]),
    int64Tensor('screen_rows', [1], [-1]),
  );
  g.nodes.push(
    // x̂ = t·(c − z) on the batch's uint8 grid; pre' = x̂·ŵ_j + b_j with the products summed in int32.
    node('DynamicQuantizeLinear', [input], ['screen_xq', 'screen_t', 'screen_z']),
    {
      ...node(
        'MatMulIntegerToFloat',
        ['screen_xq', 'screen_codes', 'screen_t', 'screen_scales', 'screen_z', codes.zeroPoint, 'b_enc'],
        ['screen_pre'],
      ),
      domain: MS_DOMAIN,
    },
    node('Cast', ['screen_xq'], ['screen_xqf'], { to: onnx.TensorProto.DataType.FLOAT }),
    node('Cast', ['screen_z'], ['screen_zf'], { to: onnx.TensorProto.DataType.FLOAT }),
    node('Sub', ['screen_xqf', 'screen_zf'], ['screen_c']),
    // B = cx·‖x‖ + cd·δ + c0.
    node('Mul', ['screen_c', 'screen_t'], ['screen_xhat']),
    node('Sub', [input, 'screen_xhat'], ['screen_dx']),
    node('Mul', ['screen_dx', 'screen_dx'], ['screen_dx2']),
    node('ReduceSum', ['screen_dx2', 'screen_rows'], ['screen_dss'], { keepdims: 1 }),
    node('Sqrt', ['screen_dss'], ['screen_delta']),
    node('Mul', [input, input], ['screen_x2']),
    node('ReduceSum', ['screen_x2', 'screen_rows'], ['screen_xss'], { keepdims: 1 }),
    node('Sqrt', ['screen_xss'], ['screen_xnorm']),
    node('Mul', ['screen_xnorm', 'screen_cx'], ['screen_bx']),
    node('Mul', ['screen_delta', 'screen_cd'], ['screen_bd']),
    node('Add', ['screen_bx', 'screen_bd'], ['screen_bxd']),
    node('Add', ['screen_bxd', 'screen_c0'], ['screen_bound']),
    // Candidates and the proof v_K' + 2B < v_k.
    node('TopK', ['screen_pre', 'screen_width'], ['screen_top', 'screen_top_idx'], { axis: -1, largest: 1, sorted: 0 }),
    node('TopK', ['screen_top', 'screen_k'], ['screen_top_k', 'screen_top_k_pos'], { axis: -1, largest: 1, sorted: 0 }),
    node('ReduceMin', ['screen_top_k'], ['screen_v_k'], { axes: [-1], keepdims: 1 }),
    node('ReduceMin', ['screen_top'], ['screen_v_w'], { axes: [-1], keepdims: 1 }),
    node('Mul', ['screen_bound', 'screen_two'], ['screen_2b']),
    node('Add', ['screen_v_w', 'screen_2b'], ['screen_above']),
    node('Less', ['screen_above', 'screen_v_k'], ['screen_proved_2d']),
    node('Squeeze', ['screen_proved_2d', 'screen_cols'], ['screen_proved']),
    // Exact re-score of the candidates in ascending feature order.
    node('TopK', ['screen_top_idx', 'screen_width'], ['screen_cand', 'screen_cand_pos'], {
      axis: -1,
      largest: 0,
      sorted: 1,
    }),
    node('Gather', ['W_enc_T', 'screen_cand'], ['screen_rows_w'], { axis: 0 }),
    node('Unsqueeze', [input, 'screen_last'], ['screen_xcol']),
    node('MatMul', ['screen_rows_w', 'screen_xcol'], ['screen_dot3']),
    node('Squeeze', ['screen_dot3', 'screen_last'], ['screen_dot']),
    node('Gather', ['b_enc', 'screen_cand'], ['screen_cand_b'], { axis: 0 }),
    node('Add', ['screen_dot', 'screen_cand_b'], ['screen_exact']),
    node('TopK', ['screen_exact', 'screen_k'], ['kept_values', 'screen_kept_pos'], { axis: -1, largest: 1, sorted: 1 }),
    node('GatherElements', ['screen_cand', 'screen_kept_pos'], ['codes_indices'], { axis: 1 }),
    node('Relu', ['kept_values'], ['codes_values']),
  );
}

/**
 * The largest |pre_j − pre'_j| / B over rows [n] and features, pre in float64 from `x` (the encoder input as the
 * graph sees it) against the screen's `pre` [n, dSae] and `bound` [n]: at most 1 when the bound holds.
 */
export function screenBoundRatio(
  cfg: SaeConfig,
  params: SaeParams,
  x: Float32Array,
  n: number,
  pre: Float32Array,
  bound: Float32Array,
): number {
  const { dIn, dSae } = cfg;
  const b = need(params, 'b_enc', cfg.architecture);
  const acc = new Float64Array(dSae);
  let worst = 0;
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < dSae; j++) acc[j] = b[j];
    for (let i = 0; i < dIn; i++) {
      const xi = x[r * dIn + i];
      const o = i * dSae;
      for (let j = 0; j < dSae; j++) acc[j] += xi * params.W_enc[o + j];
    }
    for (let j = 0; j < dSae; j++) worst = Math.max(worst, Math.abs(acc[j] - pre[r * dSae + j]) / bound[r]);
  }
  return worst;
}
