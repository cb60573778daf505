/**
 * Reads Hugging Face checkpoint folders (`config.json` plus `model.safetensors` or a sharded
 * `model.safetensors.index.json`) of model_type gpt2 or llama into TransformerWeights.
 *
 * Every tensor's presence and shape is checked against config.json when the folder is opened, so
 * a bad checkpoint fails before any graph is built; the data itself is read (and converted from
 * f16/bf16 to f32) only when a tensor is asked for. Config parsing of the llama family and gpt_neox
 * lives in hf-families.ts.
 *
 * Name and layout mapping to TransformerLens names (matrices [in, out]):
 *   gpt2 (`transformer.` prefix optional; Conv1D weights are already [in, out])
 *     wte → embed.W_E, wpe → pos_embed.W_pos, h.L.ln_1/ln_2 → blocks.L.ln1/ln2,
 *     h.L.attn.c_attn [d, 3d] → W_Q | W_K | W_V (column thirds, biases likewise), c_proj → W_O,
 *     h.L.mlp.c_fc → W_in, mlp.c_proj → W_out, ln_f → ln_final, lm_head [vocab, d]ᵀ or wteᵀ → W_U.
 *   llama (`model.` prefix optional; nn.Linear weights are [out, in], so transposed)
 *     embed_tokens → embed.W_E, q/k/v/o_proj → W_Q/W_K/W_V/W_O, gate_proj → W_gate, up_proj → W_in,
 *     down_proj → W_out, input_layernorm → ln1.w, post_attention_layernorm → ln2.w, norm → ln_final.w,
 *     lm_head or embed_tokens (tied) → W_U. HF permutes q/k for rotate_half RoPE: ropeStyle 'half'.
 *   mistral, qwen2, qwen3: as llama, plus q/k/v_proj.bias → b_Q/b_K/b_V (qwen2; llama and qwen3 with
 *     attention_bias, then o_proj.bias → b_O too), mlp biases → b_gate/b_in/b_out (llama mlp_bias),
 *     self_attn.q_norm/k_norm → attn.q_norm.w/k_norm.w (qwen3).
 *   gpt_neox (`gpt_neox.` prefix optional): embed_in → embed.W_E, input_layernorm/post_attention_layernorm
 *     → ln1/ln2 (w, b), attention.query_key_value [3d, d] laid out per head as [q_h; k_h; v_h] row
 *     blocks → W_Q/W_K/W_V (and biases), attention.dense → W_O, mlp.dense_h_to_4h → W_in,
 *     mlp.dense_4h_to_h → W_out, final_layer_norm → ln_final, embed_out (or embed_in, tied) → W_U.
 *   gemma2, gemma3_text, gemma3: see checkpoints/gemma.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AtlasError } from '../../errors.js';
import { SafetensorsFile, assertShape, type TensorInfo } from '../tensors/safetensors.js';
import type { ModelInfo, TransformerConfig, TransformerWeights } from '../model/types.js';
import { addsBos, hookInfo } from '../model/hooks.js';
import { checkGpt2Keys, llamaFamilyBiases, readLlamaFamilyConfig, readNeoxConfig } from './hf-families.js';
import { GEMMA_MODEL_TYPES, gemmaEmbedScale, gemmaSources, isGemmaModelType, readGemmaConfig } from './gemma.js';

export const SUPPORTED_HF_MODEL_TYPES = [
  'gpt2',
  'llama',
  'mistral',
  'qwen2',
  'qwen3',
  'gpt_neox',
  ...GEMMA_MODEL_TYPES,
] as const;

const SINGLE_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';

/** True when `dir` looks like a Hugging Face checkpoint folder. */
export function isHfCheckpointDir(dir: string): boolean {
  return existsSync(join(dir, 'config.json'));
}

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new AtlasError('BAD_FILE', `Cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through to the error below
  }
  throw new AtlasError('BAD_FILE', `${path} is not a JSON object.`);
}

/** Reads config.json into a TransformerConfig, refusing options whose math the graphs do not implement. */
export function readHfConfig(dir: string): TransformerConfig {
  const path = join(dir, 'config.json');
  const raw = readJson(path);
  const int = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new AtlasError(
        'BAD_FILE',
        `${path}: "${key}" must be a positive integer, got ${JSON.stringify(raw[key])}.`,
      );
    }
    return v;
  };
  const num = (key: string, fallback: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0))
      throw new AtlasError('BAD_FILE', `${path}: "${key}" must be a positive number, got ${JSON.stringify(raw[key])}.`);
    return v;
  };
  const refuse = (what: string) => {
    throw new AtlasError('UNSUPPORTED', `${path}: ${what} is not supported.`);
  };
  const modelType = raw.model_type;
  if (isGemmaModelType(modelType)) return readGemmaConfig(raw, path);

  if (modelType === 'gpt2') {
    checkGpt2Keys(raw, path);
    const dModel = int('n_embd');
    const nHeads = int('n_head');
    const act = raw.activation_function ?? 'gelu_new';
    // gelu_pytorch_tanh is the same tanh approximation as gelu_new.
    const activation =
      act === 'gelu_new' || act === 'gelu_pytorch_tanh'
        ? 'gelu_new'
        : act === 'gelu'
          ? 'gelu'
          : refuse(`activation_function ${JSON.stringify(act)} (supported: gelu_new, gelu)`);
    if (raw.scale_attn_weights === false) refuse('scale_attn_weights: false');
    if (raw.scale_attn_by_inverse_layer_idx === true) refuse('scale_attn_by_inverse_layer_idx: true');
    if (dModel % nHeads !== 0)
      throw new AtlasError('BAD_FILE', `${path}: n_embd ${dModel} is not divisible by n_head ${nHeads}.`);
    return {
      architecture: 'gpt2',
      dModel,
      nLayers: int('n_layer'),
      nHeads,
      nKvHeads: nHeads,
      dHead: dModel / nHeads,
      dMlp: raw.n_inner == null ? 4 * dModel : int('n_inner'),
      vocabSize: int('vocab_size'),
      contextLength: raw.n_positions == null ? int('n_ctx') : int('n_positions'),
      normEps: num('layer_norm_epsilon', 1e-5),
      ropeTheta: 0,
      ropeStyle: 'half',
      activation: activation as 'gelu_new' | 'gelu',
      tiedEmbeddings: raw.tie_word_embeddings !== false,
    };
  }

  if (modelType === 'llama' || modelType === 'mistral' || modelType === 'qwen2' || modelType === 'qwen3')
    return readLlamaFamilyConfig(raw, path, modelType);
  if (modelType === 'gpt_neox') return readNeoxConfig(raw, path);

  throw new AtlasError(
    'UNSUPPORTED',
    `${path} has model_type ${JSON.stringify(modelType)}; supported model types: ` +
      `${SUPPORTED_HF_MODEL_TYPES.join(', ')}.`,
  );
}

/** Catalog facts from config.json alone (no tensors read). */
export function readHfModelInfo(dir: string): ModelInfo {
  const c = readHfConfig(dir);
  return {
    architecture: c.architecture,
    format: 'huggingface',
    dModel: c.dModel,
    nLayers: c.nLayers,
    vocabSize: c.vocabSize,
    contextLength: c.contextLength,
    prependBos: defaultBos(dir, c),
    ...hookInfo(c),
  };
}

/**
 * Whether sequences start with BOS: tokenizer_config.json's add_bos_token when it says, else the
 * family's training convention (llama, mistral: <s> / <|begin_of_text|>; gpt2, qwen, pythia: none).
 */
function defaultBos(dir: string, c: TransformerConfig): boolean {
  const tc = join(dir, 'tokenizer_config.json');
  if (existsSync(tc)) {
    const add = readJson(tc).add_bos_token;
    if (typeof add === 'boolean') return add;
  }
  return addsBos(c);
}

interface Located {
  file: string;
  info: TensorInfo;
}

/** Every tensor of the checkpoint with the shard it lives in; opening each shard checks it is complete. */
function indexTensors(dir: string): Map<string, Located> {
  let files: string[];
  if (existsSync(join(dir, INDEX_FILE))) {
    const index = readJson(join(dir, INDEX_FILE));
    const map = index.weight_map;
    if (!map || typeof map !== 'object')
      throw new AtlasError('BAD_FILE', `${join(dir, INDEX_FILE)} has no "weight_map" object.`);
    files = [...new Set(Object.values(map as Record<string, string>))];
  } else if (existsSync(join(dir, SINGLE_FILE))) {
    files = [SINGLE_FILE];
  } else if (existsSync(join(dir, 'pytorch_model.bin'))) {
    throw new AtlasError(
      'UNSUPPORTED',
      `${dir} holds only pytorch_model.bin; convert it to model.safetensors (for example with transformers' ` +
        `save_pretrained(safe_serialization=True)).`,
    );
  } else {
    throw new AtlasError('BAD_FILE', `${dir} has config.json but neither ${SINGLE_FILE} nor ${INDEX_FILE}.`);
  }
  const out = new Map<string, Located>();
  for (const f of files) {
    const path = join(dir, f);
    const st = SafetensorsFile.open(path);
    try {
      for (const [name, info] of st.tensors) out.set(name, { file: path, info });
    } finally {
      st.close();
    }
  }
  return out;
}

