/**
 * Graph pieces shared by transformer graph builders: the node/initializer accumulator, positions
 * and the causal-plus-padding mask over a KV cache, grouped-query attention, and the graph's inputs
 * and outputs. The interface matches llama-graph.ts so one batch runner and one generator serve
 * every architecture:
 *
 * Inputs:  input_ids int64 [batch, seq]; attention_mask int64 [batch, past_seq + seq] (1 = token,
 *          0 = padding; right-padded, so positions are past_seq.. for every row);
 *          past_key_values.{L}.key / .value float [batch, n_kv_heads, past_seq, d_head] (past_seq = 0
 *          for a plain forward pass).
 * Outputs: blocks.{L}.hook_* [batch, seq, d] for every layer and HOOK_KINDS entry, logits
 *          [batch, seq, vocab], present.{L}.key / .value [batch, n_kv_heads, past_seq + seq, d_head].
 */
import type { onnx as OnnxNs } from 'onnx-proto';
import { HOOK_KINDS, hookName, type TransformerWeights } from '../model/types.js';
import { AtlasError } from '../../errors.js';
import { floatTensor, int64Tensor, node, valueInfo } from './proto.js';
import type { ExternalDataWriter } from './write-model.js';

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
export class GraphBuilder {
  readonly nodes: OnnxNs.INodeProto[] = [];
  readonly initializers: OnnxNs.ITensorProto[] = [];
  private counter = 0;

  /** With a writer, large initializers go to its external data file as they are added. */
  constructor(readonly external?: ExternalDataWriter) {}

