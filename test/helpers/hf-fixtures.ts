/**
 * Writes tiny random Hugging Face checkpoints for gpt2 and llama: config.json, model.safetensors
 * (or shards with model.safetensors.index.json) and tokenizer.json. The weights are drawn in the
 * TransformerLens layout first and written out in HF's layout by code independent of the reader,
 * so a test can check the reader's mapping by comparing what it loads with `weights`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TransformerConfig, TransformerWeights } from '../../src/engine/model/types.js';
import { writeSafetensors, type TensorToWrite } from '../../src/engine/tensors/safetensors.js';
import { llamaConfig, randomLlamaWeights, seededRandom } from './random-weights.js';
import { writeGpt2TokenizerJson, writeLlamaTokenizerJson } from './tokenizer-fixtures.js';

export interface HfFixtureOptions {
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Split the tensors over this many files with an index (default 1: one model.safetensors). */
  shards?: number;
  tied?: boolean;
  seed?: number;
  /** Write the `transformer.` (gpt2) or `model.` (llama) prefix (default true). */
  prefix?: boolean;
  /** Extra or replaced config.json entries. */
  config?: Record<string, unknown>;
  /** Write tokenizer.json (and tokenizer_config.json) beside the weights (default true). */
  tokenizer?: boolean;
  /** writeTinyGpt2: overrides of the gpt2Config shape (a GPT-2-small-shaped checkpoint for benches). */
  shape?: Partial<TransformerConfig>;
  /** Edits the HF-named tensors before they are written (drop or reshape one for bad-input tests). */
  editTensors?: (t: Record<string, TensorToWrite>) => void;
  /** gpt2: entries of the written tokenizer, at most the model's vocabulary (default the model's). */
  tokenizerVocab?: number;
}

export interface HfFixture {
  dir: string;
  /** The weights written, in the TransformerLens layout, before any f16/bf16 rounding. */
  weights: TransformerWeights;
}

function inMemory(config: TransformerConfig, tensors: Map<string, Float32Array>): TransformerWeights {
  return {
    config,
    has: (n) => tensors.has(n),
    tensor(n) {
      const t = tensors.get(n);
      if (!t) throw new Error(`fixture weights have no tensor ${n}`);
      return t;
    },
  };
}

export function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c];
  return out;
}

export function gpt2Config(overrides: Partial<TransformerConfig> = {}): TransformerConfig {
  return {
    architecture: 'gpt2',
    dModel: 32,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 4,
    dHead: 8,
    dMlp: 128,
    vocabSize: 384,
    contextLength: 32,
    normEps: 1e-5,
    ropeTheta: 0,
    ropeStyle: 'half',
    activation: 'gelu_new',
    tiedEmbeddings: true,
    ...overrides,
  };
}

/** Seeded random GPT-2 weights: matrices scaled by 1/sqrt(fan-in), biases small, LN weights around 1. */
export function randomGpt2Weights(c: TransformerConfig, seed = 1): TransformerWeights {
  const rand = seededRandom(seed);
  const { dModel: d, dMlp, vocabSize } = c;
  const t = new Map<string, Float32Array>();
  const matrix = (name: string, rows: number, cols: number) => {
    const s = Math.sqrt(3 / rows);
    t.set(
      name,
      Float32Array.from({ length: rows * cols }, () => (2 * rand() - 1) * s),
    );
  };
  const vector = (name: string, n: number, centre: number, spread: number) =>
    t.set(
      name,
      Float32Array.from({ length: n }, () => centre + (2 * rand() - 1) * spread),
    );
  matrix('embed.W_E', vocabSize, d);
  matrix('pos_embed.W_pos', c.contextLength, d);
  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    for (const ln of ['ln1', 'ln2']) {
      vector(`${b}.${ln}.w`, d, 1, 0.5);
      vector(`${b}.${ln}.b`, d, 0, 0.2);
    }
    for (const x of ['Q', 'K', 'V']) {
      matrix(`${b}.attn.W_${x}`, d, d);
      vector(`${b}.attn.b_${x}`, d, 0, 0.2);
    }
    matrix(`${b}.attn.W_O`, d, d);
    vector(`${b}.attn.b_O`, d, 0, 0.2);
    matrix(`${b}.mlp.W_in`, d, dMlp);
    vector(`${b}.mlp.b_in`, dMlp, 0, 0.2);
    matrix(`${b}.mlp.W_out`, dMlp, d);
    vector(`${b}.mlp.b_out`, d, 0, 0.2);
  }
  vector('ln_final.w', d, 1, 0.5);
  vector('ln_final.b', d, 0, 0.2);
  if (c.tiedEmbeddings) t.set('unembed.W_U', transpose(t.get('embed.W_E')!, vocabSize, d));
  else matrix('unembed.W_U', d, vocabSize);
  return inMemory(c, t);
}

