/**
 * Llama Scope (OpenMOSS Language-Model-SAEs) folders: hyperparams.json + checkpoints/final.safetensors
 * (or final.safetensors beside it, as `atlas import` keeps it). Tensors: encoder.weight [d_sae, d_model],
 * encoder.bias, decoder.weight [d_model, d_sae], decoder.bias. hyperparams: d_model, d_sae,
 * act_fn "jumprelu" with jump_relu_threshold θ (one value for every feature; the release's top_k is
 * a training-time setting), norm_activation "dataset-wise" with dataset_average_activation_norm {in, out},
 * apply_decoder_bias_to_pre_encoder, sparsity_include_decoder_norm, hook_point_in/out.
 * Published model: x' = x·√d_model / norm_in; pre = x' encoder.weightᵀ + encoder.bias;
 * f = pre·[pre > θ]; x_hat = (f decoder.weightᵀ + decoder.bias)·norm_out / √d_model. The atlas runs
 * that as jumprelu with expected_average_only_in normalization by s = √d_model / norm_in (and
 * requires norm_out = norm_in, as every SAE of the release has, reading and writing one hook).
 * With sparsity_include_decoder_norm the gate is pre·‖W_dec_j‖ > θ, i.e. threshold_j = θ / ‖W_dec_j‖.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AtlasError } from '../../../errors.js';
import { SaeConfig, SaeSource } from '../types.js';
import { DTYPE_NAMES, optString, positiveInt, readJson, safetensorsReader } from './common.js';
import { mappedSource } from './mapped.js';

export const LLAMASCOPE_CONFIG = 'hyperparams.json';

const FLT_MAX = 3.4028234663852886e38;

export function llamaScopeWeights(dir: string): string {
  const nested = join(dir, 'checkpoints', 'final.safetensors');
  return existsSync(nested) ? nested : join(dir, 'final.safetensors');
}

function positiveNumber(v: unknown, what: string, file: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new AtlasError('BAD_FILE', `${file}: ${what} must be a positive number, got ${JSON.stringify(v)}.`);
  return v;
}

export function openLlamaScope(dir: string): SaeSource {
  const cfgPath = join(dir, LLAMASCOPE_CONFIG);
  const hp = readJson(cfgPath);
  const hookIn = optString(hp.hook_point_in);
  const hookOut = optString(hp.hook_point_out) ?? hookIn;
  if (hookIn !== hookOut) {
    throw new AtlasError(
      'UNSUPPORTED',
      `${cfgPath}: hook_point_in ${hookIn} differs from hook_point_out ${hookOut}; this is a transcoder, and only ` +
        `autoencoders are read here.`,
    );
  }
  const dIn = positiveInt(hp.d_model, 'd_model', cfgPath);
  const dSae = positiveInt(hp.d_sae, 'd_sae', cfgPath);
  const act = hp.act_fn ?? 'jumprelu';
  if (act !== 'jumprelu') {
    throw new AtlasError(
      'UNSUPPORTED',
      `${cfgPath}: act_fn ${JSON.stringify(act)} is not supported; Llama Scope dictionaries are read as jumprelu.`,
    );
  }
  const decoderNorm = hp.sparsity_include_decoder_norm === true;
  const threshold = hp.jump_relu_threshold;
  if (typeof threshold !== 'number' || !Number.isFinite(threshold)) {
    throw new AtlasError(
      'BAD_FILE',
      `${cfgPath}: act_fn is jumprelu but jump_relu_threshold is ${JSON.stringify(threshold)}.`,
    );
  }
  const normKind = hp.norm_activation ?? 'dataset-wise';
  if (normKind !== 'dataset-wise') {
    throw new AtlasError(
      'UNSUPPORTED',
      `${cfgPath}: norm_activation ${JSON.stringify(normKind)} is not supported; Llama Scope dictionaries use ` +
        `dataset-wise.`,
    );
  }
  const norms = (
    typeof hp.dataset_average_activation_norm === 'object' && hp.dataset_average_activation_norm !== null
      ? hp.dataset_average_activation_norm
      : {}
  ) as Record<string, unknown>;
  const normIn = positiveNumber(norms.in, 'dataset_average_activation_norm.in', cfgPath);
  const normOut =
    norms.out === undefined ? normIn : positiveNumber(norms.out, 'dataset_average_activation_norm.out', cfgPath);
  if (Math.abs(normOut - normIn) > 1e-6 * normIn) {
    throw new AtlasError(
      'UNSUPPORTED',
      `${cfgPath}: dataset_average_activation_norm.in (${normIn}) and .out (${normOut}) differ; one norm per ` +
        `dictionary is supported.`,
    );
  }
  const scalingFactor = Math.sqrt(dIn) / normIn;
  const applyBDec = hp.apply_decoder_bias_to_pre_encoder ?? false;
  if (typeof applyBDec !== 'boolean')
    throw new AtlasError('BAD_FILE', `${cfgPath}: apply_decoder_bias_to_pre_encoder must be true or false.`);

  const r = safetensorsReader(llamaScopeWeights(dir));
  try {
    const config: SaeConfig = {
      architecture: 'jumprelu',
      dIn,
      dSae,
      k: null,
      hookName: hookIn,
      modelName: null,
      prependBos: null,
      applyBDecToInput: applyBDec,
      normalization: { kind: 'expected_average_only_in', scalingFactor },
      sourceFormat: 'llamascope',
      dtype: r.has('decoder.weight')
        ? (DTYPE_NAMES[r.dtype('decoder.weight')] ?? r.dtype('decoder.weight'))
        : 'float32',
      extra: hp,
    };
    const source = mappedSource(r, config, {
      W_enc: { tensor: 'encoder.weight', layout: 'T' },
      b_enc: { tensor: 'encoder.bias', layout: 'same' },
      W_dec: { tensor: 'decoder.weight', layout: 'T' },
      b_dec: { tensor: 'decoder.bias', layout: 'same' },
    });
    const theta = threshold;
    return {
      ...source,
      loadParams: () => {
        const p = source.loadParams();
        const t = new Float32Array(dSae).fill(theta);
        if (decoderNorm) {
          for (let j = 0; j < dSae; j++) {
            let ss = 0;
            for (let i = 0; i < dIn; i++) ss += p.W_dec[j * dIn + i] ** 2;
            // A zero decoder row never passes the gate; the largest float32 says so and stays finite.
            t[j] = ss > 0 ? theta / Math.sqrt(ss) : FLT_MAX;
          }
        }
        return { ...p, threshold: t };
      },
    };
  } catch (e) {
    r.close();
    throw e;
  }
}
