/** SAE dictionaries: reading, per-architecture encode/decode in TypeScript, ONNX encoder, export. */
import { SaeConfig, SaeParams } from './types.js';
import { normalizeInput, denormalizeOutput } from './normalization.js';
import { ARCHITECTURES } from './architectures/index.js';

export * from './types.js';
export { openSae } from './open.js';
export { SaeEncoder, type SaeEncoderOptions, type SaeEncoding } from './encoder.js';
export { reconstructionMetrics, type ReconstructionMetrics } from './metrics.js';
export { writeSaelens } from './export.js';
export { normalizeInput, denormalizeOutput } from './normalization.js';

export { ARCHITECTURES } from './architectures/index.js';

/** Dense codes [n, dSae] and reconstruction [n, dIn] in x's scale, computed in TypeScript. */
export function forward(params: SaeParams, cfg: SaeConfig, x: Float32Array, n: number): { codes: Float32Array; xHat: Float32Array } {
  const arch = ARCHITECTURES[cfg.architecture];
  const { x: xn, state } = normalizeInput(cfg, x, n);
  const codes = arch.encode(params, cfg, xn, n);
  return { codes, xHat: denormalizeOutput(cfg, arch.decode(params, cfg, codes, n), n, state) };
}
