/**
 * ONNX graph (opset 17) of a GPT-2 model built from TransformerWeights, with the inputs and outputs
 * documented in layers.ts (the same as the llama graph, KV cache included).
 *
 * Per block:  resid_mid = resid_pre + Attn(LN1(resid_pre))                          (attn_out)
 *             resid_post = resid_mid + W_out·act(W_in·LN2(resid_mid) + b_in) + b_out  (mlp_out)
 * Hooks as model/hooks.ts lists them: ln*.hook_normalized are the LayerNorm outputs (weight and bias
 * applied), attn.hook_q/k/v the biased projections, attn.hook_z the merged heads before W_O,
 * mlp.hook_pre = W_in·x + b_in and mlp.hook_post = act(hook_pre). Each residual-stream hook adds its
 * steering input (layers.ts) before the layers after it read it.
 * with learned positional embeddings added to the token embeddings, one fused QKV matmul with
 * biases (as GPT-2's c_attn), and GELU in its tanh approximation for gelu_new, each GELU one onnxruntime
 * contrib node (layers.ts gelu).
 */
import { AtlasError } from '../../errors.js';
import {
  EMBED_HOOK,
  FINAL_NORM_HOOK,
  POS_EMBED_HOOK,
  hookName,
  type HookKind,
  type TransformerWeights,
} from '../model/types.js';
import type { GraphSpec } from './proto.js';
import {
  GraphBuilder,
  checkedTensor,
  attention,
  gelu,
  layerNorm,
  positionsAndMask,
  splitHeads,
  steered,
  transformerIO,
} from './layers.js';

/** Bump when the graph changes: it is part of the on-disk cache key. */
export const GPT2_GRAPH_VERSION = 4;

/** Concatenates row-major [rows, cols_i] matrices side by side. */
function concatColumns(parts: Float32Array[], rows: number): Float32Array {
  const widths = parts.map((p) => p.length / rows);
  const total = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(rows * total);
  for (let r = 0; r < rows; r++) {
    let at = r * total;
    parts.forEach((p, i) => {
      out.set(p.subarray(r * widths[i], (r + 1) * widths[i]), at);
      at += widths[i];
    });
  }
  return out;
}

export function buildGpt2Graph(w: TransformerWeights): GraphSpec {
  const c = w.config;
  if (c.architecture !== 'gpt2')
    throw new AtlasError('UNSUPPORTED', `The gpt2 graph builder cannot build architecture "${c.architecture}".`);
  if (c.nKvHeads !== c.nHeads)
    throw new AtlasError(
      'UNSUPPORTED',
      `GPT-2 has as many key/value heads as query heads; got ${c.nKvHeads} and ${c.nHeads}.`,
    );
  if (c.activation === 'silu')
    throw new AtlasError('UNSUPPORTED', 'A GPT-2 model with a silu activation is not supported; use gelu_new or gelu.');
  const { dModel: d, nHeads, dHead, dMlp, vocabSize } = c;
  const width = nHeads * dHead;
  const g = new GraphBuilder();
  const f = (name: string, dims: number[]) => g.float(name, dims, checkedTensor(w, name, dims));

  const ln = (x: string, prefix: string, output: string): string =>
    layerNorm(g, x, f(`${prefix}.w`, [d]), f(`${prefix}.b`, [d]), c.normEps, output);

  const { positions, maskBias } = positionsAndMask(g);
  const tokens = g.op('Gather', [f('embed.W_E', [vocabSize, d]), 'input_ids'], {}, EMBED_HOOK);
  // [seq, d] broadcast to [batch, seq, d], the shape of every hook.
  const pos = g.op(
    'Expand',
    [g.op('Gather', [f('pos_embed.W_pos', [c.contextLength, d]), positions]), g.op('Shape', [tokens])],
    {},
    POS_EMBED_HOOK,
  );
  let resid = g.op('Add', [tokens, pos], {}, hookName(0, 'hook_resid_pre'));

  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    const hook = (kind: HookKind) => hookName(l, kind);
    if (l > 0) g.op('Identity', [resid], {}, hook('hook_resid_pre'));
    resid = steered(g, hook('hook_resid_pre'));

    const Wqkv = concatColumns(
      ['W_Q', 'W_K', 'W_V'].map((n) => checkedTensor(w, `${b}.attn.${n}`, [d, width])),
      d,
    );
    const bqkv = concatColumns(
      ['b_Q', 'b_K', 'b_V'].map((n) => checkedTensor(w, `${b}.attn.${n}`, [width])),
      1,
    );
    const normed = ln(resid, `${b}.ln1`, hook('ln1.hook_normalized'));
    const qkv = g.op('Add', [
      g.op('MatMul', [normed, g.float(`${b}.attn.W_QKV`, [d, 3 * width], Wqkv)]),
      g.float(`${b}.attn.b_QKV`, [3 * width], bqkv),
    ]);
    const split = g.ints(g.t('const.qkv_split'), [width, width, width]);
    const [q, k, v] = g.ops('Split', [qkv, split], [hook('attn.hook_q'), hook('attn.hook_k'), hook('attn.hook_v')], {
      axis: -1,
    });
    const z = attention(g, {
      layer: l,
      q: splitHeads(g, q, nHeads, dHead),
      k: splitHeads(g, k, nHeads, dHead),
      v: splitHeads(g, v, nHeads, dHead),
      nHeads,
      nKvHeads: nHeads,
      dHead,
      maskBias,
      output: hook('attn.hook_z'),
    });
    const attnOut = g.op(
      'Add',
      [g.op('MatMul', [z, f(`${b}.attn.W_O`, [width, d])]), f(`${b}.attn.b_O`, [d])],
      {},
      hook('hook_attn_out'),
    );
    g.op('Add', [resid, steered(g, attnOut)], {}, hook('hook_resid_mid'));
    const mid = steered(g, hook('hook_resid_mid'));

    const normed2 = ln(mid, `${b}.ln2`, hook('ln2.hook_normalized'));
    const pre = g.op(
      'Add',
      [g.op('MatMul', [normed2, f(`${b}.mlp.W_in`, [d, dMlp])]), f(`${b}.mlp.b_in`, [dMlp])],
      {},
      hook('mlp.hook_pre'),
    );
    const post = gelu(g, pre, c.activation, hook('mlp.hook_post'));
    const mlpOut = g.op(
      'Add',
      [g.op('MatMul', [post, f(`${b}.mlp.W_out`, [dMlp, d])]), f(`${b}.mlp.b_out`, [d])],
      {},
      hook('hook_mlp_out'),
    );
    g.op('Add', [mid, steered(g, mlpOut)], {}, hook('hook_resid_post'));
    resid = steered(g, hook('hook_resid_post'));
  }

  const final = ln(resid, 'ln_final', FINAL_NORM_HOOK);
  // Tied embeddings reuse W_E (transposed once when the session loads) instead of storing it twice.
  const W_U = c.tiedEmbeddings
    ? g.op('Transpose', ['embed.W_E'], { perm: [1, 0] }, 'unembed.W_U')
    : f('unembed.W_U', [d, vocabSize]);
  const hasBias = w.has('unembed.b_U');
  const projected = g.op('MatMul', [final, W_U], {}, hasBias ? undefined : 'logits');
  if (hasBias) g.op('Add', [projected, f('unembed.b_U', [vocabSize])], {}, 'logits');

  return { name: 'gpt2', nodes: g.nodes, initializers: g.initializers, ...transformerIO(c) };
}
