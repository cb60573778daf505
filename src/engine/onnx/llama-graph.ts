/**
 * ONNX graph (opset 17) of a LLaMA-architecture transformer built from TransformerWeights.
 *
 * Inputs:  input_ids int64 [batch, seq]; attention_mask int64 [batch, past_seq + seq] (1 = token,
 *          0 = padding; sequences are right-padded so positions are 0.. for every row);
 *          past_key_values.{L}.key / .value float [batch, n_kv_heads, past_seq, d_head]
 *          (past_seq = 0 for a plain forward pass).
 * Outputs: blocks.{L}.hook_* for every layer and HOOK_KINDS entry, logits [batch, seq, vocab],
 *          present.{L}.key / .value [batch, n_kv_heads, past_seq + seq, d_head] (the KV cache).
 * One graph serves both the hook runner (empty past) and incremental generation (past = previous
 * presents); onnxruntime only executes the nodes the requested outputs depend on.
 *
 * Per block:  resid_mid = resid_pre + Attn(RMSNorm(resid_pre))        (attn_out)
 *             resid_post = resid_mid + W_out(silu(W_gate x) * W_in x), x = RMSNorm(resid_mid)  (mlp_out)
 */
import type { onnx as OnnxNs } from 'onnx-proto';
import { AtlasError } from '../../errors.js';
import { HOOK_KINDS, hookName, type HookKind, type TransformerWeights } from '../model/types.js';
import { floatTensor, int64Tensor, node, valueInfo, type GraphSpec } from './proto.js';

/** Bump when the graph changes: it is part of the on-disk cache key. */
export const LLAMA_GRAPH_VERSION = 1;

/** Additive mask value: large enough to zero a softmax weight, finite so a fully masked row is not NaN. */
const MASKED = -1e30;

export function pastKeyName(layer: number): string {
  return `past_key_values.${layer}.key`;
}
export function pastValueName(layer: number): string {
  return `past_key_values.${layer}.value`;
}
export function presentKeyName(layer: number): string {
  return `present.${layer}.key`;
}
export function presentValueName(layer: number): string {
  return `present.${layer}.value`;
}

/** Collects nodes and initializers; `t()` makes fresh intermediate names. */
class GraphBuilder {
  readonly nodes: OnnxNs.INodeProto[] = [];
  readonly initializers: OnnxNs.ITensorProto[] = [];
  private counter = 0;

