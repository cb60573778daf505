/**
 * SAELens folders: cfg.json + sae_weights.safetensors (+ optional sparsity.safetensors).
 * Understands the new layout (architecture at top level, metadata nested under `metadata` or
 * `meta`) and the old one (hook_name/hook_point and model_name at top level, activation named by
 * `activation_fn_str` with `activation_fn_kwargs.k`, boolean normalize_activations). batchtopk and
 * matryoshka_batchtopk files read as the JumpReLU SAELens makes of them for inference.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AtlasError } from '../../../errors.js';
import { ARCHITECTURES } from '../architectures/index.js';
import {
  NORMALIZATION_KINDS, NormalizationKind, SAE_ARCHITECTURES, SaeArchitecture, SaeConfig, SaeParams, SaeSource,
} from '../types.js';
import {
  DTYPE_NAMES, TensorReader, assertFinite, optString, positiveInt, readJson, safetensorsReader,
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

function obj(v: unknown): Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
}

/** Interprets a SAELens cfg.json; shapes come from the weights file when d_in/d_sae are absent. */
export function parseSaelensConfig(raw: Json, cfgPath: string, weights: TensorReader): SaeConfig {
  const meta = { ...obj(raw.meta), ...obj(raw.metadata) };
  const archRaw = raw.architecture ?? meta.architecture ?? 'standard';
  const activation = raw.activation_fn_str ?? raw.activation_fn ?? null;
  let architecture: SaeArchitecture;
  if (archRaw === 'standard' && activation === 'topk') architecture = 'topk';
  else if (typeof archRaw === 'string' && JUMPRELU_AT_INFERENCE.includes(archRaw)) architecture = 'jumprelu';
  else if (typeof archRaw === 'string' && (SAE_ARCHITECTURES as readonly string[]).includes(archRaw)) architecture = archRaw as SaeArchitecture;
  else {
    throw new AtlasError('UNSUPPORTED', `${cfgPath}: architecture ${JSON.stringify(archRaw)} is not supported; supported architectures are ${SAE_ARCHITECTURES.join(', ')}.`);
  }
  if (architecture === 'standard' && activation !== null && activation !== 'relu') {
    throw new AtlasError('UNSUPPORTED', `${cfgPath}: activation function ${JSON.stringify(activation)} is not supported for the standard architecture (only relu and topk).`);
  }
  if (raw.finetuning_scaling_factor === true) {
    throw new AtlasError('UNSUPPORTED', `${cfgPath}: finetuning_scaling_factor is set; such dictionaries are not supported.`);
  }
  if (raw.rescale_acts_by_decoder_norm === true) {
    throw new AtlasError('UNSUPPORTED', `${cfgPath}: rescale_acts_by_decoder_norm is true; fold the decoder norms into the encoder first (SAELens fold_W_dec_norm).`);
  }

  const dIn = raw.d_in !== undefined ? positiveInt(raw.d_in, 'd_in', cfgPath) : shapeDim(weights, 'W_dec', 1, cfgPath, 'd_in');
  const dSae = raw.d_sae !== undefined ? positiveInt(raw.d_sae, 'd_sae', cfgPath) : shapeDim(weights, 'W_dec', 0, cfgPath, 'd_sae');

  let k: number | null = null;
  if (architecture === 'topk') {
    k = positiveInt(raw.k ?? obj(raw.activation_fn_kwargs).k, 'k (the topk activation count)', cfgPath);
    if (k > dSae) throw new AtlasError('BAD_FILE', `${cfgPath}: k = ${k} exceeds d_sae = ${dSae}.`);
  }

  let kind: unknown = raw.normalize_activations ?? 'none';
  // Old configs used a boolean; SAELens maps true to expected_average_only_in.
  if (typeof kind === 'boolean') kind = kind ? 'expected_average_only_in' : 'none';
  if (typeof kind !== 'string' || !(NORMALIZATION_KINDS as readonly string[]).includes(kind)) {
    throw new AtlasError('UNSUPPORTED', `${cfgPath}: normalize_activations ${JSON.stringify(kind)} is not supported; supported are ${NORMALIZATION_KINDS.join(', ')}.`);
  }
  const sf = raw.norm_scaling_factor;
  if (sf !== undefined && sf !== null && (typeof sf !== 'number' || !Number.isFinite(sf) || sf <= 0)) {
    throw new AtlasError('BAD_FILE', `${cfgPath}: norm_scaling_factor must be a positive number, got ${JSON.stringify(sf)}.`);
  }

  const applyRaw = raw.apply_b_dec_to_input ?? true;
  if (typeof applyRaw !== 'boolean') throw new AtlasError('BAD_FILE', `${cfgPath}: apply_b_dec_to_input must be true or false, got ${JSON.stringify(applyRaw)}.`);

  return {
    architecture,
    dIn,
    dSae,
    k,
    hookName: optString(meta.hook_name) ?? optString(raw.hook_name) ?? optString(raw.hook_point),
    modelName: optString(meta.model_name) ?? optString(raw.model_name),
    // New layouts keep it in metadata, old ones at top level.
    prependBos: optBool(meta.prepend_bos) ?? optBool(raw.prepend_bos),
    applyBDecToInput: applyRaw,
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
  if (!r.has(name)) throw new AtlasError('BAD_FILE', `${cfgPath} has no ${what} and ${r.path} is missing tensor "${name}".`);
  const s = r.shape(name);
  if (s.length !== 2) throw new AtlasError('BAD_FILE', `${r.path}: tensor "${name}" has shape [${s.join(', ')}] but a 2-D [d_sae, d_in] tensor was expected.`);
  return s[axis];
}

/** Tensor names and shapes the architecture needs in a SAELens weights file. */
export function saelensTensorShapes(cfg: SaeConfig): Record<string, number[]> {
  return ARCHITECTURES[cfg.architecture].paramShapes(cfg.dIn, cfg.dSae);
}

export function openSaelens(dir: string): SaeSource {
  const cfgPath = join(dir, SAELENS_CFG);
  const raw = readJson(cfgPath);
  const weights = safetensorsReader(join(dir, SAELENS_WEIGHTS));
  try {
    const config = parseSaelensConfig(raw, cfgPath, weights);
    const map: ParamMap = {};
    for (const name of Object.keys(saelensTensorShapes(config)) as (keyof SaeParams)[]) map[name] = { tensor: name, layout: 'same' };
    if (config.architecture === 'jumprelu' && !weights.has('threshold') && weights.has('topk_threshold')) {
      map.threshold = { tensor: 'topk_threshold', layout: 'fill' };
    }
    const sparsityPath = join(dir, SAELENS_SPARSITY);
    const logSparsity = (): Float32Array | null => (existsSync(sparsityPath) ? readSparsity(sparsityPath, config.dSae) : null);
    return mappedSource(weights, config, map, { logSparsity, density: () => logSparsity()?.map((v) => 10 ** v) ?? null });
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