export function writeCheckpoint(
  dir: string,
  config: Record<string, unknown>,
  tensors: Record<string, TensorToWrite>,
  opts: HfFixtureOptions,
): void {
  opts.editTensors?.(tensors);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, ...opts.config }, null, 2));
  const shards = opts.shards ?? 1;
  if (shards === 1) {
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    return;
  }
  const names = Object.keys(tensors);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part: Record<string, TensorToWrite> = {};
    names.forEach((n, i) => {
      if (i % shards === s) {
        part[n] = tensors[n];
        weightMap[n] = file;
      }
    });
    writeSafetensors(join(dir, file), part, { format: 'pt' });
  }
  writeFileSync(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2),
  );
}

/** A tiny GPT-2 checkpoint (Conv1D weights [in, out], fused c_attn). */
export function writeTinyGpt2(dir: string, opts: HfFixtureOptions = {}): HfFixture {
  const c = gpt2Config({ tiedEmbeddings: opts.tied ?? true, ...opts.shape });
  const w = randomGpt2Weights(c, opts.seed ?? 1);
  const dtype = opts.dtype ?? 'F32';
  const p = opts.prefix === false ? '' : 'transformer.';
  const { dModel: d, dMlp, vocabSize } = c;
  const tensors: Record<string, TensorToWrite> = {};
  const put = (name: string, shape: number[], data: Float32Array) => (tensors[name] = { dtype, shape, data });
  put(`${p}wte.weight`, [vocabSize, d], w.tensor('embed.W_E'));
  put(`${p}wpe.weight`, [c.contextLength, d], w.tensor('pos_embed.W_pos'));
  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    const h = `${p}h.${l}`;
    put(`${h}.ln_1.weight`, [d], w.tensor(`${b}.ln1.w`));
    put(`${h}.ln_1.bias`, [d], w.tensor(`${b}.ln1.b`));
    const cAttn = new Float32Array(d * 3 * d);
    for (let r = 0; r < d; r++) {
      ['Q', 'K', 'V'].forEach((x, i) =>
        cAttn.set(w.tensor(`${b}.attn.W_${x}`).subarray(r * d, (r + 1) * d), r * 3 * d + i * d),
      );
    }
    put(`${h}.attn.c_attn.weight`, [d, 3 * d], cAttn);
    put(
      `${h}.attn.c_attn.bias`,
      [3 * d],
      Float32Array.from([...w.tensor(`${b}.attn.b_Q`), ...w.tensor(`${b}.attn.b_K`), ...w.tensor(`${b}.attn.b_V`)]),
    );
    put(`${h}.attn.c_proj.weight`, [d, d], w.tensor(`${b}.attn.W_O`));
    put(`${h}.attn.c_proj.bias`, [d], w.tensor(`${b}.attn.b_O`));
    put(`${h}.ln_2.weight`, [d], w.tensor(`${b}.ln2.w`));
    put(`${h}.ln_2.bias`, [d], w.tensor(`${b}.ln2.b`));
    put(`${h}.mlp.c_fc.weight`, [d, dMlp], w.tensor(`${b}.mlp.W_in`));
    put(`${h}.mlp.c_fc.bias`, [dMlp], w.tensor(`${b}.mlp.b_in`));
    put(`${h}.mlp.c_proj.weight`, [dMlp, d], w.tensor(`${b}.mlp.W_out`));
    put(`${h}.mlp.c_proj.bias`, [d], w.tensor(`${b}.mlp.b_out`));
  }
  put(`${p}ln_f.weight`, [d], w.tensor('ln_final.w'));
  put(`${p}ln_f.bias`, [d], w.tensor('ln_final.b'));
  if (!c.tiedEmbeddings) put('lm_head.weight', [vocabSize, d], transpose(w.tensor('unembed.W_U'), d, vocabSize));
  const config = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_embd: d,
    n_layer: c.nLayers,
    n_head: c.nHeads,
    n_inner: null,
    n_positions: c.contextLength,
    vocab_size: vocabSize,
    layer_norm_epsilon: c.normEps,
    activation_function: 'gelu_new',
    bos_token_id: vocabSize - 1,
    eos_token_id: vocabSize - 1,
    tie_word_embeddings: c.tiedEmbeddings,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
  };
  writeCheckpoint(dir, config, tensors, opts);
  if (opts.tokenizer !== false) writeGpt2TokenizerJson(dir, opts.tokenizerVocab ?? vocabSize);
  return { dir, weights: w };
}