/** How one canonical tensor is made from a checkpoint tensor. */
interface Source {
  hf: string;
  /** Shape the checkpoint tensor must have. */
  shape: number[];
  transform: 'none' | 'transpose' | { columns: [number, number] } | FusedHeads;
}

/** Rows of one part (0 q, 1 k, 2 v) of a per-head fused [heads·3·headSize, ...] tensor, then transposed if 2-D. */
interface FusedHeads {
  part: number;
  heads: number;
  headSize: number;
}

function fusedHeadRows(m: Float32Array, cols: number, p: FusedHeads): Float32Array {
  const out = new Float32Array(p.heads * p.headSize * cols);
  for (let h = 0; h < p.heads; h++) {
    const from = (h * 3 + p.part) * p.headSize * cols;
    out.set(m.subarray(from, from + p.headSize * cols), h * p.headSize * cols);
  }
  return out;
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c];
  return out;
}

function sliceColumns(m: Float32Array, rows: number, cols: number, from: number, to: number): Float32Array {
  const width = to - from;
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(m.subarray(r * cols + from, r * cols + to), r * width);
  return out;
}

function gpt2Sources(c: TransformerConfig, prefix: string, hasLmHead: boolean): Map<string, Source> {
  const { dModel: d, dMlp, vocabSize } = c;
  const s = new Map<string, Source>();
  const plain = (name: string, hf: string, shape: number[]) =>
    s.set(name, { hf: prefix + hf, shape, transform: 'none' });
  plain('embed.W_E', 'wte.weight', [vocabSize, d]);
  plain('pos_embed.W_pos', 'wpe.weight', [c.contextLength, d]);
  for (let L = 0; L < c.nLayers; L++) {
    const p = `blocks.${L}`;
    const h = `h.${L}`;
    plain(`${p}.ln1.w`, `${h}.ln_1.weight`, [d]);
    plain(`${p}.ln1.b`, `${h}.ln_1.bias`, [d]);
    ['Q', 'K', 'V'].forEach((x, i) => {
      s.set(`${p}.attn.W_${x}`, {
        hf: `${prefix}${h}.attn.c_attn.weight`,
        shape: [d, 3 * d],
        transform: { columns: [i * d, (i + 1) * d] },
      });
      s.set(`${p}.attn.b_${x}`, {
        hf: `${prefix}${h}.attn.c_attn.bias`,
        shape: [3 * d],
        transform: { columns: [i * d, (i + 1) * d] },
      });
    });
    plain(`${p}.attn.W_O`, `${h}.attn.c_proj.weight`, [d, d]);
    plain(`${p}.attn.b_O`, `${h}.attn.c_proj.bias`, [d]);
    plain(`${p}.ln2.w`, `${h}.ln_2.weight`, [d]);
    plain(`${p}.ln2.b`, `${h}.ln_2.bias`, [d]);
    plain(`${p}.mlp.W_in`, `${h}.mlp.c_fc.weight`, [d, dMlp]);
    plain(`${p}.mlp.b_in`, `${h}.mlp.c_fc.bias`, [dMlp]);
    plain(`${p}.mlp.W_out`, `${h}.mlp.c_proj.weight`, [dMlp, d]);
    plain(`${p}.mlp.b_out`, `${h}.mlp.c_proj.bias`, [d]);
  }
  plain('ln_final.w', 'ln_f.weight', [d]);
  plain('ln_final.b', 'ln_f.bias', [d]);
  s.set('unembed.W_U', {
    hf: hasLmHead ? 'lm_head.weight' : `${prefix}wte.weight`,
    shape: [vocabSize, d],
    transform: 'transpose',
  });
  return s;
}