  t(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  op(opType: string, inputs: string[], attrs: Parameters<typeof node>[3] = {}, output?: string): string {
    const out = output ?? this.t(opType.toLowerCase());
    this.nodes.push(node(opType, inputs, [out], attrs));
    return out;
  }

  /** A node with several outputs (Split). */
  ops(opType: string, inputs: string[], outputs: string[], attrs: Parameters<typeof node>[3] = {}): string[] {
    this.nodes.push(node(opType, inputs, outputs, attrs));
    return outputs;
  }

  float(name: string, dims: number[], data: Float32Array): string {
    this.initializers.push(this.external ? this.external.tensor(name, dims, data) : floatTensor(name, dims, data));
    return name;
  }

  ints(name: string, values: number[], scalar = false): string {
    this.initializers.push(int64Tensor(name, scalar ? [] : [values.length], values));
    return name;
  }
}

/**
 * Positions past_seq .. past_seq + seq - 1 ([seq] int64, identical for every row: right padding) and
 * the additive mask [batch, 1, 1, seq, total]: key t is visible to query s when t <= position(s) and
 * t is a token. The mask's extra axis broadcasts over the query groups of attention(). With a
 * sliding window W, slidingMaskBias also hides keys with position(s) - t >= W (HF's sliding mask).
 */
export function positionsAndMask(g: GraphBuilder, slidingWindow?: number): { positions: string; maskBias: string; slidingMaskBias?: string } {
  const zero = g.ints('const.pos_zero', [0], true);
  const one = g.ints('const.pos_one', [1], true);
  const pastLen = g.op('Squeeze', [g.op('Shape', [pastKeyName(0)], { start: 2, end: 3 })]);
  const seqLen = g.op('Squeeze', [g.op('Shape', ['input_ids'], { start: 1, end: 2 })]);
  const totalLen = g.op('Add', [pastLen, seqLen]);
  const positions = g.op('Range', [pastLen, totalLen, one], {}, 'positions');
  const keyPos = g.op('Range', [zero, totalLen, one]);
  const causal = g.op('LessOrEqual', [keyPos, g.op('Unsqueeze', [positions, g.ints('const.mask_axes_1', [1])])]);
  const isToken = g.op('Unsqueeze', [g.op('Cast', ['attention_mask'], { to: 9 /* BOOL */ }), g.ints('const.mask_axes_123', [1, 2, 3])]);
  const fZero = g.float('const.mask_zero', [], new Float32Array([0]));
  const fMasked = g.float('const.mask_masked', [], new Float32Array([MASKED]));
  const visible = g.op('And', [causal, isToken]);
  const maskBias = g.op('Where', [visible, fZero, fMasked], {}, 'attn_mask_bias');
  if (slidingWindow === undefined) return { positions, maskBias };
  const distance = g.op('Sub', [g.op('Unsqueeze', [positions, g.ints('const.mask_axes_1b', [1])]), keyPos]); // [seq, total]
  const inWindow = g.op('Less', [distance, g.ints('const.sliding_window', [slidingWindow], true)]);
  return { positions, maskBias, slidingMaskBias: g.op('Where', [g.op('And', [visible, inWindow]), fZero, fMasked], {}, 'attn_sliding_mask_bias') };
}

/** Splits [batch, seq, heads*dHead] into heads [batch, heads, seq, dHead]. */
export function splitHeads(g: GraphBuilder, x: string, heads: number, dHead: number): string {
  return g.op('Transpose', [g.op('Reshape', [x, g.ints(g.t('const.shape_heads'), [0, 0, heads, dHead])])], { perm: [0, 2, 1, 3] });
}

export interface AttentionInputs {
  layer: number;
  /** Queries [batch, nHeads, seq, dHead], already rotated where the architecture rotates them. */
  q: string;
  /** This step's keys and values [batch, nKvHeads, seq, dHead]; appended to the cache here. */
  k: string;
  v: string;
  nHeads: number;
  nKvHeads: number;
  dHead: number;
  maskBias: string;
  /** Multiplies q·k (default dHead^-½). */
  scale?: number;
  /** Soft-caps the scaled scores as tanh(s / cap) · cap before masking (Gemma). */
  softcap?: number | null;
  /** Name of the merged output (a hook point such as blocks.L.attn.hook_z). */
  output?: string;
}

/**
 * Causal softmax attention over the cache plus this step; writes present.{L}.key/value and returns
 * the heads' outputs merged to [batch, seq, nHeads*dHead]. Grouped-query attention without copying
 * K/V: query head h reads KV head floor(h / group), as HF repeat_kv and llama2.c do.
 */
export function attention(g: GraphBuilder, a: AttentionInputs): string {
  const group = a.nHeads / a.nKvHeads;
  const k = g.op('Concat', [pastKeyName(a.layer), a.k], { axis: 2 }, presentKeyName(a.layer));
  const v = g.op('Concat', [pastValueName(a.layer), a.v], { axis: 2 }, presentValueName(a.layer));
  const axes2 = g.ints(g.t('const.axes_2'), [2]);
  const qGrouped = g.op('Reshape', [a.q, g.ints(g.t('const.shape_groups'), [0, a.nKvHeads, group, -1, a.dHead])]); // [B, nKv, group, S, dHead]
  const kT = g.op('Unsqueeze', [g.op('Transpose', [k], { perm: [0, 1, 3, 2] }), axes2]); // [B, nKv, 1, dHead, T]
  const scale = g.float(g.t('const.attn_scale'), [], new Float32Array([a.scale ?? 1 / Math.sqrt(a.dHead)]));
  let raw = g.op('Mul', [g.op('MatMul', [qGrouped, kT]), scale]);
  if (a.softcap) {
    const inv = g.float(g.t('const.softcap_inv'), [], new Float32Array([1 / a.softcap]));
    raw = g.op('Mul', [g.op('Tanh', [g.op('Mul', [raw, inv])]), g.float(g.t('const.softcap'), [], new Float32Array([a.softcap]))]);
  }
  const scores = g.op('Add', [raw, a.maskBias]);
  const probs = g.op('Softmax', [scores], { axis: -1 });
  const ctx = g.op('MatMul', [probs, g.op('Unsqueeze', [v, axes2])]); // [B, nKv, group, S, dHead]
  const merged = g.op('Transpose', [g.op('Reshape', [ctx, g.ints(g.t('const.shape_merged'), [0, a.nHeads, -1, a.dHead])])], { perm: [0, 2, 1, 3] });
  return g.op('Reshape', [merged, g.ints(g.t('const.shape_flat'), [0, 0, a.nHeads * a.dHead])], {}, a.output);
}

/**
 * GELU ½x(1 + inner): 'gelu_new' (gelu_pytorch_tanh) inner = tanh(√(2/π)(x + 0.044715x³)), the tanh
 * approximation; 'gelu' inner = erf(x/√2), the exact form.
 */
export function gelu(g: GraphBuilder, x: string, kind: 'gelu_new' | 'gelu'): string {
  const scalar = (hint: string, v: number) => g.float(g.t(hint), [], new Float32Array([v]));
  let inner: string;
  if (kind === 'gelu_new') {
    const cube = g.op('Mul', [g.op('Mul', [x, x]), x]);
    const poly = g.op('Add', [x, g.op('Mul', [cube, scalar('const.gelu_c', 0.044715)])]);
    inner = g.op('Tanh', [g.op('Mul', [poly, scalar('const.gelu_k', Math.sqrt(2 / Math.PI))])]);
  } else {
    inner = g.op('Erf', [g.op('Mul', [x, scalar('const.gelu_r', Math.SQRT1_2)])]);
  }
  return g.op('Mul', [g.op('Mul', [x, scalar('const.gelu_half', 0.5)]), g.op('Add', [inner, scalar('const.gelu_one', 1)])]);
}

/** Hook names a transformer graph exposes, in layer order. */
export function transformerHookPoints(nLayers: number): string[] {
  const out: string[] = [];
  for (let l = 0; l < nLayers; l++) for (const k of HOOK_KINDS) out.push(hookName(l, k));
  return out;
}

/** Graph inputs and outputs of the interface above. */
export function transformerIO(c: { nLayers: number; nKvHeads: number; dHead: number; dModel: number; vocabSize: number }): {
  inputs: OnnxNs.IValueInfoProto[];
  outputs: OnnxNs.IValueInfoProto[];
} {
  const inputs = [valueInfo('input_ids', 'int64', ['batch', 'seq']), valueInfo('attention_mask', 'int64', ['batch', 'total_seq'])];
  const presents = [];
  for (let l = 0; l < c.nLayers; l++) {
    inputs.push(valueInfo(pastKeyName(l), 'float', ['batch', c.nKvHeads, 'past_seq', c.dHead]), valueInfo(pastValueName(l), 'float', ['batch', c.nKvHeads, 'past_seq', c.dHead]));
    presents.push(valueInfo(presentKeyName(l), 'float', ['batch', c.nKvHeads, 'total_seq', c.dHead]), valueInfo(presentValueName(l), 'float', ['batch', c.nKvHeads, 'total_seq', c.dHead]));
  }
  const outputs = [
    ...transformerHookPoints(c.nLayers).map((h) => valueInfo(h, 'float', ['batch', 'seq', c.dModel])),
    valueInfo('logits', 'float', ['batch', 'seq', c.vocabSize]),
    ...presents,
  ];
  return { inputs, outputs };
}

/** Reads a tensor and checks it holds as many values as the config's shape needs. */
export function checkedTensor(w: TransformerWeights, name: string, want: number[]): Float32Array {
  const data = w.tensor(name);
  const count = want.reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw new AtlasError('BAD_FILE', `Tensor "${name}" has ${data.length} values but the config needs shape [${want.join(', ')}] (${count} values).`);
  }
  return data;
}