/** A tiny LLaMA checkpoint with grouped-query attention (nn.Linear weights [out, in]). */
export function writeTinyLlama(dir: string, opts: HfFixtureOptions = {}): HfFixture {
  // A non-default theta so a reader that ignores rope_theta is caught.
  const c = llamaConfig({ ropeStyle: 'half', ropeTheta: 500, tiedEmbeddings: opts.tied ?? false, vocabSize: 384 });
  const w = randomLlamaWeights(c, opts.seed ?? 1);
  const dtype = opts.dtype ?? 'F32';
  const p = opts.prefix === false ? '' : 'model.';
  const { dModel: d, dMlp, vocabSize, nHeads, nKvHeads, dHead } = c;
  const tensors: Record<string, TensorToWrite> = {};
  const put = (name: string, shape: number[], data: Float32Array) => (tensors[name] = { dtype, shape, data });
  // nn.Linear(in, out).weight is [out, in]: the transpose of the TransformerLens matrix.
  const linear = (name: string, canonical: string, inp: number, out: number) =>
    put(name, [out, inp], transpose(w.tensor(canonical), inp, out));
  put(`${p}embed_tokens.weight`, [vocabSize, d], w.tensor('embed.W_E'));
  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    const h = `${p}layers.${l}`;
    put(`${h}.input_layernorm.weight`, [d], w.tensor(`${b}.ln1.w`));
    linear(`${h}.self_attn.q_proj.weight`, `${b}.attn.W_Q`, d, nHeads * dHead);
    linear(`${h}.self_attn.k_proj.weight`, `${b}.attn.W_K`, d, nKvHeads * dHead);
    linear(`${h}.self_attn.v_proj.weight`, `${b}.attn.W_V`, d, nKvHeads * dHead);
    linear(`${h}.self_attn.o_proj.weight`, `${b}.attn.W_O`, nHeads * dHead, d);
    put(`${h}.post_attention_layernorm.weight`, [d], w.tensor(`${b}.ln2.w`));
    linear(`${h}.mlp.gate_proj.weight`, `${b}.mlp.W_gate`, d, dMlp);
    linear(`${h}.mlp.up_proj.weight`, `${b}.mlp.W_in`, d, dMlp);
    linear(`${h}.mlp.down_proj.weight`, `${b}.mlp.W_out`, dMlp, d);
  }
  put(`${p}norm.weight`, [d], w.tensor('ln_final.w'));
  if (!c.tiedEmbeddings) linear('lm_head.weight', 'unembed.W_U', d, vocabSize);
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: d,
    intermediate_size: dMlp,
    num_hidden_layers: c.nLayers,
    num_attention_heads: nHeads,
    num_key_value_heads: nKvHeads,
    max_position_embeddings: c.contextLength,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: null,
    hidden_act: 'silu',
    vocab_size: vocabSize,
    bos_token_id: 1,
    eos_token_id: 2,
    tie_word_embeddings: c.tiedEmbeddings,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
  };
  writeCheckpoint(dir, config, tensors, opts);
  if (opts.tokenizer !== false) writeLlamaTokenizerJson(dir, vocabSize);
  return { dir, weights: w };
}
