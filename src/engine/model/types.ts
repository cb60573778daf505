/**
 * The in-memory form every checkpoint reader produces and every graph builder consumes, so that
 * llama2.c and Hugging Face checkpoints of one architecture share one ONNX builder.
 *
 * Tensor names follow TransformerLens; every matrix is stored [in, out] (y = x · W), row-major:
 *   embed.W_E [vocab, d]                 pos_embed.W_pos [ctx, d]              (gpt2)
 *   blocks.{L}.ln1.w [d]  .ln1.b [d] (gpt2)   blocks.{L}.ln2.w [d]  .ln2.b [d] (gpt2)
 *   blocks.{L}.attn.W_Q [d, nHeads*dHead]   .W_K/.W_V [d, nKvHeads*dHead]   .W_O [nHeads*dHead, d]
 *   blocks.{L}.attn.b_Q/b_K/b_V/b_O (gpt2)
 *   blocks.{L}.mlp.W_in [d, dMlp]  .W_out [dMlp, d]  .W_gate [d, dMlp] (llama)  .b_in/.b_out (gpt2)
 *   ln_final.w [d]  ln_final.b [d] (gpt2)   unembed.W_U [d, vocab]   unembed.b_U [vocab] (optional)
 */
import type { Tokenizer } from '../tokenizers/types.js';

export type Architecture = 'llama' | 'gpt2' | 'gemma2' | 'gemma3';
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
  /** gpt2 only: 'gelu_new' (tanh approximation) or 'gelu'. */
  activation: 'silu' | 'gelu_new' | 'gelu';
  tiedEmbeddings: boolean;
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

export interface TransformerWeights {
  config: TransformerConfig;
  /** Returns the named tensor as float32; throws AtlasError BAD_FILE naming it when absent. */
  tensor(name: string): Float32Array;
  has(name: string): boolean;
  /** Rows [start, start + count) of an untransformed tensor, so big embeddings can be streamed. */
  rows?(name: string, start: number, count: number): Float32Array;
}

export const HOOK_KINDS = ['hook_resid_pre', 'hook_resid_mid', 'hook_resid_post', 'hook_attn_out', 'hook_mlp_out'] as const;
export type HookKind = (typeof HOOK_KINDS)[number];

export function hookName(layer: number, kind: HookKind): string {
  return `blocks.${layer}.${kind}`;
}

/**
 * Whether a hook point is d_model wide. Per-head hooks (attn.hook_q/k/v/z: heads·d_head) and MLP
 * hidden activations (mlp.hook_pre/post: d_mlp) are not; their width shows when the model runs.
 */
export function hasModelWidth(hook: string): boolean {
  return !/\.(attn\.hook_(q|k|v|z)|mlp\.hook_(pre|pre_linear|post))$/.test(hook);
}

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
}

/** Activations of one hook for a padded batch: data is [batch, seq, d] float32, seq = longest sequence. */
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

/** Incremental decoding of one sequence with a KV cache. */
export interface Decoder {
  /** Appends tokens (at least one) and returns the logits [vocab] after the last of them. */
  feed(tokens: number[]): Promise<Float32Array>;
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
