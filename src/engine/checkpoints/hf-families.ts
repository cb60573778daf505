/**
 * config.json → TransformerConfig for the llama family (llama, mistral, qwen2, qwen3) and gpt_neox,
 * with transformers' defaults for absent fields. Every key must be one these parsers honour or one
 * that cannot change the forward pass (ids, dropout, generation settings…); any other key, and any
 * value the graphs do not implement, is refused by name (UNSUPPORTED), so a checkpoint never runs
 * with math silently different from its modelling code.
 *
 * Sliding windows (transformers' sliding_window_overlay): a query at i sees keys j with i − j < W.
 *   mistral: every layer when sliding_window is set; qwen2/qwen3: only when use_sliding_window, on
 *   layers i >= max_window_layers (or as layer_types says).
 * RoPE scaling: rope_scaling (or transformers v5 rope_parameters), its type under rope_type or type.
 */
import { AtlasError } from '../../errors.js';
import type { Architecture, RopeScaling, TransformerConfig } from '../model/types.js';

/** Keys that cannot change the forward pass of a causal LM run for activations. */
const NEUTRAL_KEYS = [
  'architectures',
  'model_type',
  'torch_dtype',
  'dtype',
  'transformers_version',
  '_name_or_path',
  '_commit_hash',
  'bos_token_id',
  'eos_token_id',
  'pad_token_id',
  'sep_token_id',
  'decoder_start_token_id',
  'use_cache',
  'initializer_range',
  'attention_dropout',
  'hidden_dropout',
  'classifier_dropout',
  'embd_pdrop',
  'resid_pdrop',
  'attn_pdrop',
  'id2label',
  'label2id',
  'output_attentions',
  'output_hidden_states',
  'return_dict',
  'is_decoder',
  'is_encoder_decoder',
  'add_cross_attention',
  'tie_encoder_decoder',
  'problem_type',
  'tokenizer_class',
  'task_specific_params',
  'finetuning_task',
  'prefix',
  'torchscript',
  'use_bfloat16',
  'pruned_heads',
  'chunk_size_feed_forward',
  'max_length',
  'min_length',
  'do_sample',
  'early_stopping',
  'num_beams',
  'temperature',
  'top_k',
  'top_p',
  'repetition_penalty',
  'length_penalty',
  'no_repeat_ngram_size',
  'num_return_sequences',
  'forced_bos_token_id',
  'forced_eos_token_id',
  'bad_words_ids',
  'output_scores',
  'return_dict_in_generate',
  '_attn_implementation',
  'attn_implementation',
  'gradient_checkpointing',
  // Llama 2's tensor-parallel slicing of the projections: the same math whatever its value.
  'pretraining_tp',
];

type Raw = Record<string, unknown>;

/** Typed reads of config.json fields with defaults; errors name the file and the field. */
class Fields {
  constructor(
    readonly raw: Raw,
    readonly path: string,
  ) {}

  refuse(what: string): never {
    throw new AtlasError('UNSUPPORTED', `${this.path}: ${what} is not supported.`);
  }

  bad(key: string, want: string): never {
    throw new AtlasError('BAD_FILE', `${this.path}: "${key}" must be ${want}, got ${JSON.stringify(this.raw[key])}.`);
  }

  int(key: string, fallback?: number): number {
    const v = this.raw[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) this.bad(key, 'a positive integer');
    return v;
  }

  count(key: string, fallback: number): number {
    const v = this.raw[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) this.bad(key, 'a non-negative integer');
    return v;
  }

  num(key: string, fallback?: number): number {
    const v = this.raw[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0)) this.bad(key, 'a positive number');
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw[key] ?? fallback;
    if (typeof v !== 'boolean') this.bad(key, 'true or false');
    return v;
  }

  /** Refuses keys neither neutral nor in `honoured`, naming them. */
  onlyKnown(modelType: string, honoured: string[]): void {
    const known = new Set([...NEUTRAL_KEYS, ...honoured]);
    const unknown = Object.keys(this.raw).filter((k) => !known.has(k));
    if (unknown.length > 0) {
      this.refuse(
        `config field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')} (unknown to the ` +
          `${modelType} reader, which refuses what it cannot honour)`,
      );
    }
  }
}