function llamaSources(
  c: TransformerConfig,
  prefix: string,
  lmHead: string,
  bias: { qkv: boolean; o: boolean; mlp: boolean },
): Map<string, Source> {
  const { dModel: d, dMlp, vocabSize, nHeads, nKvHeads, dHead } = c;
  const s = new Map<string, Source>();
  // nn.Linear stores [out, in]; TransformerLens wants [in, out].
  const linear = (name: string, hf: string, out: number, inp: number) =>
    s.set(name, { hf, shape: [out, inp], transform: 'transpose' });
  s.set('embed.W_E', { hf: `${prefix}embed_tokens.weight`, shape: [vocabSize, d], transform: 'none' });
  for (let L = 0; L < c.nLayers; L++) {
    const p = `blocks.${L}`;
    const h = `${prefix}layers.${L}`;
    s.set(`${p}.ln1.w`, { hf: `${h}.input_layernorm.weight`, shape: [d], transform: 'none' });
    linear(`${p}.attn.W_Q`, `${h}.self_attn.q_proj.weight`, nHeads * dHead, d);
    linear(`${p}.attn.W_K`, `${h}.self_attn.k_proj.weight`, nKvHeads * dHead, d);
    linear(`${p}.attn.W_V`, `${h}.self_attn.v_proj.weight`, nKvHeads * dHead, d);
    linear(`${p}.attn.W_O`, `${h}.self_attn.o_proj.weight`, d, nHeads * dHead);
    s.set(`${p}.ln2.w`, { hf: `${h}.post_attention_layernorm.weight`, shape: [d], transform: 'none' });
    linear(`${p}.mlp.W_gate`, `${h}.mlp.gate_proj.weight`, dMlp, d);
    linear(`${p}.mlp.W_in`, `${h}.mlp.up_proj.weight`, dMlp, d);
    linear(`${p}.mlp.W_out`, `${h}.mlp.down_proj.weight`, d, dMlp);
    const vector = (name: string, hf: string, n: number) => s.set(name, { hf, shape: [n], transform: 'none' });
    if (bias.qkv) {
      vector(`${p}.attn.b_Q`, `${h}.self_attn.q_proj.bias`, nHeads * dHead);
      vector(`${p}.attn.b_K`, `${h}.self_attn.k_proj.bias`, nKvHeads * dHead);
      vector(`${p}.attn.b_V`, `${h}.self_attn.v_proj.bias`, nKvHeads * dHead);
    }
    if (bias.o) vector(`${p}.attn.b_O`, `${h}.self_attn.o_proj.bias`, d);
    if (bias.mlp) {
      vector(`${p}.mlp.b_gate`, `${h}.mlp.gate_proj.bias`, dMlp);
      vector(`${p}.mlp.b_in`, `${h}.mlp.up_proj.bias`, dMlp);
      vector(`${p}.mlp.b_out`, `${h}.mlp.down_proj.bias`, d);
    }
    if (c.architecture === 'qwen3') {
      vector(`${p}.attn.q_norm.w`, `${h}.self_attn.q_norm.weight`, dHead);
      vector(`${p}.attn.k_norm.w`, `${h}.self_attn.k_norm.weight`, dHead);
    }
  }
  s.set('ln_final.w', { hf: `${prefix}norm.weight`, shape: [d], transform: 'none' });
  linear('unembed.W_U', lmHead, vocabSize, d);
  return s;
}

