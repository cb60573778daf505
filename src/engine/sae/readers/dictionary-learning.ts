/**
 * dictionary_learning (saprmarks/dictionary_learning) folders: ae.pt (torch.save of the module's
 * state dict) + config.json ({trainer: {dict_class, activation_dim, dict_size, k, layer, lm_name,
 * submodule_name, ...}, buffer: {...}}). The saved weights already fold any training-time
 * activation normalization (scale_biases(norm_factor)), so they apply to raw activations.
 * Per dict_class (nn.Linear weights are [out, in], hence the transposes):
 *   AutoEncoder         relu(encoder(x - bias)); decoder(f) + bias                → standard
 *   AutoEncoderNew      relu(encoder(x)); decoder(f) (decoder has a bias)         → standard, no x - b_dec
 *   GatedAutoEncoder    gate_bias, mag_bias, r_mag, decoder_bias                  → gated
 *   AutoEncoderTopK     topk_k(relu(encoder(x - b_dec))); decoder(f) + b_dec      → topk
 *   BatchTopKSAE        inference (use_threshold): relu(pre) * (relu(pre) > θ),   → jumprelu, θ for every feature
 *   MatryoshkaBatchTopKSAE  same with W_enc [d, n], W_dec [n, d] parameters       → jumprelu, θ for every feature
 *   JumpReluAutoEncoder relu(pre * (pre > threshold)), no x - b_dec               → jumprelu
 * relu(pre) > θ selects the same features as pre > θ for θ >= 0, and for θ < 0 (a threshold never
 * set, -1) both give relu(pre); Matryoshka keeps every group at inference.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AtlasError } from '../../../errors.js';
import { TorchStateDict } from '../../tensors/torch.js';
import { SaeArchitecture, SaeConfig, SaeSource } from '../types.js';
import { DTYPE_NAMES, optString, positiveInt, readJson, torchReader } from './common.js';
import { ParamMap, mappedSource } from './mapped.js';

export const DICTIONARY_LEARNING_CONFIG = 'config.json';

interface ClassLayout {
  architecture: SaeArchitecture;
  applyBDecToInput: boolean;
  /** The tensor whose shape gives [dSae, dIn] (or [dIn, dSae] when `encoderIsWEnc`). */
  encoder: string;
  encoderIsWEnc?: boolean;
  map: ParamMap;
}

const linear = (bias: string): ParamMap => ({
  W_enc: { tensor: 'encoder.weight', layout: 'T' },
  b_enc: { tensor: 'encoder.bias', layout: 'same' },
  W_dec: { tensor: 'decoder.weight', layout: 'T' },
  b_dec: { tensor: bias, layout: 'same' },
});

const CLASSES: Record<string, ClassLayout> = {
  AutoEncoder: { architecture: 'standard', applyBDecToInput: true, encoder: 'encoder.weight', map: linear('bias') },
  AutoEncoderNew: {
    architecture: 'standard',
    applyBDecToInput: false,
    encoder: 'encoder.weight',
    map: linear('decoder.bias'),
  },
  GatedAutoEncoder: {
    architecture: 'gated',
    applyBDecToInput: true,
    encoder: 'encoder.weight',
    map: {
      W_enc: { tensor: 'encoder.weight', layout: 'T' },
      b_gate: { tensor: 'gate_bias', layout: 'same' },
      b_mag: { tensor: 'mag_bias', layout: 'same' },
      r_mag: { tensor: 'r_mag', layout: 'same' },
      W_dec: { tensor: 'decoder.weight', layout: 'T' },
      b_dec: { tensor: 'decoder_bias', layout: 'same' },
    },
  },
  AutoEncoderTopK: { architecture: 'topk', applyBDecToInput: true, encoder: 'encoder.weight', map: linear('b_dec') },
  BatchTopKSAE: {
    architecture: 'jumprelu',
    applyBDecToInput: true,
    encoder: 'encoder.weight',
    map: { ...linear('b_dec'), threshold: { tensor: 'threshold', layout: 'fill' } },
  },
  MatryoshkaBatchTopKSAE: {
    architecture: 'jumprelu',
    applyBDecToInput: true,
    encoder: 'W_enc',
    encoderIsWEnc: true,
    map: {
      W_enc: { tensor: 'W_enc', layout: 'same' },
      b_enc: { tensor: 'b_enc', layout: 'same' },
      W_dec: { tensor: 'W_dec', layout: 'same' },
      b_dec: { tensor: 'b_dec', layout: 'same' },
      threshold: { tensor: 'threshold', layout: 'fill' },
    },
  },
  JumpReluAutoEncoder: {
    architecture: 'jumprelu',
    applyBDecToInput: false,
    encoder: 'W_enc',
    encoderIsWEnc: true,
    map: {
      W_enc: { tensor: 'W_enc', layout: 'same' },
      b_enc: { tensor: 'b_enc', layout: 'same' },
      W_dec: { tensor: 'W_dec', layout: 'same' },
      b_dec: { tensor: 'b_dec', layout: 'same' },
      threshold: { tensor: 'threshold', layout: 'same' },
    },
  },
};

