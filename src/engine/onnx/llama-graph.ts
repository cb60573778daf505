/**
 * ONNX graph (opset 17) of the LLaMA family (llama, mistral, qwen2, qwen3; llama2.c checkpoints too)
 * built from TransformerWeights, with the inputs and outputs documented in layers.ts (every hook of
 * model/hooks.ts, logits, KV cache). One graph serves the hook runner (empty past) and incremental
 * generation (past = previous presents).
 *
 * Per block (x = resid_pre; optional parts present when the checkpoint has their tensors):
 *   h = RMSNorm(x)                                                    (ln1.hook_normalized: x/rms)
 *   q, k, v = h W_Q + b_Q, h W_K + b_K, h W_V + b_V                     (attn.hook_q/k/v)
 *   q, k = RMSNorm_head(q), RMSNorm_head(k) (qwen3 q_norm/k_norm), then RoPE (onnx/rope.ts)  (attn.hook_rot_q/k)
 *   z = softmax(q·kᵀ/√d_head + mask) v, mask causal (or a sliding window i − j < W on that layer)  (attn.hook_z)
 *   attn_out = z W_O + b_O;  mid = x + attn_out                         (hook_attn_out, hook_resid_mid)
 *   h2 = RMSNorm(mid);  pre = h2 W_gate + b_gate;  lin = h2 W_in + b_in;  post = silu(pre) * lin
 *                                                                     (mlp.hook_pre, hook_pre_linear, hook_post)
 *   mlp_out = post W_out + b_out;  resid_post = mid + mlp_out            (hook_mlp_out, hook_resid_post)
 * logits = RMSNorm(resid_post) W_U (+ b_U)                             (ln_final.hook_normalized)
 * Each residual-stream hook adds its steering input (layers.ts) before the layers after it read it.
 */
import { AtlasError } from '../../errors.js';
import {
  EMBED_HOOK,
  FINAL_NORM_HOOK,
  hookName,
  type Architecture,
  type HookKind,
  type TransformerWeights,
} from '../model/types.js';
import type { GraphSpec } from './proto.js';
import {
  GraphBuilder,
  checkedTensor,
  attention,
  mergeHeads,
  positionsAndMask,
  rmsNorm,
  splitHeads,
  steered,
  transformerIO,
} from './layers.js';
import { applyRope, ropeAngles } from './rope.js';

/** Bump when the graph changes: it is part of the on-disk cache key. */
export const LLAMA_GRAPH_VERSION = 3;

export const LLAMA_FAMILY: readonly Architecture[] = ['llama', 'mistral', 'qwen2', 'qwen3'];

