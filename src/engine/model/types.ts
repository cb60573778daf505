/**
 * The in-memory form every checkpoint reader produces and every graph builder consumes, so that
 * llama2.c and Hugging Face checkpoints of one architecture share one ONNX builder.
 *
 * Tensor names follow TransformerLens; every matrix is stored [in, out] (y = x · W), row-major:
 *   embed.W_E [vocab, d]                 pos_embed.W_pos [ctx, d]              (gpt2)
 *   blocks.{L}.ln1.w [d]  .ln1.b [d] (gpt2)   blocks.{L}.ln2.w [d]  .ln2.b [d] (gpt2)
 *   blocks.{L}.attn.W_Q [d, nHeads*dHead]   .W_K/.W_V [d, nKvHeads*dHead]   .W_O [nHeads*dHead, d]
 *   blocks.{L}.attn.b_Q/b_K/b_V/b_O (gpt2, gpt_neox; qwen2 b_Q/b_K/b_V; llama-family attention_bias)
 *   blocks.{L}.attn.q_norm.w / .k_norm.w [dHead] (qwen3: RMSNorm of each head's q and k)
 *   blocks.{L}.mlp.W_in [d, dMlp]  .W_out [dMlp, d]  .W_gate [d, dMlp] (llama family)
 *   blocks.{L}.mlp.b_in/.b_out (gpt2, gpt_neox)  .b_gate (llama-family mlp_bias)
 *   ln_final.w [d]  ln_final.b [d] (LayerNorm families)   unembed.W_U [d, vocab]   unembed.b_U [vocab] (optional)
 */
import type { Tokenizer } from '../tokenizers/types.js';

/** Graph families: gpt2; the llama family (llama, mistral, qwen2, qwen3); gpt_neox (Pythia); gemma2/gemma3. */
export type Architecture = 'llama' | 'gpt2' | 'mistral' | 'qwen2' | 'qwen3' | 'gpt_neox' | 'gemma2' | 'gemma3';
export type CheckpointFormat = 'llama2c' | 'huggingface' | 'onnx';

export interface TransformerConfig {
  architecture: Architecture;
  dModel: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  dHead: number;
  dMlp: number;
  vocabSize: number;
  contextLength: number;
  normEps: number;
  /** llama only. */
  ropeTheta: number;
  /** 'interleaved': pairs (2i, 2i+1) as llama2.c; 'half': rotate_half as Hugging Face llama. */
  ropeStyle: 'interleaved' | 'half';
  /** MLP activation: silu (gated, llama family); 'gelu_new' (tanh approximation) or 'gelu' (erf). */
  activation: 'silu' | 'gelu_new' | 'gelu';
  tiedEmbeddings: boolean;
  /** Dims of each head that RoPE rotates, the first ones (gpt_neox rotary_pct); dHead when absent. */
  rotaryDim?: number;
  /** RoPE frequency scaling (config rope_scaling); none when absent. */
  ropeScaling?: RopeScaling;
  /** Per layer: keys j a query i sees satisfy i − j < window; null = full causal attention. */
  slidingWindows?: (number | null)[];
  /** gpt_neox use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x)). */
  parallelResidual?: boolean;
  /** gemma2 / gemma3 only: what the Gemma block adds to the llama-style fields above. */
  gemma?: GemmaOptions;
}

/** Gemma 2/3 specifics (read from config.json by checkpoints/gemma.ts; semantics in onnx/gemma-graph.ts). */
export interface GemmaOptions {
  /** √d_model rounded to the embedding's stored dtype, as HF casts the normalizer. */
  embedScale: number;
  /** query_pre_attn_scalar^-½. */
  attnScale: number;
  /** tanh(x/c)·c on attention logits and on the final logits; null: none. */
  attnSoftcap: number | null;
  finalSoftcap: number | null;
  /** Per layer: the sliding window (keys with q − k < window are visible), or null for global layers. */
  slidingWindow: (number | null)[];
  /** Per layer: rope base and the linear position scaling factor (1: none). */
  rope: { theta: number; linearFactor: number }[];
  /** gemma3: per-head RMSNorm of queries and keys before rotation. */
  qkNorm: boolean;
}

/**
 * RoPE scalings as transformers' modeling_rope_utils computes them; yarn's attention factor (which
 * scales cos and sin) is resolved from attention_factor / mscale / mscale_all_dim when parsed.
 */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number; maxPositions: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  | {
      type: 'yarn';
      factor: number;
      originalMaxPositions: number;
      attentionFactor: number;
      betaFast: number;
      betaSlow: number;
      truncate: boolean;
    };

