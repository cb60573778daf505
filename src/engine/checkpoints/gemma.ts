/**
 * Gemma 2 and Gemma 3 (text) Hugging Face configs and tensor names, for checkpoints/huggingface.ts.
 *
 * Config semantics follow transformers' Gemma2Config / Gemma3TextConfig, defaults included (Gemma 3's
 * multimodal configs give only a few text_config fields). Every field is either honoured, known to
 * have no effect on an inference forward pass (ids, dropout, cache and dtype hints), or refused with
 * UNSUPPORTED naming it, so a checkpoint whose math the graph does not implement never runs silently.
 *
 *   sliding layers  `layer_types` ("sliding_attention" | "full_attention"), else gemma2: even layers
 *                   (0, 2, …); gemma3: layer i unless (i + 1) % sliding_window_pattern == 0
 *   rope            gemma2: rope_theta on every layer; gemma3: rope_local_base_freq on sliding layers,
 *                   rope_theta with rope_scaling (default | linear) on full layers; `rope_parameters`
 *                   (transformers ≥ 5) per layer type or for all
 *   scale           query_pre_attn_scalar^-½; soft-caps attn_logit_softcapping, final_logit_softcapping
 *
 * Tensor mapping (nn.Linear [out, in] transposed to [in, out]; TransformerLens names):
 *   embed_tokens → embed.W_E, input_layernorm → ln1.w, q/k/v/o_proj → attn.W_Q/W_K/W_V/W_O,
 *   q_norm/k_norm → attn.q_norm.w/k_norm.w (gemma3), post_attention_layernorm → ln1_post.w,
 *   pre_feedforward_layernorm → ln2.w, post_feedforward_layernorm → ln2_post.w,
 *   gate_proj/up_proj/down_proj → mlp.W_gate/W_in/W_out, norm → ln_final.w, lm_head → unembed.W_U
 *   (untied only). Prefix `model.` (gemma2, gemma3_text), `language_model.model.` or
 *   `model.language_model.` (gemma3 multimodal; the vision tower is ignored), or none.
 */
import { AtlasError } from '../../errors.js';
import type { GemmaOptions, TransformerConfig } from '../model/types.js';
import { fromFloat32, toFloat32, type DType } from '../tensors/dtype.js';

export const GEMMA_MODEL_TYPES = ['gemma2', 'gemma3_text', 'gemma3'] as const;

export function isGemmaModelType(t: unknown): boolean {
  return (GEMMA_MODEL_TYPES as readonly unknown[]).includes(t);
}

/** Fields with no effect on an inference forward pass. */
const INERT = new Set([
  'architectures',
  'attention_dropout',
  'bos_token_id',
  'eos_token_id',
  'pad_token_id',
  'cache_implementation',
  'initializer_range',
  'torch_dtype',
  'dtype',
  'transformers_version',
  'use_cache',
  'model_type',
  '_name_or_path',
  // Older Gemma 2 configs repeat hidden_activation as hidden_act; the modelling code reads hidden_activation only.
  'hidden_act',
  'output_hidden_states',
  'output_attentions',
  'return_dict',
  'attn_implementation',
  'max_length',
]);

/** What the text model reads, with transformers' defaults. */
const GEMMA2_DEFAULTS: Record<string, unknown> = {
  vocab_size: 256000,
  hidden_size: 2304,
  intermediate_size: 9216,
  num_hidden_layers: 26,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 256,
  hidden_activation: 'gelu_pytorch_tanh',
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  rope_theta: 10000,
  attention_bias: false,
  query_pre_attn_scalar: 256,
  sliding_window: 4096,
  final_logit_softcapping: 30.0,
  attn_logit_softcapping: 50.0,
  layer_types: null,
  rope_scaling: null,
  rope_parameters: null,
};
const GEMMA3_DEFAULTS: Record<string, unknown> = {
  ...GEMMA2_DEFAULTS,
  vocab_size: 262208,
  max_position_embeddings: 131072,
  rope_theta: 1_000_000,
  final_logit_softcapping: null,
  attn_logit_softcapping: null,
  rope_local_base_freq: 10000,
  sliding_window_pattern: 6,
  _sliding_window_pattern: null,
  use_bidirectional_attention: false,
};
/** Top-level fields of a multimodal gemma3 config besides text_config. */
const GEMMA3_WRAPPER = new Set([
  'text_config',
  'vision_config',
  'boi_token_index',
  'eoi_token_index',
  'image_token_index',
  'mm_tokens_per_image',
  'boi_token_id',
  'eoi_token_id',
  'image_token_id',
  'tie_word_embeddings',
]);

