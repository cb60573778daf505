/** Shapes of an SAE dictionary once read: its configuration, its parameters, and a streaming source. */

import type { SaeArchitecture } from './architectures/index.js';

export { SAE_ARCHITECTURES, type SaeArchitecture } from './architectures/index.js';

export type NormalizationKind = 'none' | 'expected_average_only_in' | 'constant_norm_rescale' | 'layer_norm';
export const NORMALIZATION_KINDS: readonly NormalizationKind[] = [
  'none',
  'expected_average_only_in',
  'constant_norm_rescale',
  'layer_norm',
];

export type SaeSourceFormat =
  'saelens' | 'sparsify' | 'gemmascope' | 'openai' | 'dictionary_learning' | 'goodfire' | 'llamascope';

/**
 * A transcoder reads one hook and reconstructs another (SAELens transcoder / skip_transcoder /
 * jumprelu_transcoder, sparsify `transcode`, Gemma Scope transcoders). Its input never has b_dec
 * subtracted (b_dec belongs to the output) and is not normalized; the output is as wide as the input.
 */
export interface TranscoderSpec {
  /** The hook whose activations the decoder reconstructs, when the files name it. */
  hookNameOut: string | null;
  /** Skip transcoders add W_skip · x (the raw input) to the reconstruction. */
  skip: boolean;
}

export interface SaeConfig {
  architecture: SaeArchitecture;
  dIn: number;
  dSae: number;
  /** Active features per vector for topk; null otherwise. */
  k: number | null;
  hookName: string | null;
  modelName: string | null;
  /** Whether the dictionary was trained on sequences starting with BOS, when its files say; null when they do not. */
  prependBos: boolean | null;
  /** SAELens semantics: subtract b_dec from the (normalized) input before the encoder. */
  applyBDecToInput: boolean;
  normalization: {
    kind: NormalizationKind;
    /**
     * expected_average_only_in: inputs are multiplied by this (SAELens `norm_scaling_factor`); null = identity, as
     * SAELens does without one.
     */
    scalingFactor: number | null;
  };
  sourceFormat: SaeSourceFormat;
  /** Element type of the stored weights: float32, float16 or bfloat16. */
  dtype: string;
  /** Present for transcoders only. */
  transcoder?: TranscoderSpec;
  /** The source's configuration as read (cfg.json object, or {} for Gemma Scope), for provenance. */
  extra: Record<string, unknown>;
}

/** All float32, row-major. gated has b_gate/b_mag/r_mag and no b_enc; jumprelu adds threshold. */
export interface SaeParams {
  /** [dIn, dSae] */
  W_enc: Float32Array;
  /** [dSae]; absent for gated. */
  b_enc?: Float32Array;
  /** [dSae, dIn] */
  W_dec: Float32Array;
  /** [dIn] */
  b_dec: Float32Array;
  /** [dSae], jumprelu. */
  threshold?: Float32Array;
  /** [dSae], gated. */
  r_mag?: Float32Array;
  b_mag?: Float32Array;
  b_gate?: Float32Array;
  /** [dIn (output), dIn (input)], skip transcoders: x_hat += x W_skip^T. */
  W_skip?: Float32Array;
}

export interface DecoderBatch {
  /** Index of the first feature in `rows`. */
  start: number;
  /** [n, dIn] decoder rows of features start..start+n. */
  rows: Float32Array;
}

export interface SaeSource {
  config: SaeConfig;
  /** Decoder rows read from disk batch by batch, each checked for NaN/Inf. */
  decoderRows(batchRows: number): Iterable<DecoderBatch>;
  /** Every parameter as float32, shapes and values checked. */
  loadParams(): SaeParams;
  /**
   * log10 firing frequency per feature ([dSae]) when the source ships it; -Infinity marks a feature never seen firing.
   */
  logSparsity(): Float32Array | null;
  /**
   * Fraction of tokens each feature fires on ([dSae], in [0, 1]) as the publisher measured it, when
   * the source ships it; it stands as the features' density until `atlas build` measures one.
   */
  density(): Float32Array | null;
  close(): void;
}
