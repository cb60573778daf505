/**
 * SAELens folders: cfg.json + sae_weights.safetensors (+ optional sparsity.safetensors).
 * Understands the new layout (architecture at top level, metadata nested under `metadata` or
 * `meta`) and the old one (hook_name/hook_point and model_name at top level, activation named by
 * `activation_fn_str` with `activation_fn_kwargs.k`, boolean normalize_activations). batchtopk and
 * matryoshka_batchtopk files read as the JumpReLU SAELens makes of them for inference. Transcoders
 * (`transcoder`, `skip_transcoder`, `jumprelu_transcoder`: hook_name in, hook_name_out out, W_skip for
 * skip) encode x W_enc + b_enc without b_dec subtraction and decode f W_dec + b_dec (+ x W_skip^T).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AtlasError } from '../../../errors.js';
import { ARCHITECTURES } from '../architectures/index.js';
import {
  NORMALIZATION_KINDS,
  NormalizationKind,
  SAE_ARCHITECTURES,
  SaeArchitecture,
  SaeConfig,
  SaeParams,
  SaeSource,
} from '../types.js';
import {
  DTYPE_NAMES,
  TensorReader,
  assertFinite,
  optString,
  positiveInt,
  readJson,
  safetensorsReader,
} from './common.js';
import { ParamMap, mappedSource } from './mapped.js';

export const SAELENS_CFG = 'cfg.json';
export const SAELENS_WEIGHTS = 'sae_weights.safetensors';
export const SAELENS_SPARSITY = 'sparsity.safetensors';

type Json = Record<string, unknown>;

/**
 * SAELens turns BatchTopK and Matryoshka BatchTopK dictionaries into JumpReLU for inference, every
 * feature gated by the learned global threshold; a file still named so keeps it as `topk_threshold`.
 */
const JUMPRELU_AT_INFERENCE = ['batchtopk', 'matryoshka_batchtopk'];

/** SAELens transcoder architectures: the activation they use and whether they have a skip connection. */
const TRANSCODERS: Record<string, { architecture: SaeArchitecture; skip: boolean }> = {
  transcoder: { architecture: 'standard', skip: false },
  skip_transcoder: { architecture: 'standard', skip: true },
  jumprelu_transcoder: { architecture: 'jumprelu', skip: false },
};

function obj(v: unknown): Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
}

