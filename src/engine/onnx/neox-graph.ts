/**
 * ONNX graph (opset 17) of a GPT-NeoX model (Pythia) built from TransformerWeights, with the inputs
 * and outputs documented in layers.ts. As transformers' modeling_gpt_neox.py:
 *   a = LN1(x) (LayerNorm with bias)                                   (ln1.hook_normalized)
 *   q, k, v = a W_Q + b_Q, a W_K + b_K, a W_V + b_V (the fused per-head query_key_value, split by the reader)
 *   q, k rotated by RoPE on their first rotaryDim dims (rotate_half), the rest passed through (attn.hook_rot_q/k)
 *   z = softmax(q·kᵀ/√d_head + causal mask) v;  attn_out = z W_O + b_O  (attn.hook_z, hook_attn_out)
 *   parallel:   resid_post = x + attn_out + mlp(LN2(x))                (no hook_resid_mid)
 *   sequential: mid = x + attn_out; resid_post = mid + mlp(LN2(mid))
 *   mlp(h) = act(h W_in + b_in) W_out + b_out, act gelu (erf) or its tanh form  (mlp.hook_pre/post)
 *     (act one onnxruntime contrib node, layers.ts gelu)
 * logits = LN_final(resid_post) W_U (embed_out, untied unless tie_word_embeddings).
 * Each residual-stream hook adds its steering input (layers.ts) before the layers after it read it.
 */
import { AtlasError } from '../../errors.js';
import { EMBED_HOOK, FINAL_NORM_HOOK, hookName, type HookKind, type TransformerWeights } from '../model/types.js';
import type { GraphSpec } from './proto.js';
import {
  GraphBuilder,
  checkedTensor,
  attention,
  gelu,
  layerNorm,
  mergeHeads,
  positionsAndMask,
  splitHeads,
  steered,
  transformerIO,
} from './layers.js';
import { applyRope, ropeAngles } from './rope.js';

/** Bump when the graph changes: it is part of the on-disk cache key. */
export const NEOX_GRAPH_VERSION = 3;

export function buildNeoxGraph(w: TransformerWeights): GraphSpec {
  const c = w.config;
  if (c.architecture !== 'gpt_neox')
    throw new AtlasError('UNSUPPORTED', `The gpt_neox graph builder cannot build architecture "${c.architecture}".`);
  if (c.activation === 'silu')
    throw new AtlasError(
      'UNSUPPORTED',
      'A gpt_neox model with a silu activation is not supported; use gelu or gelu_new.',
    );
  const activation = c.activation;
  const { dModel: d, nHeads, dHead, dMlp, vocabSize } = c;
  const width = nHeads * dHead;
  const g = new GraphBuilder();
  const f = (name: string, dims: number[]) => g.float(name, dims, checkedTensor(w, name, dims));
  const linear = (x: string, W: string, b: string, rows: number, cols: number, output?: string): string =>
    w.has(b)
      ? g.op('Add', [g.op('MatMul', [x, f(W, [rows, cols])]), f(b, [cols])], {}, output)
      : g.op('MatMul', [x, f(W, [rows, cols])], {}, output);
  const ln = (x: string, prefix: string, output: string): string =>
    layerNorm(g, x, f(`${prefix}.w`, [d]), f(`${prefix}.b`, [d]), c.normEps, output);

  const { positions, maskBias } = positionsAndMask(g);
  const rope = ropeAngles(g, c, positions);
  let resid = g.op('Gather', [f('embed.W_E', [vocabSize, d]), 'input_ids'], {}, EMBED_HOOK);

  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    const hook = (kind: HookKind) => hookName(l, kind);
    g.op('Identity', [resid], {}, hook('hook_resid_pre'));
    resid = steered(g, hook('hook_resid_pre'));

    const a = ln(resid, `${b}.ln1`, hook('ln1.hook_normalized'));
    const q = linear(a, `${b}.attn.W_Q`, `${b}.attn.b_Q`, d, width, hook('attn.hook_q'));
    const k = linear(a, `${b}.attn.W_K`, `${b}.attn.b_K`, d, width, hook('attn.hook_k'));
    const v = linear(a, `${b}.attn.W_V`, `${b}.attn.b_V`, d, width, hook('attn.hook_v'));
    const rotQ = applyRope(g, c, splitHeads(g, q, nHeads, dHead), rope);
    const rotK = applyRope(g, c, splitHeads(g, k, nHeads, dHead), rope);
    mergeHeads(g, rotQ, width, hook('attn.hook_rot_q'));
    mergeHeads(g, rotK, width, hook('attn.hook_rot_k'));
    const z = attention(g, {
      layer: l,
      q: rotQ,
      k: rotK,
      v: splitHeads(g, v, nHeads, dHead),
      nHeads,
      nKvHeads: nHeads,
      dHead,
      maskBias,
      output: hook('attn.hook_z'),
    });
    const attnOut = steered(g, linear(z, `${b}.attn.W_O`, `${b}.attn.b_O`, width, d, hook('hook_attn_out')));
    if (!c.parallelResidual) g.op('Add', [resid, attnOut], {}, hook('hook_resid_mid'));
    const mlpIn = c.parallelResidual ? resid : steered(g, hook('hook_resid_mid'));
    const h = ln(mlpIn, `${b}.ln2`, hook('ln2.hook_normalized'));
    const pre = linear(h, `${b}.mlp.W_in`, `${b}.mlp.b_in`, d, dMlp, hook('mlp.hook_pre'));
    const post = gelu(g, pre, activation, hook('mlp.hook_post'));
    const mlpOut = steered(g, linear(post, `${b}.mlp.W_out`, `${b}.mlp.b_out`, dMlp, d, hook('hook_mlp_out')));
    if (c.parallelResidual) g.op('Add', [g.op('Add', [resid, attnOut]), mlpOut], {}, hook('hook_resid_post'));
    else g.op('Add', [mlpIn, mlpOut], {}, hook('hook_resid_post'));
    resid = steered(g, hook('hook_resid_post'));
  }

  const final = ln(resid, 'ln_final', FINAL_NORM_HOOK);
  const W_U = c.tiedEmbeddings
    ? g.op('Transpose', ['embed.W_E'], { perm: [1, 0] }, 'unembed.W_U')
    : f('unembed.W_U', [d, vocabSize]);
  g.op('MatMul', [final, W_U], {}, 'logits');
  return { name: 'gpt_neox', nodes: g.nodes, initializers: g.initializers, ...transformerIO(c) };
}