/** gpt2's fields (parsed in huggingface.ts); the summary_* ones configure a classification head, not the LM. */
export function checkGpt2Keys(raw: Raw, path: string): void {
  new Fields(raw, path).onlyKnown('gpt2', [
    'n_embd',
    'n_layer',
    'n_head',
    'n_inner',
    'n_positions',
    'n_ctx',
    'vocab_size',
    'layer_norm_epsilon',
    'activation_function',
    'scale_attn_weights',
    'scale_attn_by_inverse_layer_idx',
    'reorder_and_upcast_attn',
    'tie_word_embeddings',
    'summary_type',
    'summary_use_proj',
    'summary_activation',
    'summary_proj_to_labels',
    'summary_first_dropout',
  ]);
}

const ROPE_KEYS: Record<string, string[]> = {
  default: [],
  linear: ['factor'],
  // transformers accepts original_max_position_embeddings here but scales by max_position_embeddings.
  dynamic: ['factor', 'original_max_position_embeddings'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
  yarn: [
    'factor',
    'original_max_position_embeddings',
    'attention_factor',
    'mscale',
    'mscale_all_dim',
    'beta_fast',
    'beta_slow',
    'truncate',
  ],
};

/** RoPE θ and scaling from rope_scaling / rope_parameters; `maxPositions` is max_position_embeddings. */
function readRope(
  f: Fields,
  thetaKey: string,
  maxPositions: number,
): { theta: number; scaling?: RopeScaling; partialRotaryFactor?: number } {
  const field = f.raw.rope_parameters != null ? 'rope_parameters' : 'rope_scaling';
  const rs = f.raw[field];
  const theta = (
    rs && typeof rs === 'object' && typeof (rs as Raw).rope_theta === 'number' ? (rs as Raw).rope_theta : undefined
  ) as number | undefined;
  if (rs == null) return { theta: f.num(thetaKey, 10000) };
  if (typeof rs !== 'object' || Array.isArray(rs)) f.bad(field, 'an object or null');
  const s = rs as Raw;
  const type = s.rope_type ?? s.type ?? 'default';
  if (typeof type !== 'string' || !(type in ROPE_KEYS)) {
    f.refuse(`${field}.rope_type ${JSON.stringify(type)} (supported: ${Object.keys(ROPE_KEYS).join(', ')})`);
  }
  const allowed = new Set(['rope_type', 'type', 'rope_theta', 'partial_rotary_factor', ...ROPE_KEYS[type]]);
  const unknown = Object.keys(s).filter((k) => !allowed.has(k));
  if (unknown.length > 0)
    f.refuse(
      `${field} field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')} for rope type ` +
        `"${type}"`,
    );
  const num = (key: string, fallback?: number): number => {
    const v = s[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0))
      throw new AtlasError(
        'BAD_FILE',
        `${f.path}: ${field}.${key} must be a positive number, got ${JSON.stringify(s[key])}.`,
      );
    return v;
  };
  const out = {
    theta: theta ?? f.num(thetaKey, 10000),
    partialRotaryFactor: s.partial_rotary_factor === undefined ? undefined : num('partial_rotary_factor'),
  };
  switch (type) {
    case 'default':
      return out;
    case 'linear':
      return { ...out, scaling: { type, factor: num('factor') } };
    case 'dynamic':
      return { ...out, scaling: { type, factor: num('factor'), maxPositions } };
    case 'llama3':
      return {
        ...out,
        scaling: {
          type,
          factor: num('factor'),
          lowFreqFactor: num('low_freq_factor'),
          highFreqFactor: num('high_freq_factor'),
          originalMaxPositions: num('original_max_position_embeddings'),
        },
      };
    default: {
      // yarn, as transformers v5: factor defaults to max_position_embeddings / original_max_position_embeddings.
      const original = num('original_max_position_embeddings', maxPositions);
      const factor = num('factor', maxPositions / original);
      const mscale = (scale: number, m: number) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      const m = s.mscale == null ? 0 : num('mscale');
      const mAll = s.mscale_all_dim == null ? 0 : num('mscale_all_dim');
      const attentionFactor =
        s.attention_factor != null
          ? num('attention_factor')
          : m && mAll
            ? mscale(factor, m) / mscale(factor, mAll)
            : mscale(factor, 1);
      if (s.truncate != null && typeof s.truncate !== 'boolean')
        throw new AtlasError('BAD_FILE', `${f.path}: ${field}.truncate must be true or false.`);
      return {
        ...out,
        scaling: {
          type: 'yarn',
          factor,
          originalMaxPositions: original,
          attentionFactor,
          betaFast: num('beta_fast', 32),
          betaSlow: num('beta_slow', 1),
          truncate: s.truncate !== false,
        },
      };
    }
  }
}