function neoxSources(c: TransformerConfig, prefix: string, bias: boolean): Map<string, Source> {
  const { dModel: d, dMlp, vocabSize, nHeads, dHead } = c;
  const s = new Map<string, Source>();
  const plain = (name: string, hf: string, shape: number[]) =>
    s.set(name, { hf: prefix + hf, shape, transform: 'none' });
  const linear = (name: string, hf: string, out: number, inp: number) =>
    s.set(name, { hf: prefix + hf, shape: [out, inp], transform: 'transpose' });
  plain('embed.W_E', 'embed_in.weight', [vocabSize, d]);
  for (let L = 0; L < c.nLayers; L++) {
    const p = `blocks.${L}`;
    const h = `layers.${L}`;
    plain(`${p}.ln1.w`, `${h}.input_layernorm.weight`, [d]);
    plain(`${p}.ln1.b`, `${h}.input_layernorm.bias`, [d]);
    plain(`${p}.ln2.w`, `${h}.post_attention_layernorm.weight`, [d]);
    plain(`${p}.ln2.b`, `${h}.post_attention_layernorm.bias`, [d]);
    ['Q', 'K', 'V'].forEach((x, part) => {
      const fused = { part, heads: nHeads, headSize: dHead };
      s.set(`${p}.attn.W_${x}`, {
        hf: `${prefix}${h}.attention.query_key_value.weight`,
        shape: [3 * d, d],
        transform: fused,
      });
      if (bias)
        s.set(`${p}.attn.b_${x}`, {
          hf: `${prefix}${h}.attention.query_key_value.bias`,
          shape: [3 * d],
          transform: fused,
        });
    });
    linear(`${p}.attn.W_O`, `${h}.attention.dense.weight`, d, d);
    if (bias) plain(`${p}.attn.b_O`, `${h}.attention.dense.bias`, [d]);
    linear(`${p}.mlp.W_in`, `${h}.mlp.dense_h_to_4h.weight`, dMlp, d);
    plain(`${p}.mlp.b_in`, `${h}.mlp.dense_h_to_4h.bias`, [dMlp]);
    linear(`${p}.mlp.W_out`, `${h}.mlp.dense_4h_to_h.weight`, d, dMlp);
    plain(`${p}.mlp.b_out`, `${h}.mlp.dense_4h_to_h.bias`, [d]);
  }
  plain('ln_final.w', 'final_layer_norm.weight', [d]);
  plain('ln_final.b', 'final_layer_norm.bias', [d]);
  // embed_out sits outside the gpt_neox. prefix.
  s.set(
    'unembed.W_U',
    c.tiedEmbeddings
      ? { hf: `${prefix}embed_in.weight`, shape: [vocabSize, d], transform: 'transpose' }
      : { hf: 'embed_out.weight', shape: [vocabSize, d], transform: 'transpose' },
  );
  return s;
}

