/**
 * Which 8-bit weight type onnxruntime's integer product (MatMulIntegerToFloat, com.microsoft; activations u8)
 * sums exactly on this CPU at full range:
 * - `int8` (codes in [−127, 127]): MLAS's AVX-VNNI, AVX-512 VNNI and ARM kernels sum u8·s8 products in int32.
 *   Its AVX2 kernel without VNNI multiplies with vpmaddubsw, which adds two adjacent u8·s8 products into int16
 *   with saturation (2·255·127 = 64770 > 32767): those sums come out wrong.
 * - `uint8` (codes + 128, zero point 128): the u8 × u8 kernels widen both sides to 16 bits first (vpmaddwd:
 *   int16 products added in int32) and are exact on AVX2; 1.1–1.2× the time of u8 × s8 there, which VNNI
 *   machines do not pay.
 * Which kernel runs is MLAS's choice from the CPU's features, so each type is tried once per process, in that
 * order, on inputs at the extremes (every activation code 255 against weights of ±127) against the exact sums.
 */
import * as ort from 'onnxruntime-node';
import type onnxProto from 'onnx-proto';
import { MS_DOMAIN, floatTensor, int8Tensor, node, serializeModel, uint8Tensor, valueInfo } from '../onnx/proto.js';

export type Int8Weights = 'int8' | 'uint8';

/** The zero point of `uint8` weights: code c is stored as c + 128. */
const UINT8_ZERO = 128;
const DEPTH = 16;
const COLS = 16;

let found: Promise<Int8Weights | null> | undefined;

/**
 * Initializers holding integer weight codes in [−127, 127] ([rows, cols]) as `type` stores them, and the name of
 * the zero-point input MatMulIntegerToFloat takes for them ('' for int8: none).
 */
export function weightCodes(
  name: string,
  dims: [number, number],
  codes: Int8Array,
  type: Int8Weights,
): { initializers: onnxProto.onnx.ITensorProto[]; zeroPoint: string } {
  if (type === 'int8') return { initializers: [int8Tensor(name, dims, codes)], zeroPoint: '' };
  const zeroPoint = `${name}_zero`;
  return {
    initializers: [
      uint8Tensor(
        name,
        dims,
        Uint8Array.from(codes, (c) => c + UINT8_ZERO),
      ),
      uint8Tensor(zeroPoint, [dims[1]], new Uint8Array(dims[1]).fill(UINT8_ZERO)),
    ],
    zeroPoint,
  };
}

/** The first weight type whose product is exact here at full range; null where neither is (no screen then). */
export function exactInt8Weights(): Promise<Int8Weights | null> {
  return (found ??= (async () => {
    for (const type of ['int8', 'uint8'] as const) if (await productIsExact(type)) return type;
    return null;
  })());
}

/**
 * Runs x·W on u8 activations 255 (x = 1: scale 1/255, zero point 0) against weight codes of +127 in the even
 * columns and −127 in the odd ones: each output must be ±127·DEPTH.
 */
async function productIsExact(type: Int8Weights): Promise<boolean> {
  const code = (j: number) => (j % 2 === 0 ? 127 : -127);
  const w = weightCodes(
    'w',
    [DEPTH, COLS],
    Int8Array.from({ length: DEPTH * COLS }, (_, i) => code(i % COLS)),
    type,
  );
  const bytes = serializeModel({
    name: 'int8_product_probe',
    nodes: [
      node('DynamicQuantizeLinear', ['x'], ['xq', 'xs', 'xz']),
      {
        ...node('MatMulIntegerToFloat', ['xq', 'w', 'xs', 'ws', 'xz', w.zeroPoint], ['y']),
        domain: MS_DOMAIN,
      },
    ],
    initializers: [...w.initializers, floatTensor('ws', [COLS], new Float32Array(COLS).fill(1))],
    inputs: [valueInfo('x', 'float', [1, DEPTH])],
    outputs: [valueInfo('y', 'float', [1, COLS])],
  });
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], logSeverityLevel: 3 });
  try {
    const { y } = await session.run({ x: new ort.Tensor('float32', new Float32Array(DEPTH).fill(1), [1, DEPTH]) });
    return (y.data as Float32Array).every((v, j) => Math.abs(v - code(j) * DEPTH) <= 1e-3 * 127 * DEPTH);
  } finally {
    await session.release();
  }
}
