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
 * Outputs: every hook point of model/hooks.ts [batch, seq, width], logits [batch, seq, vocab],
 *          present.{L}.key / .value [batch, n_kv_heads, past_seq + seq, d_head].
 */
import type { onnx as OnnxNs } from 'onnx-proto';
import type { TransformerConfig, TransformerWeights } from '../model/types.js';
import { hookLayout, steerableHooks, steeringInputName } from '../model/hooks.js';
import { AtlasError } from '../../errors.js';
import { floatAttr, floatTensor, int64Tensor, MS_DOMAIN, node, valueInfo } from './proto.js';
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

export interface Masks {
  /** Positions past_seq .. past_seq + seq - 1, [seq] int64 (the same for every row: right padding). */
  positions: string;
  /** Additive causal-plus-padding mask [batch, 1, 1, seq, total]; the extra axis broadcasts over query groups. */
  maskBias: string;
  /** The same mask restricted to keys j with i − j < window (a sliding-window layer); built once per window. */
  windowMask(window: number): string;
}

/** Key t is visible to query s when t <= position(s) and t is a token (and, in a window, position(s) − t < window). */
export function positionsAndMask(g: GraphBuilder): Masks {
  const zero = g.ints('const.pos_zero', [0], true);
  const one = g.ints('const.pos_one', [1], true);
  const pastLen = g.op('Squeeze', [g.op('Shape', [pastKeyName(0)], { start: 2, end: 3 })]);
  const seqLen = g.op('Squeeze', [g.op('Shape', ['input_ids'], { start: 1, end: 2 })]);
  const totalLen = g.op('Add', [pastLen, seqLen]);
  const positions = g.op('Range', [pastLen, totalLen, one], {}, 'positions');
  const keyPos = g.op('Range', [zero, totalLen, one]);
  const queryPos = g.op('Unsqueeze', [positions, g.ints('const.mask_axes_1', [1])]); // [seq, 1]
  const causal = g.op('LessOrEqual', [keyPos, queryPos]);
  const isToken = g.op('Unsqueeze', [
    g.op('Cast', ['attention_mask'], { to: 9 /* BOOL */ }),
    g.ints('const.mask_axes_123', [1, 2, 3]),
  ]);
  const fZero = g.float('const.mask_zero', [], new Float32Array([0]));
  const fMasked = g.float('const.mask_masked', [], new Float32Array([MASKED]));
  const visible = g.op('And', [causal, isToken]);
  const windows = new Map<number, string>();
  return {
    positions,
    maskBias: g.op('Where', [visible, fZero, fMasked], {}, 'attn_mask_bias'),
    windowMask(window) {
      let m = windows.get(window);
      if (!m) {
        // t > position(s) − window
        const lowest = g.op('Sub', [queryPos, g.ints(g.t('const.window'), [window], true)]);
        m = g.op(
          'Where',
          [g.op('And', [visible, g.op('Greater', [keyPos, lowest])]), fZero, fMasked],
          {},
          `attn_mask_bias_window_${window}`,
        );
        windows.set(window, m);
      }
      return m;
    },
  };
}

/** LayerNorm with weight and bias over the last axis (gpt2, gpt_neox). */
export function layerNorm(
  g: GraphBuilder,
  x: string,
  weight: string,
  bias: string,
  eps: number,
  output?: string,
): string {
  return g.op('LayerNormalization', [x, weight, bias], { axis: -1, epsilon: floatAttr(eps) }, output);
}

/** Splits [batch, seq, heads*dHead] into heads [batch, heads, seq, dHead]. */
export function splitHeads(g: GraphBuilder, x: string, heads: number, dHead: number): string {
  return g.op('Transpose', [g.op('Reshape', [x, g.ints(g.t('const.shape_heads'), [0, 0, heads, dHead])])], {
    perm: [0, 2, 1, 3],
  });
}

/** [batch, heads, seq, dHead] → [batch, seq, width = heads·dHead], named `output` (a hook of rotated q or k). */
export function mergeHeads(g: GraphBuilder, x: string, width: number, output: string): string {
  return g.op(
    'Reshape',
    [g.op('Transpose', [x], { perm: [0, 2, 1, 3] }), g.ints(g.t('const.shape_flat'), [0, 0, width])],
    {},
    output,
  );
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
  // [B, nKv, group, S, dHead]
  const qGrouped = g.op('Reshape', [a.q, g.ints(g.t('const.shape_groups'), [0, a.nKvHeads, group, -1, a.dHead])]);
  const kT = g.op('Unsqueeze', [g.op('Transpose', [k], { perm: [0, 1, 3, 2] }), axes2]); // [B, nKv, 1, dHead, T]
  const scale = g.float(g.t('const.attn_scale'), [], new Float32Array([a.scale ?? 1 / Math.sqrt(a.dHead)]));
  let raw = g.op('Mul', [g.op('MatMul', [qGrouped, kT]), scale]);
  if (a.softcap) {
    const inv = g.float(g.t('const.softcap_inv'), [], new Float32Array([1 / a.softcap]));
    raw = g.op('Mul', [
      g.op('Tanh', [g.op('Mul', [raw, inv])]),
      g.float(g.t('const.softcap'), [], new Float32Array([a.softcap])),
    ]);
  }
  const scores = g.op('Add', [raw, a.maskBias]);
  const probs = g.op('Softmax', [scores], { axis: -1 });
  const ctx = g.op('MatMul', [probs, g.op('Unsqueeze', [v, axes2])]); // [B, nKv, group, S, dHead]
  const merged = g.op(
    'Transpose',
    [g.op('Reshape', [ctx, g.ints(g.t('const.shape_merged'), [0, a.nHeads, -1, a.dHead])])],
    { perm: [0, 2, 1, 3] },
  );
  return g.op('Reshape', [merged, g.ints(g.t('const.shape_flat'), [0, 0, a.nHeads * a.dHead])], {}, a.output);
}