export interface TransformerWeights {
  config: TransformerConfig;
  /** Returns the named tensor as float32; throws AtlasError BAD_FILE naming it when absent. */
  tensor(name: string): Float32Array;
  has(name: string): boolean;
  /** Rows [start, start + count) of an untransformed tensor, so big embeddings can be streamed. */
  rows?(name: string, start: number, count: number): Float32Array;
}

/**
 * Per-block hook points, TransformerLens names, in forward order. attn.hook_q/k/v are the projections
 * (bias included) before any q/k norm or rotation, [heads·d_head] flattened; attn.hook_rot_q/k the
 * rotated ones (rotary families); attn.hook_z the heads' attention-weighted values before W_O;
 * ln*.hook_normalized the norm's output (LayerNorm: with its weight and bias; RMSNorm: x/rms before the
 * weight, as TransformerLens hooks them); mlp.hook_pre the (gate) pre-activation, mlp.hook_pre_linear
 * the up projection of a gated MLP, mlp.hook_post the hidden activation fed to W_out.
 */
export const HOOK_KINDS = [
  'hook_resid_pre',
  'ln1.hook_normalized',
  'attn.hook_q',
  'attn.hook_k',
  'attn.hook_v',
  'attn.hook_rot_q',
  'attn.hook_rot_k',
  'attn.hook_z',
  'hook_attn_out',
  'hook_resid_mid',
  'ln2.hook_normalized',
  'mlp.hook_pre',
  'mlp.hook_pre_linear',
  'mlp.hook_post',
  'hook_mlp_out',
  'hook_resid_post',
] as const;
export type HookKind = (typeof HOOK_KINDS)[number];

export function hookName(layer: number, kind: HookKind): string {
  return `blocks.${layer}.${kind}`;
}

/** The final norm's output, before the unembedding. */
export const FINAL_NORM_HOOK = 'ln_final.hook_normalized';
/** Token embeddings, and the learned positional embeddings of gpt2 (before they are added). */
export const EMBED_HOOK = 'hook_embed';
export const POS_EMBED_HOOK = 'hook_pos_embed';

/** Catalog facts about a loaded model. */
export interface ModelInfo {
  architecture: Architecture | 'onnx';
  format: CheckpointFormat;
  dModel: number;
  nLayers: number;
  vocabSize: number;
  contextLength: number;
  /** Whether sequences start with the tokenizer's BOS token. */
  prependBos: boolean;
  /** Hook points this model can return, TransformerLens names. */
  hookPoints: string[];
  /** Width of each hook point's vectors (d_model, heads·d_head, d_mlp…). */
  hookWidths: Record<string, number>;
}

/** Activations of one hook for a padded batch: data is [batch, seq, width] float32, seq = longest sequence. */
export interface HookBatch {
  dims: [number, number, number];
  data: Float32Array;
}

/** What the logit lens needs: the final norm and the unembedding. */
export interface Unembedding {
  finalNorm: { kind: 'rms' | 'layer'; weight: Float32Array; bias: Float32Array | null; eps: number } | null;
  /** [d, vocab] */
  W_U: Float32Array;
  b_U: Float32Array | null;
}

export interface RunHooksOptions {
  /** Keep the first contextLength tokens of longer sequences instead of refusing them. */
  truncate?: boolean;
}

/** Per steered hook, [tokens, d_model] values added at that hook for the tokens being fed. */
export type SteeringFeed = Map<string, Float32Array>;

/** Incremental decoding of one sequence with a KV cache. */
export interface Decoder {
  /** Appends tokens (at least one), steered where asked, and returns the logits [vocab] after the last of them. */
  feed(tokens: number[], steering?: SteeringFeed): Promise<Float32Array>;
  /** The hook's values [tokens, width] for these tokens (steering at earlier hooks applied), appending nothing. */
  peek(tokens: number[], hook: string, steering?: SteeringFeed): Promise<Float32Array>;
  /** Hooks `steering` may name. */
  readonly steerableHooks: readonly string[];
  /** Tokens fed so far. */
  readonly length: number;
}

export interface LoadedModel {
  info: ModelInfo;
  tokenizer: Tokenizer;
  executionProvider: 'cuda' | 'cpu';
  /**
   * Runs token sequences of different lengths as one padded batch and returns the requested hook
   * activations; each sequence's rows equal a run of that sequence alone. Unknown hook names and
   * sequences longer than the context are refused with coded errors.
   */
  runHooks(batch: number[][], hooks: string[], opts?: RunHooksOptions): Promise<Map<string, HookBatch>>;
  /** A fresh KV-cached decoder for generation; absent when the graph has no cache inputs. */
  decoder?(): Decoder;
  /** Null for ready ONNX files that do not expose their weights. */
  unembedding(): Unembedding | null;
  close(): Promise<void>;
}
