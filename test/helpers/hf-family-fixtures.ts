/**
 * Tiny random Hugging Face checkpoints of the llama family (llama, mistral, qwen2, qwen3) and gpt_neox.
 * A test gives the TransformerConfig it expects the reader to produce and the config.json fields that
 * say so; weights are drawn in the TransformerLens layout and written out in each family's own layout
 * (nn.Linear [out, in]; NeoX's query_key_value fused per head as [q_h; k_h; v_h] row blocks) by code
 * independent of the reader, so tests run the reference on `weights` and the graph on what was read.
 */
import type { TransformerConfig, TransformerWeights } from '../../src/engine/model/types.js';
import type { TensorToWrite } from '../../src/engine/tensors/safetensors.js';
import { transpose, writeCheckpoint, type HfFixture, type HfFixtureOptions } from './hf-fixtures.js';
import { seededRandom } from './random-weights.js';
import { writeGpt2TokenizerJson, writeLlamaTokenizerJson } from './tokenizer-fixtures.js';

export type LlamaFamily = 'llama' | 'mistral' | 'qwen2' | 'qwen3';

export interface FamilyFixtureOptions extends HfFixtureOptions {
  /** The config the reader must produce (architecture included). */
  expected: TransformerConfig;
  /** config.json fields beyond the shapes written from `expected` (rope_scaling, sliding_window…). */
  json?: Record<string, unknown>;
  /** Tensors the family has beyond the plain llama / gpt2-like set, TransformerLens names → shape. */
  extra?: (c: TransformerConfig) => Map<string, number[]>;
}

/** Uniform random tensors: matrices scaled by 1/sqrt(fan-in), vectors around `centre` (norm weights 1, biases 0). */
function draw(shapes: Map<string, number[]>, seed: number): Map<string, Float32Array> {
  const rand = seededRandom(seed);
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = /(^|\.)(ln1|ln2|ln_final|q_norm|k_norm)\.w$/.test(name);
    const spread = shape.length === 1 ? (isNorm ? 0.5 : 0.3) : Math.sqrt(3 / shape[0]);
    const centre = shape.length === 1 && isNorm ? 1 : 0;
    out.set(
      name,
      Float32Array.from({ length: n }, () => centre + (2 * rand() - 1) * spread),
    );
  }
  return out;
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

const DTYPE_NAME = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;