export function buildLlamaGraph(w: TransformerWeights): GraphSpec {
  const c = w.config;
  if (!LLAMA_FAMILY.includes(c.architecture))
    throw new AtlasError('UNSUPPORTED', `The llama graph builder cannot build architecture "${c.architecture}".`);
  if (c.nHeads % c.nKvHeads !== 0) {
    throw new AtlasError('BAD_FILE', `n_heads (${c.nHeads}) must be a multiple of n_kv_heads (${c.nKvHeads}).`);
  }
  const { dModel: d, nHeads, nKvHeads, dHead, dMlp, vocabSize } = c;
  const g = new GraphBuilder();
  const f = (name: string, dims: number[]) => g.float(name, dims, checkedTensor(w, name, dims));
  const masks = positionsAndMask(g);
  const rope = ropeAngles(g, c, masks.positions);

  /** x W (+ b when the checkpoint has the bias). */
  const linear = (x: string, W: string, b: string, rows: number, cols: number, output?: string): string => {
    if (!w.has(b)) return g.op('MatMul', [x, f(W, [rows, cols])], {}, output);
    return g.op('Add', [g.op('MatMul', [x, f(W, [rows, cols])]), f(b, [cols])], {}, output);
  };
  /** [B, S, heads·dHead] → [B, heads, S, dHead], with qwen3's per-head RMSNorm before the transpose. */
  const heads = (x: string, n: number, norm: string): string => {
    if (!w.has(norm)) return splitHeads(g, x, n, dHead);
    const perHead = g.op('Reshape', [x, g.ints(g.t('const.shape_heads'), [0, 0, n, dHead])]);
    return g.op('Transpose', [rmsNorm(g, perHead, f(norm, [dHead]), c.normEps)], { perm: [0, 2, 1, 3] });
  };

  let resid = g.op('Gather', [f('embed.W_E', [vocabSize, d]), 'input_ids'], {}, EMBED_HOOK);

  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    const hook = (kind: HookKind): string => hookName(l, kind);
    // Block l's input is the embedding or block l-1's output; a graph output needs its own value name.
    g.op('Identity', [resid], {}, hook('hook_resid_pre'));
    resid = steered(g, hook('hook_resid_pre'));

    const x = rmsNorm(g, resid, f(`${b}.ln1.w`, [d]), c.normEps, hook('ln1.hook_normalized'));
    const q = linear(x, `${b}.attn.W_Q`, `${b}.attn.b_Q`, d, nHeads * dHead, hook('attn.hook_q'));
    const k = linear(x, `${b}.attn.W_K`, `${b}.attn.b_K`, d, nKvHeads * dHead, hook('attn.hook_k'));
    const v = linear(x, `${b}.attn.W_V`, `${b}.attn.b_V`, d, nKvHeads * dHead, hook('attn.hook_v'));
    const window = c.slidingWindows?.[l] ?? null;
    const rotQ = applyRope(g, c, heads(q, nHeads, `${b}.attn.q_norm.w`), rope);
    const rotK = applyRope(g, c, heads(k, nKvHeads, `${b}.attn.k_norm.w`), rope);
    mergeHeads(g, rotQ, nHeads * dHead, hook('attn.hook_rot_q'));
    mergeHeads(g, rotK, nKvHeads * dHead, hook('attn.hook_rot_k'));
    const z = attention(g, {
      layer: l,
      q: rotQ,
      k: rotK,
      v: splitHeads(g, v, nKvHeads, dHead),
      nHeads,
      nKvHeads,
      dHead,
      maskBias: window === null ? masks.maskBias : masks.windowMask(window),
      output: hook('attn.hook_z'),
    });
    const attnOut = linear(z, `${b}.attn.W_O`, `${b}.attn.b_O`, nHeads * dHead, d, hook('hook_attn_out'));
    g.op('Add', [resid, steered(g, attnOut)], {}, hook('hook_resid_mid'));
    const mid = steered(g, hook('hook_resid_mid'));

    // SwiGLU MLP.
    const x2 = rmsNorm(g, mid, f(`${b}.ln2.w`, [d]), c.normEps, hook('ln2.hook_normalized'));
    const gate = linear(x2, `${b}.mlp.W_gate`, `${b}.mlp.b_gate`, d, dMlp, hook('mlp.hook_pre'));
    const silu = g.op('Mul', [gate, g.op('Sigmoid', [gate])]);
    const post = g.op(
      'Mul',
      [silu, linear(x2, `${b}.mlp.W_in`, `${b}.mlp.b_in`, d, dMlp, hook('mlp.hook_pre_linear'))],
      {},
      hook('mlp.hook_post'),
    );
    const mlpOut = linear(post, `${b}.mlp.W_out`, `${b}.mlp.b_out`, dMlp, d, hook('hook_mlp_out'));
    g.op('Add', [mid, steered(g, mlpOut)], {}, hook('hook_resid_post'));
    resid = steered(g, hook('hook_resid_post'));
  }

  const final = rmsNorm(g, resid, f('ln_final.w', [d]), c.normEps, FINAL_NORM_HOOK);
  // Tied embeddings reuse W_E (transposed once when the session loads) instead of storing it twice.
  const W_U = c.tiedEmbeddings
    ? g.op('Transpose', ['embed.W_E'], { perm: [1, 0] }, 'unembed.W_U')
    : f('unembed.W_U', [d, vocabSize]);
  const hasBias = w.has('unembed.b_U');
  const projected = g.op('MatMul', [final, W_U], {}, hasBias ? undefined : 'logits');
  if (hasBias) g.op('Add', [projected, f('unembed.b_U', [vocabSize])], {}, 'logits');

  return { name: c.architecture, nodes: g.nodes, initializers: g.initializers, ...transformerIO(c) };
}
