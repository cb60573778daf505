/**
 * The widest int8 weight codes for which onnxruntime's u8 × s8 integer product (MatMulIntegerToFloat,
 * com.microsoft) is exact on this CPU. MLAS's AVX2 kernel multiplies with vpmaddubsw, which adds two adjacent
 * u8·s8 products into int16 with saturation: 2·255·127 = 64770 overflows 32767, 2·255·64 = 32640 does not.
 * Its AVX-VNNI, AVX-512 VNNI and ARM kernels sum in int32 and take the full [−127, 127]. Which kernel runs
 * is MLAS's choice from the CPU's features, so it is found by running the product once per process on
 * inputs that would saturate (every activation code 255, every weight code 127) against the exact sum.
 */
import * as ort from 'onnxruntime-node';
import { MS_DOMAIN, floatTensor, int8Tensor, node, serializeModel, valueInfo } from '../onnx/proto.js';

/** Weight codes in [−FULL_CODE, FULL_CODE] where the kernel sums in int32. */
export const FULL_CODE = 127;
/** Where it adds pairs in int16: 2·255·64 = 32640 ≤ 32767. */
export const PAIR_SAFE_CODE = 64;
const DEPTH = 16;
const COLS = 16;

let found: Promise<number> | undefined;

/** FULL_CODE where the u8 × s8 product is exact at full range on this CPU, else PAIR_SAFE_CODE. */
export function exactInt8Code(): Promise<number> {
  return (found ??= probe());
}

async function probe(): Promise<number> {
  // x = 1 puts every activation on code 255 (scale 1/255, zero point 0); y = Σ 255·127 / 255 = 127·DEPTH.
  const bytes = serializeModel({
    name: 'int8_product_probe',
    nodes: [
      node('DynamicQuantizeLinear', ['x'], ['xq', 'xs', 'xz']),
      { ...node('MatMulIntegerToFloat', ['xq', 'w', 'xs', 'ws', 'xz'], ['y']), domain: MS_DOMAIN },
    ],
    initializers: [
      int8Tensor('w', [DEPTH, COLS], new Int8Array(DEPTH * COLS).fill(FULL_CODE)),
      floatTensor('ws', [COLS], new Float32Array(COLS).fill(1)),
    ],
    inputs: [valueInfo('x', 'float', [1, DEPTH])],
    outputs: [valueInfo('y', 'float', [1, COLS])],
  });
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], logSeverityLevel: 3 });
  try {
    const { y } = await session.run({ x: new ort.Tensor('float32', new Float32Array(DEPTH).fill(1), [1, DEPTH]) });
    const exact = (y.data as Float32Array).every((v) => Math.abs(v - FULL_CODE * DEPTH) <= 1e-3 * FULL_CODE * DEPTH);
    return exact ? FULL_CODE : PAIR_SAFE_CODE;
  } finally {
    await session.release();
  }
}