/** A checkpoint with dictionary_learning's config.json ({trainer: {...}}) beside it. */
export function isDictionaryLearning(ptPath: string): boolean {
  const cfg = join(dirname(ptPath), DICTIONARY_LEARNING_CONFIG);
  if (!existsSync(cfg)) return false;
  const trainer = readJson(cfg).trainer;
  return typeof trainer === 'object' && trainer !== null;
}

/** submodule_name "resid_post_layer_3" (the package's own naming) is blocks.3.hook_resid_post. */
function hookOf(trainer: Record<string, unknown>): string | null {
  const sub = optString(trainer.submodule_name);
  const m = sub ? /^resid_post_layer_(\d+)$/.exec(sub) : null;
  return m ? `blocks.${m[1]}.hook_resid_post` : null;
}

export function openDictionaryLearning(sd: TorchStateDict): SaeSource {
  const cfgPath = join(dirname(sd.path), DICTIONARY_LEARNING_CONFIG);
  const raw = readJson(cfgPath);
  const trainer = (typeof raw.trainer === 'object' && raw.trainer !== null ? raw.trainer : {}) as Record<
    string,
    unknown
  >;
  const dictClass = trainer.dict_class ?? 'AutoEncoder';
  const layout = typeof dictClass === 'string' ? CLASSES[dictClass] : undefined;
  if (!layout) {
    throw new AtlasError(
      'UNSUPPORTED',
      `${cfgPath}: dict_class ${JSON.stringify(dictClass)} is not supported; supported are ` +
        `${Object.keys(CLASSES).join(', ')}.`,
    );
  }
  const r = torchReader(sd);
  if (!r.has(layout.encoder))
    throw new AtlasError('BAD_FILE', `${sd.path} is missing tensor "${layout.encoder}", which a ${dictClass} has.`);
  const encShape = r.shape(layout.encoder);
  if (encShape.length !== 2)
    throw new AtlasError(
      'BAD_FILE',
      `${sd.path}: tensor "${layout.encoder}" has shape [${encShape.join(', ')}] but a 2-D weight was expected.`,
    );
  const [dIn, dSae] = layout.encoderIsWEnc ? encShape : [encShape[1], encShape[0]];
  for (const [key, have] of [
    ['activation_dim', dIn],
    ['dict_size', dSae],
  ] as const) {
    if (trainer[key] !== undefined && trainer[key] !== have) {
      throw new AtlasError(
        'BAD_FILE',
        `${cfgPath} declares ${key} ${JSON.stringify(trainer[key])} but "${layout.encoder}" has shape ` +
          `[${encShape.join(', ')}].`,
      );
    }
  }
  let k: number | null = null;
  if (layout.architecture === 'topk') {
    const fromFile = sd.has('k') ? r.readF32('k')[0] : undefined;
    k = positiveInt(trainer.k ?? fromFile, 'trainer.k', cfgPath);
    if (fromFile !== undefined && fromFile !== k)
      throw new AtlasError('BAD_FILE', `${cfgPath} says k = ${k} but ${sd.path} holds k = ${fromFile}.`);
    if (k > dSae) throw new AtlasError('BAD_FILE', `${cfgPath}: k = ${k} exceeds dict_size ${dSae}.`);
  }
  const config: SaeConfig = {
    architecture: layout.architecture,
    dIn,
    dSae,
    k,
    hookName: hookOf(trainer),
    modelName: optString(trainer.lm_name),
    prependBos: null,
    applyBDecToInput: layout.applyBDecToInput,
    normalization: { kind: 'none', scalingFactor: null },
    sourceFormat: 'dictionary_learning',
    dtype: DTYPE_NAMES[r.dtype(layout.encoder)] ?? r.dtype(layout.encoder),
    extra: raw,
  };
  return mappedSource(r, config, layout.map);
}
