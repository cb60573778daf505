/**
 * ONNX graph (opset 17) of a LLaMA-architecture model built from TransformerWeights, with the inputs
 * and outputs documented in layers.ts (hooks of every layer, logits, KV cache). One graph serves the
 * hook runner (empty past) and incremental generation (past = previous presents).
 *
 * Per block:  resid_mid = resid_pre + Attn(RMSNorm(resid_pre)), q and k rotated by RoPE  (attn_out)
 *             resid_post = resid_mid + W_out(silu(W_gate x) * W_in x), x = RMSNorm(resid_mid)  (mlp_out)
 */
import { AtlasError } from '../../errors.js';
import { hookName, type HookKind, type TransformerWeights } from '../model/types.js';
import type { GraphSpec } from './proto.js';
import { GraphBuilder, checkedTensor, attention, positionsAndMask, splitHeads, transformerHookPoints, transformerIO } from './layers.js';

/** Bump when the graph changes: it is part of the on-disk cache key. */
export const LLAMA_GRAPH_VERSION = 1;

export const llamaHookPoints = transformerHookPoints;

/** cos/sin of position × frequency, [contextLength, dHead/2]; frequency i = theta^(-2i/dHead). */
export function ropeTables(contextLength: number, dHead: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const half = dHead / 2;
  const cos = new Float32Array(contextLength * half);
  const sin = new Float32Array(contextLength * half);
  for (let p = 0; p < contextLength; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * Math.pow(theta, (-2 * i) / dHead);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

export function buildLlamaGraph(w: TransformerWeights): GraphSpec {
  const c = w.config;
  if (c.architecture !== 'llama') throw new AtlasError('UNSUPPORTED', `The llama graph builder cannot build architecture "${c.architecture}".`);
  if (c.nHeads % c.nKvHeads !== 0) {
    throw new AtlasError('BAD_FILE', `n_heads (${c.nHeads}) must be a multiple of n_kv_heads (${c.nKvHeads}).`);
  }
  const { dModel: d, nHeads, nKvHeads, dHead, dMlp, vocabSize } = c;
  const g = new GraphBuilder();

  const axisLast = g.ints('const.axis_last', [-1]);
  const eps = g.float('const.eps', [], new Float32Array([c.normEps]));
  const { positions, maskBias } = positionsAndMask(g);

  // RoPE tables gathered at the positions; shaped to broadcast against the rotated halves.
  const tables = ropeTables(c.contextLength, dHead, c.ropeTheta);
  const cosAt = g.op('Gather', [g.float('rope.cos', [c.contextLength, dHead / 2], tables.cos), positions]);
  const sinAt = g.op('Gather', [g.float('rope.sin', [c.contextLength, dHead / 2], tables.sin), positions]);
  const interleaved = c.ropeStyle === 'interleaved';
  const ropeCos = interleaved ? g.op('Unsqueeze', [cosAt, axisLast]) : cosAt;
  const ropeSin = interleaved ? g.op('Unsqueeze', [sinAt, axisLast]) : sinAt;
  const shapePairs = g.ints('const.shape_pairs', [0, 0, 0, -1, 2]);
  const shapeUnpair = g.ints('const.shape_unpair', [0, 0, 0, dHead]);

  /** Rotates x [batch, heads, seq, dHead]: pairs (2i, 2i+1) for 'interleaved', halves for 'half'. */
  const rope = (x: string): string => {
    const src = interleaved ? g.op('Reshape', [x, shapePairs]) : x;
    const axis = interleaved ? 4 : 3;
    const [a, b] = g.ops('Split', [src], [g.t('rope_a'), g.t('rope_b')], { axis });
    const first = g.op('Sub', [g.op('Mul', [a, ropeCos]), g.op('Mul', [b, ropeSin])]);
    const second = g.op('Add', [g.op('Mul', [b, ropeCos]), g.op('Mul', [a, ropeSin])]);
    const joined = g.op('Concat', [first, second], { axis });
    return interleaved ? g.op('Reshape', [joined, shapeUnpair]) : joined;
  };

  const rmsNorm = (x: string, weightName: string): string => {
    const weight = g.float(weightName, [d], checkedTensor(w, weightName, [d]));
    const meanSq = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSq, eps])])]);
    return g.op('Mul', [g.op('Mul', [x, inv]), weight]);
  };

  const matmul = (x: string, name: string, rows: number, cols: number): string =>
    g.op('MatMul', [x, g.float(name, [rows, cols], checkedTensor(w, name, [rows, cols]))]);

  let resid = g.op('Gather', [g.float('embed.W_E', [vocabSize, d], checkedTensor(w, 'embed.W_E', [vocabSize, d])), 'input_ids'], {}, hookName(0, 'hook_resid_pre'));

  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    const hook = (kind: HookKind): string => hookName(l, kind);
    // Block l's input is block l-1's output; a graph output needs its own value name.
    if (l > 0) resid = g.op('Identity', [resid], {}, hook('hook_resid_pre'));

    // Attention: q [B, nHeads, S, dHead]; k, v [B, nKv, S, dHead], appended to the cache by attention().
    const x = rmsNorm(resid, `${b}.ln1.w`);
    const q = rope(splitHeads(g, matmul(x, `${b}.attn.W_Q`, d, nHeads * dHead), nHeads, dHead));
    const k = rope(splitHeads(g, matmul(x, `${b}.attn.W_K`, d, nKvHeads * dHead), nKvHeads, dHead));
    const v = splitHeads(g, matmul(x, `${b}.attn.W_V`, d, nKvHeads * dHead), nKvHeads, dHead);
    const heads = attention(g, { layer: l, q, k, v, nHeads, nKvHeads, dHead, maskBias });
    const attnOut = g.op('MatMul', [heads, g.float(`${b}.attn.W_O`, [nHeads * dHead, d], checkedTensor(w, `${b}.attn.W_O`, [nHeads * dHead, d]))], {}, hook('hook_attn_out'));
    const mid = g.op('Add', [resid, attnOut], {}, hook('hook_resid_mid'));

    // SwiGLU MLP.
    const x2 = rmsNorm(mid, `${b}.ln2.w`);
    const gate = matmul(x2, `${b}.mlp.W_gate`, d, dMlp);
    const silu = g.op('Mul', [gate, g.op('Sigmoid', [gate])]);
    const up = matmul(x2, `${b}.mlp.W_in`, d, dMlp);
    const mlpOut = g.op('MatMul', [g.op('Mul', [silu, up]), g.float(`${b}.mlp.W_out`, [dMlp, d], checkedTensor(w, `${b}.mlp.W_out`, [dMlp, d]))], {}, hook('hook_mlp_out'));
    resid = g.op('Add', [mid, mlpOut], {}, hook('hook_resid_post'));
  }

  const final = rmsNorm(resid, 'ln_final.w');
  // Tied embeddings reuse W_E (transposed once when the session loads) instead of storing it twice.
  const W_U = c.tiedEmbeddings
    ? g.op('Transpose', ['embed.W_E'], { perm: [1, 0] }, 'unembed.W_U')
    : g.float('unembed.W_U', [d, vocabSize], checkedTensor(w, 'unembed.W_U', [d, vocabSize]));
  const hasBias = w.has('unembed.b_U');
  const projected = g.op('MatMul', [final, W_U], {}, hasBias ? undefined : 'logits');
  if (hasBias) g.op('Add', [projected, g.float('unembed.b_U', [vocabSize], checkedTensor(w, 'unembed.b_U', [vocabSize]))], {}, 'logits');

  return { name: 'llama', nodes: g.nodes, initializers: g.initializers, ...transformerIO(c) };
}