function roundTo(value: number, dtype: DType): number {
  if (dtype !== 'F16' && dtype !== 'BF16') return Math.fround(value);
  return toFloat32(fromFloat32(Float32Array.of(value), dtype), dtype)[0];
}

/** HF multiplies embeddings by √d_model cast to the hidden states' dtype (55.4256 becomes 55.5 in bf16). */
export function gemmaEmbedScale(dModel: number, dtype: DType): number {
  return roundTo(Math.sqrt(dModel), dtype);
}

const DTYPE_NAMES: Record<string, DType> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** Reads a gemma2, gemma3_text or gemma3 (multimodal, its text_config) config.json object. */
export function readGemmaConfig(top: Record<string, unknown>, path: string): TransformerConfig {
  const family = top.model_type === 'gemma2' ? 'gemma2' : 'gemma3';
  let raw = top;
  let where = '';
  if (top.model_type === 'gemma3') {
    for (const key of Object.keys(top)) {
      if (!GEMMA3_WRAPPER.has(key) && !INERT.has(key))
        throw new AtlasError('UNSUPPORTED', `${path}: field "${key}" of a gemma3 config is not supported.`);
    }
    const text = top.text_config;
    if (!text || typeof text !== 'object' || Array.isArray(text))
      throw new AtlasError('BAD_FILE', `${path}: a gemma3 config needs a "text_config" object.`);
    raw = text as Record<string, unknown>;
    where = 'text_config.';
    if (raw.model_type !== undefined && raw.model_type !== 'gemma3_text') {
      throw new AtlasError(
        'UNSUPPORTED',
        `${path}: text_config.model_type ${JSON.stringify(raw.model_type)} is not supported (expected gemma3_text).`,
      );
    }
  }
  const defaults = family === 'gemma2' ? GEMMA2_DEFAULTS : GEMMA3_DEFAULTS;
  for (const key of Object.keys(raw)) {
    if (!(key in defaults) && !INERT.has(key)) {
      throw new AtlasError(
        'UNSUPPORTED',
        `${path}: field "${where}${key}" of a ${family} config is not supported, so the model cannot be run as its ` +
          `authors meant.`,
      );
    }
  }
  const field = (key: string): unknown => (raw[key] === undefined ? defaults[key] : raw[key]);
  const bad = (key: string, what: string): never => {
    throw new AtlasError('BAD_FILE', `${path}: "${where}${key}" must be ${what}, got ${JSON.stringify(raw[key])}.`);
  };
  const refuse = (key: string, what: string): never => {
    throw new AtlasError('UNSUPPORTED', `${path}: "${where}${key}" ${what} is not supported.`);
  };
  const int = (key: string): number => {
    const v = field(key);
    return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : bad(key, 'a positive integer');
  };
  const num = (key: string): number => {
    const v = field(key);
    return typeof v === 'number' && v > 0 ? v : bad(key, 'a positive number');
  };
  const optNum = (key: string): number | null => (field(key) === null ? null : num(key));

  const dModel = int('hidden_size');
  const nLayers = int('num_hidden_layers');
  const nHeads = int('num_attention_heads');
  const nKvHeads = int('num_key_value_heads');
  if (nHeads % nKvHeads !== 0) bad('num_key_value_heads', `a divisor of num_attention_heads ${nHeads}`);
  const dHead = int('head_dim');
  if (dHead % 2 !== 0) bad('head_dim', 'even (rotary embeddings rotate pairs)');
  const act = field('hidden_activation');
  // Every published Gemma 2/3 uses the tanh approximation; others are refused rather than left untested.
  const activation =
    act === 'gelu_pytorch_tanh' || act === 'gelu_new'
      ? 'gelu_new'
      : refuse('hidden_activation', `${JSON.stringify(act)} (supported: gelu_pytorch_tanh)`);
  if (field('attention_bias') !== false) refuse('attention_bias', JSON.stringify(field('attention_bias')));
  if (family === 'gemma3' && field('use_bidirectional_attention') !== false)
    refuse('use_bidirectional_attention', JSON.stringify(field('use_bidirectional_attention')));
  const tied =
    top.model_type === 'gemma3' && top.tie_word_embeddings !== undefined
      ? top.tie_word_embeddings
      : field('tie_word_embeddings');
  if (typeof tied !== 'boolean') bad('tie_word_embeddings', 'true or false');

  // Which layers slide.
  const types = field('layer_types');
  let sliding: boolean[];
  if (types !== null) {
    if (!Array.isArray(types) || types.length !== nLayers) bad('layer_types', `a list of ${nLayers} layer types`);
    sliding = (types as unknown[]).map((t) =>
      t === 'sliding_attention'
        ? true
        : t === 'full_attention'
          ? false
          : refuse('layer_types', `entry ${JSON.stringify(t)}`),
    );
  } else if (family === 'gemma2') {
    sliding = Array.from({ length: nLayers }, (_, i) => i % 2 === 0);
  } else {
    const key = raw._sliding_window_pattern != null ? '_sliding_window_pattern' : 'sliding_window_pattern';
    const pattern = int(key);
    sliding = Array.from({ length: nLayers }, (_, i) => (i + 1) % pattern !== 0);
  }
  const window = sliding.some(Boolean) ? int('sliding_window') : null;

  // Rotary bases and scaling per layer type.
  type Rope = { theta: number; linearFactor: number };
  const ropeOf = (spec: unknown, key: string, theta: number | null): Rope => {
    if (spec === null || spec === undefined) return { theta: theta ?? bad(key, 'given'), linearFactor: 1 };
    if (typeof spec !== 'object' || Array.isArray(spec)) return bad(key, 'an object');
    const s = spec as Record<string, unknown>;
    for (const k of Object.keys(s)) {
      if (!['rope_type', 'type', 'factor', 'rope_theta'].includes(k)) refuse(`${key}.${k}`, JSON.stringify(s[k]));
    }
    const type = s.rope_type ?? s.type ?? 'default';
    const base = s.rope_theta ?? theta;
    if (typeof base !== 'number' || !(base > 0)) bad(`${key}.rope_theta`, 'a positive number');
    if (type === 'default') return { theta: base as number, linearFactor: 1 };
    if (type !== 'linear') refuse(`${key}.rope_type`, `${JSON.stringify(type)} (supported: default, linear)`);
    if (typeof s.factor !== 'number' || !(s.factor > 0)) bad(`${key}.factor`, 'a positive number');
    return { theta: base as number, linearFactor: s.factor as number };
  };
  let globalRope: Rope;
  let localRope: Rope;
  const params = field('rope_parameters');
  if (params !== null) {
    if (typeof params !== 'object' || Array.isArray(params)) bad('rope_parameters', 'an object');
    const p = params as Record<string, unknown>;
    if ('full_attention' in p || 'sliding_attention' in p) {
      for (const k of Object.keys(p))
        if (k !== 'full_attention' && k !== 'sliding_attention') refuse(`rope_parameters.${k}`, 'as a layer type');
      globalRope = ropeOf(p.full_attention, 'rope_parameters.full_attention', null);
      localRope =
        p.sliding_attention === undefined
          ? globalRope
          : ropeOf(p.sliding_attention, 'rope_parameters.sliding_attention', null);
    } else {
      globalRope = localRope = ropeOf(p, 'rope_parameters', null);
    }
  } else {
    globalRope = ropeOf(field('rope_scaling'), 'rope_scaling', num('rope_theta'));
    // Gemma 3's local layers use plain rope on their own base; Gemma 2 has one rope for all layers.
    localRope = family === 'gemma3' ? { theta: num('rope_local_base_freq'), linearFactor: 1 } : globalRope;
  }

  const dtypeName = top.torch_dtype ?? top.dtype ?? raw.torch_dtype ?? raw.dtype;
  const gemma: GemmaOptions = {
    embedScale: gemmaEmbedScale(dModel, DTYPE_NAMES[String(dtypeName)] ?? 'F32'),
    attnScale: 1 / Math.sqrt(num('query_pre_attn_scalar')),
    attnSoftcap: optNum('attn_logit_softcapping'),
    finalSoftcap: optNum('final_logit_softcapping'),
    slidingWindow: sliding.map((s) => (s ? window : null)),
    rope: sliding.map((s) => (s ? localRope : globalRope)),
    qkNorm: family === 'gemma3',
  };
  return {
    architecture: family,
    dModel,
    nLayers,
    nHeads,
    nKvHeads,
    dHead,
    dMlp: int('intermediate_size'),
    vocabSize: int('vocab_size'),
    contextLength: int('max_position_embeddings'),
    normEps: num('rms_norm_eps'),
    ropeTheta: globalRope.theta,
    ropeStyle: 'half',
    activation,
    tiedEmbeddings: tied as boolean,
    gemma,
  };
}