/** Longest input a scaled model is run on: the length its scaling was made to reach. */
function scaledContext(maxPositions: number, s: RopeScaling | undefined): number {
  if (s?.type === 'dynamic') return Math.floor(maxPositions * s.factor);
  if (s?.type === 'yarn') return Math.max(maxPositions, Math.floor(s.originalMaxPositions * s.factor));
  return maxPositions;
}

/** Per-layer sliding windows from layer_types, or every layer when `all` is set. */
function slidingWindows(
  f: Fields,
  nLayers: number,
  window: number | null,
  defaultSliding: (layer: number) => boolean,
): (number | null)[] | undefined {
  const types = f.raw.layer_types;
  let sliding: boolean[];
  if (types == null) {
    sliding = Array.from({ length: nLayers }, (_, l) => defaultSliding(l));
  } else {
    if (!Array.isArray(types) || types.length !== nLayers) f.bad('layer_types', `a list of ${nLayers} layer types`);
    sliding = types.map((t, l) => {
      if (t !== 'full_attention' && t !== 'sliding_attention')
        f.refuse(`layer_types[${l}] ${JSON.stringify(t)} (supported: full_attention, sliding_attention)`);
      return t === 'sliding_attention';
    });
  }
  if (window === null || !sliding.some(Boolean)) return undefined;
  return sliding.map((s) => (s ? window : null));
}

const LLAMA_FAMILY_DEFAULTS: Record<string, { maxPositions: number; headDim?: number }> = {
  llama: { maxPositions: 2048 },
  mistral: { maxPositions: 4096 * 32 },
  qwen2: { maxPositions: 32768 },
  qwen3: { maxPositions: 32768, headDim: 128 },
};

/** llama, mistral, qwen2 and qwen3: the llama block with their own biases, norms and windows. */
export function readLlamaFamilyConfig(
  raw: Raw,
  path: string,
  modelType: 'llama' | 'mistral' | 'qwen2' | 'qwen3',
): TransformerConfig {
  const f = new Fields(raw, path);
  const qwen = modelType === 'qwen2' || modelType === 'qwen3';
  f.onlyKnown(modelType, [
    'hidden_size',
    'intermediate_size',
    'num_hidden_layers',
    'num_attention_heads',
    'num_key_value_heads',
    'head_dim',
    'hidden_act',
    'max_position_embeddings',
    'rms_norm_eps',
    'rope_theta',
    'rope_scaling',
    'rope_parameters',
    'tie_word_embeddings',
    'vocab_size',
    'attention_bias',
    // max_sequence_length: early LLaMA conversions carry it; transformers never reads it.
    ...(modelType === 'llama' ? ['mlp_bias', 'max_sequence_length'] : []),
    ...(modelType === 'mistral' ? ['sliding_window'] : []),
    ...(qwen ? ['sliding_window', 'use_sliding_window', 'max_window_layers', 'layer_types', 'use_mrope'] : []),
  ]);
  const defaults = LLAMA_FAMILY_DEFAULTS[modelType];
  const dModel = f.int('hidden_size');
  const nHeads = f.int('num_attention_heads');
  const nKvHeads = f.int('num_key_value_heads', nHeads);
  const nLayers = f.int('num_hidden_layers');
  if (nHeads % nKvHeads !== 0)
    throw new AtlasError(
      'BAD_FILE',
      `${path}: num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}.`,
    );
  if ((raw.hidden_act ?? 'silu') !== 'silu') f.refuse(`hidden_act ${JSON.stringify(raw.hidden_act)} (supported: silu)`);
  if (raw.use_mrope === true) f.refuse('use_mrope: true (multimodal rope)');
  if (f.bool('attention_bias', false) && modelType !== 'llama' && modelType !== 'qwen3')
    f.refuse('attention_bias: true');
  f.bool('mlp_bias', false);
  const headDim = raw.head_dim == null ? (defaults.headDim ?? dModel / nHeads) : f.int('head_dim');
  if (!Number.isInteger(headDim))
    throw new AtlasError(
      'BAD_FILE',
      `${path}: hidden_size ${dModel} is not divisible by num_attention_heads ${nHeads}; set head_dim.`,
    );
  if (headDim % 2 !== 0)
    throw new AtlasError('BAD_FILE', `${path}: head_dim ${headDim} must be even for rotary embeddings.`);
  const maxPositions = f.int('max_position_embeddings', defaults.maxPositions);
  const rope = readRope(f, 'rope_theta', maxPositions);
  if (rope.partialRotaryFactor !== undefined && rope.partialRotaryFactor !== 1)
    f.refuse(`partial_rotary_factor ${rope.partialRotaryFactor} on ${modelType}`);

  let windows: (number | null)[] | undefined;
  if (modelType === 'mistral') {
    windows = slidingWindows(f, nLayers, raw.sliding_window == null ? null : f.int('sliding_window'), () => true);
  } else if (qwen) {
    const use = f.bool('use_sliding_window', false);
    const from = f.count('max_window_layers', 28);
    windows = slidingWindows(
      f,
      nLayers,
      use && raw.sliding_window != null ? f.int('sliding_window') : null,
      (l) => l >= from,
    );
  }

  return {
    architecture: modelType as Architecture,
    dModel,
    nLayers,
    nHeads,
    nKvHeads,
    dHead: headDim,
    dMlp: f.int('intermediate_size'),
    vocabSize: f.int('vocab_size'),
    contextLength: scaledContext(maxPositions, rope.scaling),
    normEps: f.num('rms_norm_eps', 1e-6),
    ropeTheta: rope.theta,
    ropeStyle: 'half',
    activation: 'silu',
    tiedEmbeddings: f.bool('tie_word_embeddings', false),
    ...(rope.scaling ? { ropeScaling: rope.scaling } : {}),
    ...(windows ? { slidingWindows: windows } : {}),
  };
}