/** A llama-family checkpoint; `extra` adds biases (b_Q…) or qwen3's q_norm/k_norm. */
export function writeTinyLlamaFamily(dir: string, modelType: LlamaFamily, opts: FamilyFixtureOptions): HfFixture {
  const c = opts.expected;
  const { dModel: d, dMlp, vocabSize, nHeads, nKvHeads, dHead } = c;
  const shapes = new Map<string, number[]>([
    ['embed.W_E', [vocabSize, d]],
    ['ln_final.w', [d]],
  ]);
  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    shapes.set(`${b}.ln1.w`, [d]).set(`${b}.ln2.w`, [d]);
    shapes
      .set(`${b}.attn.W_Q`, [d, nHeads * dHead])
      .set(`${b}.attn.W_K`, [d, nKvHeads * dHead])
      .set(`${b}.attn.W_V`, [d, nKvHeads * dHead]);
    shapes.set(`${b}.attn.W_O`, [nHeads * dHead, d]);
    shapes.set(`${b}.mlp.W_gate`, [d, dMlp]).set(`${b}.mlp.W_in`, [d, dMlp]).set(`${b}.mlp.W_out`, [dMlp, d]);
  }
  if (!c.tiedEmbeddings) shapes.set('unembed.W_U', [d, vocabSize]);
  for (const [n, s] of opts.extra?.(c) ?? []) shapes.set(n, s);
  const t = draw(shapes, opts.seed ?? 1);
  if (c.tiedEmbeddings) t.set('unembed.W_U', transpose(t.get('embed.W_E')!, vocabSize, d));

  const dtype = opts.dtype ?? 'F32';
  const tensors: Record<string, TensorToWrite> = {};
  const put = (name: string, shape: number[], data: Float32Array) => (tensors[name] = { dtype, shape, data });
  const linear = (name: string, canonical: string, inp: number, out: number) =>
    put(name, [out, inp], transpose(t.get(canonical)!, inp, out));
  const vector = (name: string, canonical: string) =>
    t.has(canonical) && put(name, [t.get(canonical)!.length], t.get(canonical)!);
  put('model.embed_tokens.weight', [vocabSize, d], t.get('embed.W_E')!);
  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    const h = `model.layers.${l}`;
    vector(`${h}.input_layernorm.weight`, `${b}.ln1.w`);
    linear(`${h}.self_attn.q_proj.weight`, `${b}.attn.W_Q`, d, nHeads * dHead);
    linear(`${h}.self_attn.k_proj.weight`, `${b}.attn.W_K`, d, nKvHeads * dHead);
    linear(`${h}.self_attn.v_proj.weight`, `${b}.attn.W_V`, d, nKvHeads * dHead);
    linear(`${h}.self_attn.o_proj.weight`, `${b}.attn.W_O`, nHeads * dHead, d);
    for (const [x, proj] of [
      ['Q', 'q_proj'],
      ['K', 'k_proj'],
      ['V', 'v_proj'],
      ['O', 'o_proj'],
    ])
      vector(`${h}.self_attn.${proj}.bias`, `${b}.attn.b_${x}`);
    vector(`${h}.self_attn.q_norm.weight`, `${b}.attn.q_norm.w`);
    vector(`${h}.self_attn.k_norm.weight`, `${b}.attn.k_norm.w`);
    vector(`${h}.post_attention_layernorm.weight`, `${b}.ln2.w`);
    linear(`${h}.mlp.gate_proj.weight`, `${b}.mlp.W_gate`, d, dMlp);
    linear(`${h}.mlp.up_proj.weight`, `${b}.mlp.W_in`, d, dMlp);
    linear(`${h}.mlp.down_proj.weight`, `${b}.mlp.W_out`, dMlp, d);
    for (const [x, proj] of [
      ['gate', 'gate_proj'],
      ['in', 'up_proj'],
      ['out', 'down_proj'],
    ])
      vector(`${h}.mlp.${proj}.bias`, `${b}.mlp.b_${x}`);
  }
  put('model.norm.weight', [d], t.get('ln_final.w')!);
  if (!c.tiedEmbeddings) linear('lm_head.weight', 'unembed.W_U', d, vocabSize);
  const config = {
    architectures: ['ForCausalLM'],
    model_type: modelType,
    hidden_size: d,
    intermediate_size: dMlp,
    num_hidden_layers: c.nLayers,
    num_attention_heads: nHeads,
    num_key_value_heads: nKvHeads,
    head_dim: dHead,
    max_position_embeddings: c.contextLength,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    hidden_act: 'silu',
    vocab_size: vocabSize,
    bos_token_id: 1,
    eos_token_id: 2,
    tie_word_embeddings: c.tiedEmbeddings,
    torch_dtype: DTYPE_NAME[dtype],
    ...opts.json,
  };
  writeCheckpoint(dir, config, tensors, opts);
  if (opts.tokenizer !== false) {
    if (modelType === 'llama' || modelType === 'mistral') writeLlamaTokenizerJson(dir, vocabSize);
    else writeGpt2TokenizerJson(dir, vocabSize);
  }
  return { dir, weights: inMemory(c, t) };
}