/** Prefixes under which Gemma checkpoints keep the text model, most common first. */
const PREFIXES = ['model.', 'language_model.model.', 'model.language_model.', ''];

export interface GemmaSource {
  hf: string;
  shape: number[];
  transform: 'none' | 'transpose';
}

/** Canonical name → checkpoint tensor for a Gemma config, given which tensors the checkpoint has. */
export function gemmaSources(c: TransformerConfig, has: (name: string) => boolean): Map<string, GemmaSource> {
  const { dModel: d, dMlp, vocabSize, nHeads, nKvHeads, dHead } = c;
  const prefix = PREFIXES.find((p) => has(`${p}embed_tokens.weight`)) ?? 'model.';
  const s = new Map<string, GemmaSource>();
  const vector = (name: string, hf: string, n: number) => s.set(name, { hf, shape: [n], transform: 'none' });
  const linear = (name: string, hf: string, out: number, inp: number) =>
    s.set(name, { hf, shape: [out, inp], transform: 'transpose' });
  s.set('embed.W_E', { hf: `${prefix}embed_tokens.weight`, shape: [vocabSize, d], transform: 'none' });
  for (let L = 0; L < c.nLayers; L++) {
    const b = `blocks.${L}`;
    const h = `${prefix}layers.${L}`;
    vector(`${b}.ln1.w`, `${h}.input_layernorm.weight`, d);
    linear(`${b}.attn.W_Q`, `${h}.self_attn.q_proj.weight`, nHeads * dHead, d);
    linear(`${b}.attn.W_K`, `${h}.self_attn.k_proj.weight`, nKvHeads * dHead, d);
    linear(`${b}.attn.W_V`, `${h}.self_attn.v_proj.weight`, nKvHeads * dHead, d);
    linear(`${b}.attn.W_O`, `${h}.self_attn.o_proj.weight`, d, nHeads * dHead);
    if (c.gemma?.qkNorm) {
      vector(`${b}.attn.q_norm.w`, `${h}.self_attn.q_norm.weight`, dHead);
      vector(`${b}.attn.k_norm.w`, `${h}.self_attn.k_norm.weight`, dHead);
    }
    vector(`${b}.ln1_post.w`, `${h}.post_attention_layernorm.weight`, d);
    vector(`${b}.ln2.w`, `${h}.pre_feedforward_layernorm.weight`, d);
    vector(`${b}.ln2_post.w`, `${h}.post_feedforward_layernorm.weight`, d);
    linear(`${b}.mlp.W_gate`, `${h}.mlp.gate_proj.weight`, dMlp, d);
    linear(`${b}.mlp.W_in`, `${h}.mlp.up_proj.weight`, dMlp, d);
    linear(`${b}.mlp.W_out`, `${h}.mlp.down_proj.weight`, d, dMlp);
  }
  vector('ln_final.w', `${prefix}norm.weight`, d);
  // Tied (every published Gemma): the graph multiplies by embed.W_E transposed; HF ignores a saved lm_head then.
  if (!c.tiedEmbeddings) linear('unembed.W_U', 'lm_head.weight', vocabSize, d);
  return s;
}