/** Interprets a SAELens cfg.json; shapes come from the weights file when d_in/d_sae are absent. */
export function parseSaelensConfig(raw: Json, cfgPath: string, weights: TensorReader): SaeConfig {
  const meta = { ...obj(raw.meta), ...obj(raw.metadata) };
  const archRaw = raw.architecture ?? meta.architecture ?? 'standard';
  const activation = raw.activation_fn_str ?? raw.activation_fn ?? null;
  let architecture: SaeArchitecture;
  const transcoder = typeof archRaw === 'string' && Object.hasOwn(TRANSCODERS, archRaw) ? TRANSCODERS[archRaw] : null;
  if (transcoder) architecture = transcoder.architecture;
  else if (archRaw === 'standard' && activation === 'topk') architecture = 'topk';
  else if (typeof archRaw === 'string' && JUMPRELU_AT_INFERENCE.includes(archRaw)) architecture = 'jumprelu';
  else if (typeof archRaw === 'string' && (SAE_ARCHITECTURES as readonly string[]).includes(archRaw))
    architecture = archRaw as SaeArchitecture;
  else {
    throw new AtlasError(
      'UNSUPPORTED',
      `${cfgPath}: architecture ${JSON.stringify(archRaw)} is not supported; supported architectures are ` +
        `${SAE_ARCHITECTURES.join(', ')} and the transcoders ${Object.keys(TRANSCODERS).join(', ')}.`,
    );
  }
  if (architecture === 'standard' && activation !== null && activation !== 'relu') {
    throw new AtlasError(
      'UNSUPPORTED',
      `${cfgPath}: activation function ${JSON.stringify(activation)} is not supported for the standard architecture ` +
        `(only relu and topk).`,
    );
  }
  if (raw.finetuning_scaling_factor === true) {
    throw new AtlasError(
      'UNSUPPORTED',
      `${cfgPath}: finetuning_scaling_factor is set; such dictionaries are not supported.`,
    );
  }
  if (raw.rescale_acts_by_decoder_norm === true) {
    throw new AtlasError(
      'UNSUPPORTED',
      `${cfgPath}: rescale_acts_by_decoder_norm is true; fold the decoder norms into the encoder first (SAELens ` +
        `fold_W_dec_norm).`,
    );
  }

  const dIn =
    raw.d_in !== undefined ? positiveInt(raw.d_in, 'd_in', cfgPath) : shapeDim(weights, 'W_dec', 1, cfgPath, 'd_in');
  const dSae =
    raw.d_sae !== undefined
      ? positiveInt(raw.d_sae, 'd_sae', cfgPath)
      : shapeDim(weights, 'W_dec', 0, cfgPath, 'd_sae');

  let k: number | null = null;
  if (architecture === 'topk') {
    k = positiveInt(raw.k ?? obj(raw.activation_fn_kwargs).k, 'k (the topk activation count)', cfgPath);
    if (k > dSae) throw new AtlasError('BAD_FILE', `${cfgPath}: k = ${k} exceeds d_sae = ${dSae}.`);
  }

  let kind: unknown = raw.normalize_activations ?? 'none';
  // Old configs used a boolean; SAELens maps true to expected_average_only_in.
  if (typeof kind === 'boolean') kind = kind ? 'expected_average_only_in' : 'none';
  if (typeof kind !== 'string' || !(NORMALIZATION_KINDS as readonly string[]).includes(kind)) {
    throw new AtlasError(
      'UNSUPPORTED',
      `${cfgPath}: normalize_activations ${JSON.stringify(kind)} is not supported; supported are ` +
        `${NORMALIZATION_KINDS.join(', ')}.`,
    );
  }
  const sf = raw.norm_scaling_factor;
  if (sf !== undefined && sf !== null && (typeof sf !== 'number' || !Number.isFinite(sf) || sf <= 0)) {
    throw new AtlasError(
      'BAD_FILE',
      `${cfgPath}: norm_scaling_factor must be a positive number, got ${JSON.stringify(sf)}.`,
    );
  }

  const applyRaw = raw.apply_b_dec_to_input ?? true;
  if (typeof applyRaw !== 'boolean')
    throw new AtlasError(
      'BAD_FILE',
      `${cfgPath}: apply_b_dec_to_input must be true or false, got ${JSON.stringify(applyRaw)}.`,
    );

  if (transcoder) {
    const dOut = raw.d_out ?? dIn;
    if (dOut !== dIn) {
      throw new AtlasError(
        'UNSUPPORTED',
        `${cfgPath}: this transcoder reconstructs vectors of width ${JSON.stringify(dOut)} from width ${dIn}; only ` +
          `transcoders whose output is as wide as their input are supported.`,
      );
    }
    if (kind !== 'none') {
      throw new AtlasError(
        'UNSUPPORTED',
        `${cfgPath}: normalize_activations ${JSON.stringify(kind)} on a transcoder is not supported (SAELens ` +
          `normalizes only its input).`,
      );
    }
  }

  return {
    architecture,
    dIn,
    dSae,
    k,
    hookName: optString(meta.hook_name) ?? optString(raw.hook_name) ?? optString(raw.hook_point),
    modelName: optString(meta.model_name) ?? optString(raw.model_name),
    // New layouts keep it in metadata, old ones at top level.
    prependBos: optBool(meta.prepend_bos) ?? optBool(raw.prepend_bos),
    // A transcoder's b_dec lives in the output space, so SAELens never subtracts it from the input.
    applyBDecToInput: transcoder ? false : applyRaw,
    ...(transcoder && {
      transcoder: { hookNameOut: optString(meta.hook_name_out) ?? optString(raw.hook_name_out), skip: transcoder.skip },
    }),
    normalization: {
      kind: kind as NormalizationKind,
      scalingFactor: kind === 'expected_average_only_in' && typeof sf === 'number' ? sf : null,
    },
    sourceFormat: 'saelens',
    dtype: DTYPE_NAMES[weights.dtype('W_dec')] ?? weights.dtype('W_dec'),
    extra: raw,
  };
}

