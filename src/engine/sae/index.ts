/** SAE dictionaries: reading, per-architecture encode/decode in TypeScript, ONNX encoder, export. */
import { SaeConfig, SaeParams } from './types.js';
import { normalizeInput, denormalizeOutput } from './normalization.js';
import { ARCHITECTURES } from './architectures/index.js';
import { addSkip } from './architectures/linear.js';

export * from './types.js';
export { openSae } from './open.js';
export { SaeEncoder, narrowEncoding, type EncodeOptions, type SaeEncoderOptions, type SaeEncoding } from './encoder.js';
export { reconstructionMetrics, type ReconstructionMetrics } from './metrics.js';
export { writeSaelens } from './export.js';
export { normalizeInput, denormalizeOutput } from './normalization.js';

export { ARCHITECTURES } from './architectures/index.js';

/**
 * Dense codes [n, dSae] and reconstruction [n, dIn] in x's scale (for a transcoder: of its output
 * hook, plus W_skip · x for skip transcoders), computed in TypeScript.
 */
export function forward(
  params: SaeParams,
  cfg: SaeConfig,
  x: Float32Array,
  n: number,
): { codes: Float32Array; xHat: Float32Array } {
  const arch = ARCHITECTURES[cfg.architecture];
  const { x: xn, state } = normalizeInput(cfg, x, n);
  const codes = arch.encode(params, cfg, xn, n);
  const xHat = denormalizeOutput(cfg, arch.decode(params, cfg, codes, n), n, state);
  return { codes, xHat: cfg.transcoder?.skip ? addSkip(params, x, xHat, n, cfg.dIn) : xHat };
}
