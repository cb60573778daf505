/**
 * Tiny random Gemma 2 / Gemma 3 checkpoints in Hugging Face layout (config.json, safetensors with the
 * `model.` or multimodal `language_model.model.` prefix, a SentencePiece-style tokenizer.json whose
 * BOS is `<bos>`), sized so that every Gemma feature changes the result: head_dim ≠ d/heads, GQA,
 * sliding windows shorter than the test inputs, soft-caps that bite, local/global rope bases and
 * linear rope scaling (gemma3). Returns the HF-named tensors as stored (after dtype rounding) for
 * the float64 reference in test/reference/gemma.ts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromFloat32, toFloat32 } from '../../src/engine/tensors/dtype.js';
import type { TensorToWrite } from '../../src/engine/tensors/safetensors.js';
import type { GemmaReferenceInput } from '../reference/gemma.js';
import { writeCheckpoint, type HfFixtureOptions } from './hf-fixtures.js';
import { rng } from './rng.js';
import { writeLlamaTokenizerJson } from './tokenizer-fixtures.js';

export type GemmaFamily = 'gemma2' | 'gemma3_text' | 'gemma3';

export interface GemmaFixtureOptions extends HfFixtureOptions {
  /** gemma3: the multimodal layout (text_config, language_model.model. prefix, a vision tower to ignore). */
  family?: GemmaFamily;
  /** Replaced or removed (undefined) text-config entries; `config` edits the top level. */
  text?: Record<string, unknown>;
}

export interface GemmaFixture {
  dir: string;
  reference: GemmaReferenceInput;
}

const DTYPE_NAME = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;

export function gemmaTextConfig(family: GemmaFamily): Record<string, unknown> {
  const common = {
    hidden_size: 24,
    intermediate_size: 40,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 10,
    vocab_size: 384,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    hidden_activation: 'gelu_pytorch_tanh',
    attention_bias: false,
    attention_dropout: 0.0,
    initializer_range: 0.02,
    tie_word_embeddings: true,
    pad_token_id: 0,
    eos_token_id: 2,
    bos_token_id: 1,
    use_cache: true,
  };
  if (family === 'gemma2') {
    return {
      ...common,
      num_hidden_layers: 3,
      query_pre_attn_scalar: 12,
      rope_theta: 100,
      sliding_window: 4,
      attn_logit_softcapping: 1.0,
      final_logit_softcapping: 2.0,
      cache_implementation: 'hybrid',
    };
  }
  return {
    ...common,
    num_hidden_layers: 4,
    query_pre_attn_scalar: 10,
    rope_theta: 1000,
    rope_local_base_freq: 50,
    rope_scaling: { rope_type: 'linear', factor: 4 },
    sliding_window: 3,
    sliding_window_pattern: 3,
    attn_logit_softcapping: null,
    final_logit_softcapping: null,
  };
}

/** Writes `<bos>`/`<eos>` in place of the llama fixture's `<s>`/`</s>`, as Gemma tokenizers name them. */
function writeGemmaTokenizer(dir: string, vocabSize: number): void {
  writeLlamaTokenizerJson(dir, vocabSize);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    const path = join(dir, f);
    writeFileSync(path, readFileSync(path, 'utf8').replaceAll('"<s>"', '"<bos>"').replaceAll('"</s>"', '"<eos>"'));
  }
}

export function writeTinyGemma(dir: string, opts: GemmaFixtureOptions = {}): GemmaFixture {
  const family = opts.family ?? 'gemma2';
  const dtype = opts.dtype ?? 'F32';
  const text: Record<string, unknown> = { ...gemmaTextConfig(family), ...opts.text };
  for (const [k, v] of Object.entries(text)) if (v === undefined) delete text[k];
  const num = (k: string) => text[k] as number;
  const d = num('hidden_size');
  const H = num('num_attention_heads');
  const Hkv = num('num_key_value_heads');
  const hd = num('head_dim');
  const F = num('intermediate_size');
  const V = num('vocab_size');
  const rand = rng(opts.seed ?? 1);
  const uniform = (n: number, scale: number) => Float32Array.from({ length: n }, () => (2 * rand() - 1) * scale);

  const tensors = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  const put = (name: string, shape: number[], data: Float32Array) => {
    shapes.set(name, shape);
    tensors.set(name, toFloat32(fromFloat32(data, dtype), dtype));
  };
  const lin = (name: string, out: number, inp: number) => put(name, [out, inp], uniform(out * inp, Math.sqrt(3 / inp)));
  const norm = (name: string, n: number) => put(name, [n], uniform(n, 0.5));
  put('embed_tokens.weight', [V, d], uniform(V * d, 1));
  for (let l = 0; l < num('num_hidden_layers'); l++) {
    const p = `layers.${l}`;
    norm(`${p}.input_layernorm.weight`, d);
    lin(`${p}.self_attn.q_proj.weight`, H * hd, d);
    lin(`${p}.self_attn.k_proj.weight`, Hkv * hd, d);
    lin(`${p}.self_attn.v_proj.weight`, Hkv * hd, d);
    lin(`${p}.self_attn.o_proj.weight`, d, H * hd);
    if (family !== 'gemma2') {
      norm(`${p}.self_attn.q_norm.weight`, hd);
      norm(`${p}.self_attn.k_norm.weight`, hd);
    }
    norm(`${p}.post_attention_layernorm.weight`, d);
    norm(`${p}.pre_feedforward_layernorm.weight`, d);
    norm(`${p}.post_feedforward_layernorm.weight`, d);
    lin(`${p}.mlp.gate_proj.weight`, F, d);
    lin(`${p}.mlp.up_proj.weight`, F, d);
    lin(`${p}.mlp.down_proj.weight`, d, F);
  }
  norm('norm.weight', d);
  if (text.tie_word_embeddings === false) put('lm_head.weight', [V, d], uniform(V * d, 0.5));

  const prefix = opts.prefix === false ? '' : family === 'gemma3' ? 'language_model.model.' : 'model.';
  const files: Record<string, TensorToWrite> = {};
  for (const [name, data] of tensors)
    files[name === 'lm_head.weight' ? name : prefix + name] = { dtype, shape: shapes.get(name)!, data };
  let config: Record<string, unknown>;
  if (family === 'gemma3') {
    files['vision_tower.vision_model.embeddings.patch_embedding.weight'] = {
      dtype,
      shape: [4, 3],
      data: uniform(12, 1),
    };
    config = {
      architectures: ['Gemma3ForConditionalGeneration'],
      model_type: 'gemma3',
      text_config: { ...text, model_type: 'gemma3_text' },
      vision_config: { model_type: 'siglip_vision_model', hidden_size: 4 },
      mm_tokens_per_image: 4,
      boi_token_index: 5,
      eoi_token_index: 6,
      image_token_index: 7,
      torch_dtype: DTYPE_NAME[dtype],
      transformers_version: '4.50.0',
    };
  } else {
    config = {
      architectures: [family === 'gemma2' ? 'Gemma2ForCausalLM' : 'Gemma3ForCausalLM'],
      model_type: family,
      ...text,
      torch_dtype: DTYPE_NAME[dtype],
      transformers_version: '4.50.0',
    };
  }
  writeCheckpoint(dir, config, files, opts);
  if (opts.tokenizer !== false) writeGemmaTokenizer(dir, V);
  return { dir, reference: { family: family === 'gemma2' ? 'gemma2' : 'gemma3', config: text, tensors, dtype } };
}
