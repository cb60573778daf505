/**
 * What an SAE architecture is, in one place: the parameters it reads, its encode and decode in
 * TypeScript, and the ONNX nodes that compute the same in the encoder graph. The graph builder
 * (../encoder-graph.ts) keeps only the frame every architecture shares: normalization in and out,
 * the optional x - b_dec, and the top-k / L0 outputs. Codes leave an architecture sparse when it
 * keeps a fixed number per vector (TopK), dense otherwise. Adding an architecture is adding one file
 * here and listing it in ./index.ts.
 */
import type onnxProto from 'onnx-proto';
import type { SaeConfig, SaeParams } from '../types.js';
import type { Int8Weights } from '../../runtime/int8-product.js';

/** The part of the encoder graph an architecture writes into. */
export interface GraphParts {
  nodes: onnxProto.onnx.INodeProto[];
  inits: onnxProto.onnx.ITensorProto[];
}

export interface Architecture {
  /** Every parameter the architecture reads (SAELens names), with its shape. */
  paramShapes(dIn: number, dSae: number): Record<string, number[]>;
  /** Dense codes [n, dSae] of `x` [n, dIn], already normalized (../normalization.ts); never negative. */
  encode(params: SaeParams, cfg: SaeConfig, x: Float32Array, n: number): Float32Array;
  /** Reconstruction [n, dIn] in the normalized space. */
  decode(params: SaeParams, cfg: SaeConfig, codes: Float32Array, n: number): Float32Array;
  /**
   * ONNX nodes computing the codes from the tensor named `input` (normalized x, b_dec already
   * subtracted when the config says so); the frame provides the scalar `zero`. Either dense codes
   * `codes` [n, dSae], returning null, or a fixed number w of codes per vector, returning w:
   * `codes_values` [n, w] float, sorted highest first, and `codes_indices` [n, w] int64.
   */
  encodeGraph(g: GraphParts, cfg: SaeConfig, params: SaeParams, input: string): number | null;
  /**
   * When the architecture has one, an exact screened encode for small batches (TopK: ./topk-screen.ts): the
   * same `codes_values` and `codes_indices` as encodeGraph's sparse codes, of the width it returns, plus
   * `screen_proved` [n] bool (a row not proved must be encoded by encodeGraph's nodes instead) and, for checks,
   * `screen_pre` [n, dSae] and `screen_bound` [n, 1]. Null when it would not pay for this dictionary. `weights`:
   * the 8-bit weight type whose products onnxruntime sums exactly here (../../runtime/int8-product.ts).
   */
  screenGraph?(g: GraphParts, cfg: SaeConfig, params: SaeParams, input: string, weights: Int8Weights): number | null;
  /**
   * ONNX nodes computing `decoded` [n, dIn] (normalized space) from the sparse codes `values`
   * [n, K] float and `indices` [n, K] int32 holding every active code; b_dec is provided as `b_dec`.
   */
  decodeGraph(g: GraphParts, cfg: SaeConfig, params: SaeParams): void;
}
