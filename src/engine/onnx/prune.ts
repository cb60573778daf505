/**
 * Cuts an ONNX model down to the nodes some outputs depend on. onnxruntime executes every node of
 * a graph whatever outputs a run fetches (measured: fetching blocks.0.hook_resid_pre cost as much
 * as fetching logits), so the hook runner uses pruned copies for hooks early in the network.
 *
 * withoutSteeringOrCache also folds away the inputs that a plain forward pass feeds neutral values
 * (runtime/feeds.ts): steering inputs steer.* (zeros) and KV-cache inputs past_key_values.* (empty,
 * past_seq = 0), so that the hook runner's graphs do not run a node per input for nothing (19 Adds
 * and 8 Concats of a 4-layer GPT-2's ~200 nodes, where each node costs µs).
 */
import type onnxProto from 'onnx-proto';
import { STEER_PREFIX } from '../model/hooks.js';
import { int64Tensor, onnx } from './proto.js';

type ModelProto = onnxProto.onnx.ModelProto;
type NodeProto = onnxProto.onnx.INodeProto;

const PAST_PREFIX = 'past_key_values.';
/** The past-length axis of a cache input [batch, heads, past_seq, head_dim] (onnx/layers.ts). */
const PAST_AXIS = 2;

export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}

/** A copy of the model whose outputs are `outputs`, keeping only the nodes, initializers and inputs they need. */
export function pruneModel(model: ModelProto, outputs: string[]): Uint8Array {
  const graph = model.graph!;
  const producers = new Map<string, onnxProto.onnx.INodeProto>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) producers.set(o, n);

  const keptNodes = new Set<onnxProto.onnx.INodeProto>();
  const usedValues = new Set<string>();
  const stack = [...outputs];
  while (stack.length > 0) {
    const value = stack.pop()!;
    if (usedValues.has(value)) continue;
    usedValues.add(value);
    const n = producers.get(value);
    if (n && !keptNodes.has(n)) {
      keptNodes.add(n);
      for (const i of n.input ?? []) if (i) stack.push(i);
    }
  }
  const wanted = new Set(outputs);
  const pruned = onnx.ModelProto.create({
    ...model,
    graph: {
      ...graph,
      node: (graph.node ?? []).filter((n) => keptNodes.has(n)),
      initializer: (graph.initializer ?? []).filter((t) => usedValues.has(t.name ?? '')),
      input: (graph.input ?? []).filter((v) => usedValues.has(v.name ?? '')),
      output: (graph.output ?? []).filter((v) => wanted.has(v.name ?? '')),
      valueInfo: (graph.valueInfo ?? []).filter((v) => usedValues.has(v.name ?? '')),
    },
  });
  return onnx.ModelProto.encode(pruned).finish();
}

function intAttr(n: NodeProto, name: string): number | undefined {
  const a = (n.attribute ?? []).find((x) => x.name === name);
  return a?.i === undefined || a.i === null ? undefined : Number(a.i);
}

/**
 * A copy of the model for runs that neither steer nor continue a cache, computing the same `outputs`:
 *   steer.<hook>: each consumer Add(x, steer) (x not a steering input) is dropped and its readers read x;
 *   past_key_values.* [batch, heads, past_seq, head_dim]: each Concat(past, new) along past_seq is
 *   dropped and its readers read new; a Shape of the input becomes a constant, past_seq being 0.
 * An input any of whose consumers is another node, or whose rewired value is one of `outputs`, is kept
 * as it is (feeds.ts feeds it as before); so are inputs of other names (ready exported graphs). Inputs
 * no node reads any more are dropped by pruneModel.
 */
export function withoutSteeringOrCache(model: ModelProto, outputs: string[]): ModelProto {
  const graph = model.graph!;
  const nodes = graph.node ?? [];
  const wanted = new Set(outputs);
  const consumers = new Map<string, NodeProto[]>();
  for (const n of nodes) for (const i of n.input ?? []) consumers.set(i, [...(consumers.get(i) ?? []), n]);

  const readInstead = new Map<string, string>();
  const dropped = new Set<NodeProto>();
  const constants: onnxProto.onnx.ITensorProto[] = [];
  for (const input of graph.input ?? []) {
    const name = input.name ?? '';
    const users = consumers.get(name) ?? [];
    const rewires: [string, string][] = [];
    const folded: onnxProto.onnx.ITensorProto[] = [];
    let understood = users.length > 0;
    if (name.startsWith(STEER_PREFIX)) {
      for (const n of users) {
        const [a, b] = n.input ?? [];
        const out = n.output?.[0] ?? '';
        const x = a === name ? b : a;
        // x another steering input: each would read the other.
        if (n.opType !== 'Add' || n.input?.length !== 2 || x === name || x.startsWith(STEER_PREFIX) || wanted.has(out))
          understood = false;
        else rewires.push([out, x]);
      }
    } else if (name.startsWith(PAST_PREFIX)) {
      const dims = input.type?.tensorType?.shape?.dim ?? [];
      for (const n of users) {
        const out = n.output?.[0] ?? '';
        if (n.opType === 'Concat' && n.input?.length === 2 && n.input[0] === name && !wanted.has(out)) {
          const axis = intAttr(n, 'axis');
          if (axis === PAST_AXIS || axis === PAST_AXIS - dims.length) rewires.push([out, n.input[1]]);
          else understood = false;
        } else if (n.opType === 'Shape' && dims.length === 4 && !wanted.has(out)) {
          const at = (i: number | undefined, whenAbsent: number) =>
            i === undefined ? whenAbsent : Math.min(Math.max(i < 0 ? i + 4 : i, 0), 4);
          const sizes: number[] = [];
          for (let i = at(intAttr(n, 'start'), 0); i < at(intAttr(n, 'end'), 4); i++) {
            const fixed = dims[i].dimValue;
            if (i === PAST_AXIS) sizes.push(0);
            else if (fixed !== undefined && fixed !== null && Number(fixed) > 0) sizes.push(Number(fixed));
            else understood = false;
          }
          folded.push(int64Tensor(out, [sizes.length], sizes));
        } else understood = false;
      }
    } else understood = false;
    if (!understood) continue;
    for (const n of users) dropped.add(n);
    for (const [from, to] of rewires) readInstead.set(from, to);
    constants.push(...folded);
  }

  const resolve = (value: string): string => {
    let v = value;
    while (readInstead.has(v)) v = readInstead.get(v)!;
    return v;
  };
  return onnx.ModelProto.create({
    ...model,
    graph: {
      ...graph,
      node: nodes.filter((n) => !dropped.has(n)).map((n) => ({ ...n, input: (n.input ?? []).map(resolve) })),
      initializer: [...(graph.initializer ?? []), ...constants],
    },
  });
}