  t(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  op(opType: string, inputs: string[], attrs: Parameters<typeof node>[3] = {}, output?: string): string {
    const out = output ?? this.t(opType.toLowerCase());
    this.nodes.push(node(opType, inputs, [out], attrs));
    return out;
  }

  float(name: string, dims: number[], data: Float32Array): string {
    this.initializers.push(floatTensor(name, dims, data));
    return name;
  }

  ints(name: string, values: number[], scalar = false): string {
    this.initializers.push(int64Tensor(name, scalar ? [] : [values.length], values));
    return name;
  }
}

function checkShape(w: TransformerWeights, name: string, want: number[]): Float32Array {
  const data = w.tensor(name);
  const count = want.reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw new AtlasError('BAD_FILE', `Tensor "${name}" has ${data.length} values but the config needs shape [${want.join(', ')}] (${count} values).`);
  }
  return data;
}

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
  const group = nHeads / nKvHeads;
  const g = new GraphBuilder();

  // Shared constants.
  const zero = g.ints('const.zero', [0], true);
  const one = g.ints('const.one', [1], true);
  const axisLast = g.ints('const.axis_last', [-1]);
  const eps = g.float('const.eps', [], new Float32Array([c.normEps]));
  const scale = g.float('const.attn_scale', [], new Float32Array([1 / Math.sqrt(dHead)]));
  const fZero = g.float('const.f_zero', [], new Float32Array([0]));
  const fMasked = g.float('const.f_masked', [], new Float32Array([MASKED]));
  const shapeHeads = g.ints('const.shape_heads', [0, 0, nHeads, dHead]);
  const shapeKvHeads = g.ints('const.shape_kv_heads', [0, 0, nKvHeads, dHead]);
  const shapeGroups = g.ints('const.shape_groups', [0, nKvHeads, group, -1, dHead]);
  const shapeMerged = g.ints('const.shape_merged', [0, nHeads, -1, dHead]);
  const shapeFlat = g.ints('const.shape_flat', [0, 0, nHeads * dHead]);
  const axes2 = g.ints('const.axes_2', [2]);

  // Positions past_seq .. past_seq + seq - 1 (identical for every row: right padding).
  const pastLen = g.op('Squeeze', [g.op('Shape', [pastKeyName(0)], { start: 2, end: 3 })]);
  const seqLen = g.op('Squeeze', [g.op('Shape', ['input_ids'], { start: 1, end: 2 })]);
  const totalLen = g.op('Add', [pastLen, seqLen]);
  const positions = g.op('Range', [pastLen, totalLen, one]);

  // Mask [batch, 1, 1, seq, total]: key t visible to query s when t <= position(s) and t is a token.
  const keyPos = g.op('Range', [zero, totalLen, one]);
  const causal = g.op('LessOrEqual', [keyPos, g.op('Unsqueeze', [positions, g.ints('const.axes_1', [1])])]);
  const isToken = g.op('Unsqueeze', [g.op('Cast', ['attention_mask'], { to: 9 /* BOOL */ }), g.ints('const.axes_123', [1, 2, 3])]);
  const maskBias = g.op('Where', [g.op('And', [causal, isToken]), fZero, fMasked], {}, 'attn_mask_bias');

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
    const a = g.t('rope_a');
    const b = g.t('rope_b');
    g.nodes.push(node('Split', [src], [a, b], { axis }));
    const first = g.op('Sub', [g.op('Mul', [a, ropeCos]), g.op('Mul', [b, ropeSin])]);
    const second = g.op('Add', [g.op('Mul', [b, ropeCos]), g.op('Mul', [a, ropeSin])]);
    const joined = g.op('Concat', [first, second], { axis });
    return interleaved ? g.op('Reshape', [joined, shapeUnpair]) : joined;
  };

  const rmsNorm = (x: string, weightName: string): string => {
    const weight = g.float(weightName, [d], checkShape(w, weightName, [d]));
    const meanSq = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSq, eps])])]);
    return g.op('Mul', [g.op('Mul', [x, inv]), weight]);
  };

  const matmul = (x: string, name: string, rows: number, cols: number): string =>
    g.op('MatMul', [x, g.float(name, [rows, cols], checkShape(w, name, [rows, cols]))]);

  const hookOutputs: string[] = [];
  let resid = g.op('Gather', [g.float('embed.W_E', [vocabSize, d], checkShape(w, 'embed.W_E', [vocabSize, d])), 'input_ids'], {}, hookName(0, 'hook_resid_pre'));

  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    const hook = (kind: HookKind): string => {
      hookOutputs.push(hookName(l, kind));
      return hookName(l, kind);
    };
    if (l > 0) resid = g.op('Identity', [resid], {}, hook('hook_resid_pre'));
    else hook('hook_resid_pre');

    // Attention: q [B, nHeads, S, dHead]; k, v [B, nKv, T, dHead] after appending to the cache.
    const x = rmsNorm(resid, `${b}.ln1.w`);
    const heads = (y: string, shape: string): string => g.op('Transpose', [g.op('Reshape', [y, shape])], { perm: [0, 2, 1, 3] });
    const q = rope(heads(matmul(x, `${b}.attn.W_Q`, d, nHeads * dHead), shapeHeads));
    const kNew = rope(heads(matmul(x, `${b}.attn.W_K`, d, nKvHeads * dHead), shapeKvHeads));
    const vNew = heads(matmul(x, `${b}.attn.W_V`, d, nKvHeads * dHead), shapeKvHeads);
    const k = g.op('Concat', [pastKeyName(l), kNew], { axis: 2 }, presentKeyName(l));
    const v = g.op('Concat', [pastValueName(l), vNew], { axis: 2 }, presentValueName(l));

    // Grouped-query attention without copying K/V: query head h uses KV head floor(h / group).
    const qGrouped = g.op('Reshape', [q, shapeGroups]); // [B, nKv, group, S, dHead]
    const kT = g.op('Unsqueeze', [g.op('Transpose', [k], { perm: [0, 1, 3, 2] }), axes2]); // [B, nKv, 1, dHead, T]
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [qGrouped, kT]), scale]), maskBias]);
    const probs = g.op('Softmax', [scores], { axis: -1 });
    const ctx = g.op('MatMul', [probs, g.op('Unsqueeze', [v, axes2])]); // [B, nKv, group, S, dHead]
    const merged = g.op('Transpose', [g.op('Reshape', [ctx, shapeMerged])], { perm: [0, 2, 1, 3] });
    const attnOut = g.op('MatMul', [g.op('Reshape', [merged, shapeFlat]), g.float(`${b}.attn.W_O`, [nHeads * dHead, d], checkShape(w, `${b}.attn.W_O`, [nHeads * dHead, d]))], {}, hook('hook_attn_out'));
    const mid = g.op('Add', [resid, attnOut], {}, hook('hook_resid_mid'));

    // SwiGLU MLP.
    const x2 = rmsNorm(mid, `${b}.ln2.w`);
    const gate = matmul(x2, `${b}.mlp.W_gate`, d, dMlp);
    const silu = g.op('Mul', [gate, g.op('Sigmoid', [gate])]);
    const up = matmul(x2, `${b}.mlp.W_in`, d, dMlp);
    const mlpOut = g.op('MatMul', [g.op('Mul', [silu, up]), g.float(`${b}.mlp.W_out`, [dMlp, d], checkShape(w, `${b}.mlp.W_out`, [dMlp, d]))], {}, hook('hook_mlp_out'));
    resid = g.op('Add', [mid, mlpOut], {}, hook('hook_resid_post'));
  }

  const final = rmsNorm(resid, 'ln_final.w');
  // Tied embeddings reuse W_E (transposed once when the session loads) instead of storing it twice.
  const W_U = c.tiedEmbeddings
    ? g.op('Transpose', ['embed.W_E'], { perm: [1, 0] }, 'unembed.W_U')
    : g.float('unembed.W_U', [d, vocabSize], checkShape(w, 'unembed.W_U', [d, vocabSize]));
  const hasBias = w.has('unembed.b_U');
  const projected = g.op('MatMul', [final, W_U], {}, hasBias ? undefined : 'logits');
  if (hasBias) g.op('Add', [projected, g.float('unembed.b_U', [vocabSize], checkShape(w, 'unembed.b_U', [vocabSize]))], {}, 'logits');

  const inputs = [valueInfo('input_ids', 'int64', ['batch', 'seq']), valueInfo('attention_mask', 'int64', ['batch', 'total_seq'])];
  const presents = [];
  for (let l = 0; l < c.nLayers; l++) {
    const kvDims = ['batch', nKvHeads, 'past_seq', dHead];
    inputs.push(valueInfo(pastKeyName(l), 'float', kvDims), valueInfo(pastValueName(l), 'float', kvDims));
    const presentDims = ['batch', nKvHeads, 'total_seq', dHead];
    presents.push(valueInfo(presentKeyName(l), 'float', presentDims), valueInfo(presentValueName(l), 'float', presentDims));
  }
  return {
    name: 'llama',
    nodes: g.nodes,
    initializers: g.initializers,
    inputs,
    outputs: [
      ...hookOutputs.map((h) => valueInfo(h, 'float', ['batch', 'seq', d])),
      valueInfo('logits', 'float', ['batch', 'seq', vocabSize]),
      ...presents,
    ],
  };
}

/** Hook names the llama graph exposes, in layer order. */
export function llamaHookPoints(nLayers: number): string[] {
  const out: string[] = [];
  for (let l = 0; l < nLayers; l++) for (const k of HOOK_KINDS) out.push(hookName(l, k));
  return out;
}