/** A gpt_neox checkpoint (`gpt_neox.` prefix, fused per-head query_key_value, untied embed_out unless tied). */
export function writeTinyNeox(dir: string, opts: FamilyFixtureOptions & { attentionBias?: boolean }): HfFixture {
  const c = opts.expected;
  const { dModel: d, dMlp, vocabSize, nHeads, dHead } = c;
  const bias = opts.attentionBias ?? true;
  const shapes = new Map<string, number[]>([
    ['embed.W_E', [vocabSize, d]],
    ['ln_final.w', [d]],
    ['ln_final.b', [d]],
  ]);
  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    for (const ln of ['ln1', 'ln2']) shapes.set(`${b}.${ln}.w`, [d]).set(`${b}.${ln}.b`, [d]);
    for (const x of ['Q', 'K', 'V']) {
      shapes.set(`${b}.attn.W_${x}`, [d, d]);
      if (bias) shapes.set(`${b}.attn.b_${x}`, [d]);
    }
    shapes.set(`${b}.attn.W_O`, [d, d]);
    if (bias) shapes.set(`${b}.attn.b_O`, [d]);
    shapes
      .set(`${b}.mlp.W_in`, [d, dMlp])
      .set(`${b}.mlp.b_in`, [dMlp])
      .set(`${b}.mlp.W_out`, [dMlp, d])
      .set(`${b}.mlp.b_out`, [d]);
  }
  if (!c.tiedEmbeddings) shapes.set('unembed.W_U', [d, vocabSize]);
  const t = draw(shapes, opts.seed ?? 1);
  if (c.tiedEmbeddings) t.set('unembed.W_U', transpose(t.get('embed.W_E')!, vocabSize, d));

  const dtype = opts.dtype ?? 'F32';
  const tensors: Record<string, TensorToWrite> = {};
  const put = (name: string, shape: number[], data: Float32Array) => (tensors[name] = { dtype, shape, data });
  const p = opts.prefix === false ? '' : 'gpt_neox.';
  put(`${p}embed_in.weight`, [vocabSize, d], t.get('embed.W_E')!);
  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    const h = `${p}layers.${l}`;
    put(`${h}.input_layernorm.weight`, [d], t.get(`${b}.ln1.w`)!);
    put(`${h}.input_layernorm.bias`, [d], t.get(`${b}.ln1.b`)!);
    put(`${h}.post_attention_layernorm.weight`, [d], t.get(`${b}.ln2.w`)!);
    put(`${h}.post_attention_layernorm.bias`, [d], t.get(`${b}.ln2.b`)!);
    // Output row (head h, part j, i) of query_key_value is row h·3·dHead + j·dHead + i.
    const qkv = new Float32Array(3 * d * d);
    const qkvBias = new Float32Array(3 * d);
    ['Q', 'K', 'V'].forEach((x, j) => {
      const rows = transpose(t.get(`${b}.attn.W_${x}`)!, d, d); // [out, in]
      for (let head = 0; head < nHeads; head++) {
        for (let i = 0; i < dHead; i++) {
          const to = head * 3 * dHead + j * dHead + i;
          qkv.set(rows.subarray((head * dHead + i) * d, (head * dHead + i + 1) * d), to * d);
          if (bias) qkvBias[to] = t.get(`${b}.attn.b_${x}`)![head * dHead + i];
        }
      }
    });
    put(`${h}.attention.query_key_value.weight`, [3 * d, d], qkv);
    if (bias) put(`${h}.attention.query_key_value.bias`, [3 * d], qkvBias);
    put(`${h}.attention.dense.weight`, [d, d], transpose(t.get(`${b}.attn.W_O`)!, d, d));
    if (bias) put(`${h}.attention.dense.bias`, [d], t.get(`${b}.attn.b_O`)!);
    // Buffers old checkpoints carry; the reader must ignore them.
    put(
      `${h}.attention.rotary_emb.inv_freq`,
      [(c.rotaryDim ?? dHead) / 2],
      new Float32Array((c.rotaryDim ?? dHead) / 2),
    );
    put(`${h}.mlp.dense_h_to_4h.weight`, [dMlp, d], transpose(t.get(`${b}.mlp.W_in`)!, d, dMlp));
    put(`${h}.mlp.dense_h_to_4h.bias`, [dMlp], t.get(`${b}.mlp.b_in`)!);
    put(`${h}.mlp.dense_4h_to_h.weight`, [d, dMlp], transpose(t.get(`${b}.mlp.W_out`)!, dMlp, d));
    put(`${h}.mlp.dense_4h_to_h.bias`, [d], t.get(`${b}.mlp.b_out`)!);
  }
  put(`${p}final_layer_norm.weight`, [d], t.get('ln_final.w')!);
  put(`${p}final_layer_norm.bias`, [d], t.get('ln_final.b')!);
  if (!c.tiedEmbeddings) put('embed_out.weight', [vocabSize, d], transpose(t.get('unembed.W_U')!, d, vocabSize));
  const config = {
    architectures: ['GPTNeoXForCausalLM'],
    model_type: 'gpt_neox',
    hidden_size: d,
    intermediate_size: dMlp,
    num_hidden_layers: c.nLayers,
    num_attention_heads: nHeads,
    max_position_embeddings: c.contextLength,
    layer_norm_eps: c.normEps,
    rotary_pct: (c.rotaryDim ?? dHead) / dHead,
    rotary_emb_base: c.ropeTheta,
    hidden_act: c.activation,
    use_parallel_residual: c.parallelResidual ?? true,
    attention_bias: bias,
    vocab_size: vocabSize,
    bos_token_id: 0,
    eos_token_id: 0,
    tie_word_embeddings: c.tiedEmbeddings,
    use_cache: true,
    torch_dtype: DTYPE_NAME[dtype],
    ...opts.json,
  };
  writeCheckpoint(dir, config, tensors, opts);
  if (opts.tokenizer !== false) writeGpt2TokenizerJson(dir, vocabSize);
  return { dir, weights: inMemory(c, t) };
}
