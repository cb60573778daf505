/**
 * Small helpers over onnx-proto for building ONNX graphs in code: initializers, nodes, value
 * infos and the model wrapper. Graph builders for models and SAE encoders share these.
 */
import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
export const OPSET = 17;
/** onnxruntime's contrib operators (FastGelu, Gelu, MatMulNBits), imported at version 1 by graphs that use them. */
export const MS_DOMAIN = 'com.microsoft';

export type ElemType = 'float' | 'int64' | 'int32' | 'bool';
const ELEM: Record<ElemType, number> = {
  float: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
};

/** An initializer holding `data`'s bytes as they are (little-endian), once its length matches `dims`. */
function rawTensor(
  name: string,
  dims: number[],
  dataType: number,
  data: Float32Array | Uint8Array | Int8Array,
): onnxProto.onnx.ITensorProto {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length)
    throw new Error(`initializer ${name}: dims [${dims}] need ${count} values, got ${data.length}`);
  return { name, dims, dataType, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** A float32 initializer stored as raw little-endian bytes. */
export function floatTensor(name: string, dims: number[], data: Float32Array): onnxProto.onnx.ITensorProto {
  return rawTensor(name, dims, ELEM.float, data);
}

export function int64Tensor(name: string, dims: number[], values: number[]): onnxProto.onnx.ITensorProto {
  const data = BigInt64Array.from(values.map((v) => BigInt(v)));
  return { name, dims, dataType: ELEM.int64, rawData: new Uint8Array(data.buffer) };
}

/** A uint8 initializer (quantized weights, zero points). */
export function uint8Tensor(name: string, dims: number[], data: Uint8Array): onnxProto.onnx.ITensorProto {
  return rawTensor(name, dims, onnx.TensorProto.DataType.UINT8, data);
}

/** An int8 initializer (MatMulInteger weights). */
export function int8Tensor(name: string, dims: number[], data: Int8Array): onnxProto.onnx.ITensorProto {
  return rawTensor(name, dims, onnx.TensorProto.DataType.INT8, data);
}

type AttrValue = number | number[] | string | onnxProto.onnx.ITensorProto;

function attribute(name: string, value: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if (typeof value === 'number') {
    return Number.isInteger(value) && !Object.is(value, -0)
      ? { name, type: T.INT, i: value }
      : { name, type: T.FLOAT, f: value };
  }
  return { name, type: T.TENSOR, t: value };
}

/** Float attributes that happen to be whole numbers (eps = 1, alpha = 2) must say so. */
export function floatAttr(value: number): { float: number } {
  return { float: value };
}

export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attrs: Record<string, AttrValue | { float: number }> = {},
  name?: string,
): onnxProto.onnx.INodeProto {
  const attributes = Object.entries(attrs).map(([k, v]) =>
    typeof v === 'object' && v !== null && 'float' in v && !Array.isArray(v)
      ? { name: k, type: onnx.AttributeProto.AttributeType.FLOAT, f: v.float }
      : attribute(k, v as AttrValue),
  );
  return { opType, input: inputs, output: outputs, attribute: attributes, name: name ?? outputs[0] };
}

/** A graph input or output; a string dim is symbolic (batch, seq), a number is fixed. */
export function valueInfo(name: string, elem: ElemType, dims: (number | string)[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[elem],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export interface GraphSpec {
  name: string;
  nodes: onnxProto.onnx.INodeProto[];
  initializers: onnxProto.onnx.ITensorProto[];
  inputs: onnxProto.onnx.IValueInfoProto[];
  outputs: onnxProto.onnx.IValueInfoProto[];
}

/** Serializes a graph to ONNX model bytes (opset 17, IR version 8; com.microsoft 1 when a node uses it). */
export function serializeModel(g: GraphSpec, producer = 'feature-atlas'): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: producer,
    opsetImport: [
      { domain: '', version: OPSET },
      ...(g.nodes.some((n) => n.domain === MS_DOMAIN) ? [{ domain: MS_DOMAIN, version: 1 }] : []),
    ],
    graph: {
      name: g.name,
      node: g.nodes,
      initializer: g.initializers,
      input: g.inputs,
      output: g.outputs,
    },
  });
  return onnx.ModelProto.encode(model).finish();
}
