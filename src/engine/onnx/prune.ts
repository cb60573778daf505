/**
 * Cuts an ONNX model down to the nodes some outputs depend on. onnxruntime executes every node of
 * a graph whatever outputs a run fetches (measured: fetching blocks.0.hook_resid_pre cost as much
 * as fetching logits), so the hook runner uses pruned copies for hooks early in the network.
 */
import type onnxProto from 'onnx-proto';
import { onnx } from './proto.js';

type ModelProto = onnxProto.onnx.ModelProto;

export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}

/** Index in the (topologically sorted) node list of the node producing each value. */
export function producerIndex(model: ModelProto): Map<string, number> {
  const out = new Map<string, number>();
  model.graph!.node!.forEach((n, i) => {
    for (const o of n.output ?? []) out.set(o, i);
  });
  return out;
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