/**
 * Opens a Hugging Face checkpoint folder. Throws UNSUPPORTED for other model types, BAD_FILE naming
 * the tensor for a missing one, naming it with both shapes for a misshapen one, and for truncated files.
 */
export function loadHfCheckpoint(dir: string): TransformerWeights {
  const config = readHfConfig(dir);
  const tensors = indexTensors(dir);
  const has = (n: string) => tensors.has(n);
  let sources: Map<string, Source>;
  if (config.architecture === 'gpt2') {
    const prefix = has('transformer.wte.weight') ? 'transformer.' : '';
    const hasLmHead = has('lm_head.weight');
    config.tiedEmbeddings = !hasLmHead;
    sources = gpt2Sources(config, prefix, hasLmHead);
  } else if (config.architecture === 'gpt_neox') {
    const prefix = has('gpt_neox.embed_in.weight') ? 'gpt_neox.' : '';
    sources = neoxSources(config, prefix, readJson(join(dir, 'config.json')).attention_bias !== false);
  } else if (config.gemma) {
    sources = gemmaSources(config, has);
    // HF casts the √d normalizer to the dtype the embedding is stored in.
    const embed = tensors.get(sources.get('embed.W_E')!.hf);
    if (embed) config.gemma.embedScale = gemmaEmbedScale(config.dModel, embed.info.dtype);
  } else {
    const prefix = has('model.embed_tokens.weight') ? 'model.' : '';
    // An lm_head present in the file wins; without one the embedding must be tied.
    const lmHead = has('lm_head.weight')
      ? 'lm_head.weight'
      : config.tiedEmbeddings
        ? `${prefix}embed_tokens.weight`
        : 'lm_head.weight';
    config.tiedEmbeddings = lmHead !== 'lm_head.weight';
    sources = llamaSources(
      config,
      prefix,
      lmHead,
      llamaFamilyBiases(readJson(join(dir, 'config.json')), config.architecture),
    );
  }

  for (const src of sources.values()) {
    const t = tensors.get(src.hf);
    if (!t)
      throw new AtlasError(
        'BAD_FILE',
        `${dir}: the checkpoint has no tensor "${src.hf}" (a ${config.architecture} model with ${config.nLayers} ` +
          `layers needs it).`,
      );
    assertShape(t.file, src.hf, t.info.shape, src.shape);
  }

  return {
    config,
    has: (name) => sources.has(name),
    rows(name, start, count) {
      const src = sources.get(name);
      if (!src || src.transform !== 'none')
        throw new AtlasError('BAD_FILE', `${dir}: tensor "${name}" cannot be read by rows.`);
      const st = SafetensorsFile.open(tensors.get(src.hf)!.file);
      try {
        return st.readRowsF32(src.hf, start, count);
      } finally {
        st.close();
      }
    },
    tensor(name) {
      const src = sources.get(name);
      if (!src)
        throw new AtlasError('BAD_FILE', `${dir}: a ${config.architecture} checkpoint has no tensor "${name}".`);
      const loc = tensors.get(src.hf)!;
      const st = SafetensorsFile.open(loc.file);
      let data: Float32Array;
      try {
        data = st.readF32(src.hf, src.shape);
      } finally {
        st.close();
      }
      if (src.transform === 'none') return data;
      const rows = src.shape.length === 1 ? 1 : src.shape[0];
      const cols = src.shape[src.shape.length - 1];
      if (src.transform === 'transpose') return transpose(data, rows, cols);
      if ('part' in src.transform) {
        if (src.shape.length === 1) return fusedHeadRows(data, 1, src.transform);
        return transpose(fusedHeadRows(data, cols, src.transform), rows / 3, cols);
      }
      return sliceColumns(data, rows, cols, src.transform.columns[0], src.transform.columns[1]);
    },
  };
}
