/** SAE dictionaries: reading, per-architecture encode/decode in TypeScript, ONNX encoder, export. */
import { SaeArchitecture, SaeConfig, SaeParams } from './types.js';
import { normalizeInput, denormalizeOutput } from './normalization.js';
import * as standard from './architectures/standard.js';
import * as jumprelu from './architectures/jumprelu.js';
import * as topk from './architectures/topk.js';
import * as gated from './architectures/gated.js';

export * from './types.js';
export { openSae } from './open.js';
export { SaeEncoder, type SaeEncoderOptions, type SaeEncoding } from './encoder.js';
export { reconstructionMetrics, type ReconstructionMetrics } from './metrics.js';
export { writeSaelens } from './export.js';
export { normalizeInput, denormalizeOutput } from './normalization.js';

interface Architecture {
  encode(params: SaeParams, cfg: SaeConfig, x: Float32Array, n: number): Float32Array;
  decode(params: SaeParams, cfg: SaeConfig, codes: Float32Array, n: number): Float32Array;
}

export const ARCHITECTURES: Record<SaeArchitecture, Architecture> = { standard, jumprelu, topk, gated };

/** Dense codes [n, dSae] and reconstruction [n, dIn] in x's scale, computed in TypeScript. */
export function forward(params: SaeParams, cfg: SaeConfig, x: Float32Array, n: number): { codes: Float32Array; xHat: Float32Array } {
  const arch = ARCHITECTURES[cfg.architecture];
  const { x: xn, state } = normalizeInput(cfg, x, n);
  const codes = arch.encode(params, cfg, xn, n);
  return { codes, xHat: denormalizeOutput(cfg, arch.decode(params, cfg, codes, n), n, state) };
}