/** Whether a llama-family config asks for biases on the attention projections (all four) and the MLP. */
export function llamaFamilyBiases(raw: Raw, modelType: string): { qkv: boolean; o: boolean; mlp: boolean } {
  if (modelType === 'qwen2') return { qkv: true, o: false, mlp: false };
  const attn = raw.attention_bias === true;
  return { qkv: attn, o: attn, mlp: raw.mlp_bias === true };
}

/** gpt_neox (Pythia): LayerNorm with bias, partial rotary, parallel or sequential residual. */
export function readNeoxConfig(raw: Raw, path: string): TransformerConfig {
  const f = new Fields(raw, path);
  f.onlyKnown('gpt_neox', [
    'hidden_size',
    'num_attention_heads',
    'num_hidden_layers',
    'intermediate_size',
    'hidden_act',
    'rotary_pct',
    'partial_rotary_factor',
    'rotary_emb_base',
    'rope_theta',
    'rope_scaling',
    'rope_parameters',
    'max_position_embeddings',
    'layer_norm_eps',
    'use_parallel_residual',
    'attention_bias',
    'tie_word_embeddings',
    'vocab_size',
  ]);
  const dModel = f.int('hidden_size');
  const nHeads = f.int('num_attention_heads');
  if (dModel % nHeads !== 0)
    throw new AtlasError(
      'BAD_FILE',
      `${path}: hidden_size ${dModel} is not divisible by num_attention_heads ${nHeads}.`,
    );
  const dHead = dModel / nHeads;
  const act = raw.hidden_act ?? 'gelu';
  const activation =
    act === 'gelu'
      ? 'gelu'
      : act === 'gelu_new' || act === 'gelu_pytorch_tanh' || act === 'gelu_fast'
        ? 'gelu_new'
        : f.refuse(`hidden_act ${JSON.stringify(act)} (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast)`);
  const maxPositions = f.int('max_position_embeddings', 2048);
  const rope = readRope(f, raw.rope_theta != null ? 'rope_theta' : 'rotary_emb_base', maxPositions);
  const pctKey = raw.partial_rotary_factor != null ? 'partial_rotary_factor' : 'rotary_pct';
  const pct = rope.partialRotaryFactor ?? f.num(pctKey, 0.25);
  if (pct > 1) f.bad(pctKey, 'at most 1');
  const rotaryDim = Math.floor(dHead * pct);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0)
    throw new AtlasError(
      'BAD_FILE',
      `${path}: ${pctKey} ${pct} of head size ${dHead} gives ${rotaryDim} rotary dims; an even number of at least 2 ` +
        `is needed.`,
    );
  f.bool('attention_bias', true);
  return {
    architecture: 'gpt_neox',
    dModel,
    nLayers: f.int('num_hidden_layers'),
    nHeads,
    nKvHeads: nHeads,
    dHead,
    dMlp: f.int('intermediate_size', 24576),
    vocabSize: f.int('vocab_size'),
    contextLength: scaledContext(maxPositions, rope.scaling),
    normEps: f.num('layer_norm_eps', 1e-5),
    ropeTheta: rope.theta,
    ropeStyle: 'half',
    activation,
    tiedEmbeddings: f.bool('tie_word_embeddings', false),
    rotaryDim,
    parallelResidual: f.bool('use_parallel_residual', true),
    ...(rope.scaling ? { ropeScaling: rope.scaling } : {}),
  };
}