function optBool(v: unknown): boolean | null {
  return typeof v === 'boolean' ? v : null;
}

function shapeDim(r: TensorReader, name: string, axis: number, cfgPath: string, what: string): number {
  if (!r.has(name))
    throw new AtlasError('BAD_FILE', `${cfgPath} has no ${what} and ${r.path} is missing tensor "${name}".`);
  const s = r.shape(name);
  if (s.length !== 2)
    throw new AtlasError(
      'BAD_FILE',
      `${r.path}: tensor "${name}" has shape [${s.join(', ')}] but a 2-D [d_sae, d_in] tensor was expected.`,
    );
  return s[axis];
}

/** Tensor names and shapes the architecture needs in a SAELens weights file. */
export function saelensTensorShapes(cfg: SaeConfig): Record<string, number[]> {
  const shapes = ARCHITECTURES[cfg.architecture].paramShapes(cfg.dIn, cfg.dSae);
  return cfg.transcoder?.skip ? { ...shapes, W_skip: [cfg.dIn, cfg.dIn] } : shapes;
}

/** The SAELens architecture name of a config (transcoders have their own). */
export function saelensArchitectureName(cfg: SaeConfig): string {
  if (!cfg.transcoder) return cfg.architecture;
  const name = Object.entries(TRANSCODERS).find(
    ([, t]) => t.architecture === cfg.architecture && t.skip === cfg.transcoder!.skip,
  )?.[0];
  if (!name)
    throw new AtlasError(
      'UNSUPPORTED',
      `A ${cfg.architecture} transcoder${cfg.transcoder.skip ? ' with a skip connection' : ''} has no SAELens ` +
        `architecture name to export as.`,
    );
  return name;
}

export function openSaelens(dir: string): SaeSource {
  const cfgPath = join(dir, SAELENS_CFG);
  const raw = readJson(cfgPath);
  const weights = safetensorsReader(join(dir, SAELENS_WEIGHTS));
  try {
    const config = parseSaelensConfig(raw, cfgPath, weights);
    const map: ParamMap = {};
    for (const name of Object.keys(saelensTensorShapes(config)) as (keyof SaeParams)[])
      map[name] = { tensor: name, layout: 'same' };
    if (config.architecture === 'jumprelu' && !weights.has('threshold') && weights.has('topk_threshold')) {
      map.threshold = { tensor: 'topk_threshold', layout: 'fill' };
    }
    const sparsityPath = join(dir, SAELENS_SPARSITY);
    const logSparsity = (): Float32Array | null =>
      existsSync(sparsityPath) ? readSparsity(sparsityPath, config.dSae) : null;
    return mappedSource(weights, config, map, {
      logSparsity,
      density: () => logSparsity()?.map((v) => 10 ** v) ?? null,
    });
  } catch (e) {
    weights.close();
    throw e;
  }
}

function readSparsity(path: string, dSae: number): Float32Array {
  const r = safetensorsReader(path);
  try {
    const name = ['sparsity', 'log_feature_sparsity'].find((n) => r.has(n));
    if (!name) throw new AtlasError('BAD_FILE', `${path} has no tensor "sparsity" (log10 feature firing frequency).`);
    const v = r.readF32(name, [dSae]);
    // -Infinity is log10(0): a feature never seen firing; NaN and +Infinity are corrupt.
    for (let i = 0; i < v.length; i++) {
      if (Number.isNaN(v[i]) || v[i] === Infinity) assertFinite(v.subarray(i, i + 1), path, name, i);
    }
    return v;
  } finally {
    r.close();
  }
}