/** The value of hook `hook` (an output of the graph) plus its steering input, for the layers after it. */
export function steered(g: GraphBuilder, hook: string): string {
  return g.op('Add', [hook, steeringInputName(hook)]);
}

/** Graph inputs and outputs of the interface above. */
export function transformerIO(c: TransformerConfig): {
  inputs: OnnxNs.IValueInfoProto[];
  outputs: OnnxNs.IValueInfoProto[];
} {
  const inputs = [
    valueInfo('input_ids', 'int64', ['batch', 'seq']),
    valueInfo('attention_mask', 'int64', ['batch', 'total_seq']),
  ];
  for (const hook of steerableHooks(c))
    inputs.push(valueInfo(steeringInputName(hook), 'float', ['steer_batch', 'steer_seq', c.dModel]));
  const presents = [];
  for (let l = 0; l < c.nLayers; l++) {
    inputs.push(
      valueInfo(pastKeyName(l), 'float', ['batch', c.nKvHeads, 'past_seq', c.dHead]),
      valueInfo(pastValueName(l), 'float', ['batch', c.nKvHeads, 'past_seq', c.dHead]),
    );
    presents.push(
      valueInfo(presentKeyName(l), 'float', ['batch', c.nKvHeads, 'total_seq', c.dHead]),
      valueInfo(presentValueName(l), 'float', ['batch', c.nKvHeads, 'total_seq', c.dHead]),
    );
  }
  const outputs = [
    ...hookLayout(c).map((h) => valueInfo(h.name, 'float', ['batch', 'seq', h.width])),
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
    throw new AtlasError(
      'BAD_FILE',
      `Tensor "${name}" has ${data.length} values but the config needs shape [${want.join(', ')}] (${count} values).`,
    );
  }
  return data;
}

/**
 * RMSNorm over the last axis: n = x / sqrt(mean(x²) + eps), output n · weight. `normalized` names n
 * (TransformerLens's hook_normalized of an RMSNorm is taken before the weight).
 */
export function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number, normalized?: string): string {
  const meanSq = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
  const inv = g.op('Reciprocal', [
    g.op('Sqrt', [g.op('Add', [meanSq, g.float(g.t('const.eps'), [], new Float32Array([eps]))])]),
  ]);
  return g.op('Mul', [g.op('Mul', [x, inv], {}, normalized), weight]);
}

/**
 * GELU: 'gelu' is x·Φ(x) (erf); 'gelu_new' the tanh approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
 * One onnxruntime contrib node (com.microsoft Gelu / FastGelu, CPU and CUDA kernels) unless `decomposed`:
 * onnxruntime's fusions of the decomposed form never fire on a hook (they refuse a result that is a graph
 * output), and its five to eight nodes cost µs each per run.
 */
export function gelu(
  g: GraphBuilder,
  x: string,
  activation: 'gelu' | 'gelu_new',
  output?: string,
  decomposed = false,
): string {
  if (!decomposed) {
    const out = output ?? g.t('gelu');
    g.nodes.push({ ...node(activation === 'gelu_new' ? 'FastGelu' : 'Gelu', [x], [out]), domain: MS_DOMAIN });
    return out;
  }
  const scalar = (v: number) => g.float(g.t('const.gelu'), [], new Float32Array([v]));
  let inner: string;
  if (activation === 'gelu_new') {
    const cube = g.op('Mul', [g.op('Mul', [x, x]), x]);
    const poly = g.op('Add', [x, g.op('Mul', [cube, scalar(0.044715)])]);
    inner = g.op('Tanh', [g.op('Mul', [poly, scalar(Math.sqrt(2 / Math.PI))])]);
  } else {
    inner = g.op('Erf', [g.op('Mul', [x, scalar(Math.SQRT1_2)])]);
  }
  return g.op('Mul', [g.op('Mul', [x, scalar(0.5)]), g.op('Add', [inner, scalar(1)])], {}, output);
}
