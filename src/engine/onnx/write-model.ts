/**
 * Writes a built graph to disk. onnxruntime-node refuses model buffers over 2 GB, so when the
 * initializers exceed a threshold their bytes go to `<model file>.data` beside the model as ONNX
 * external data; such a model must then be opened by path, not from bytes. Builders of large models
 * stream their weights into an ExternalDataWriter as they go instead, so no whole model is ever held
 * in memory.
 */
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import type onnxProto from 'onnx-proto';
import { floatTensor, onnx, serializeModel, type GraphSpec } from './proto.js';

export const DEFAULT_EXTERNAL_DATA_THRESHOLD = 1.5 * 1024 ** 3;
/** Tensors smaller than this stay inline: constants and shapes are not worth an external reference. */
const MIN_EXTERNAL_BYTES = 1024;
/** Offsets aligned to pages let onnxruntime memory-map the data. */
const ALIGN = 4096;

export interface WriteModelOptions {
  /** Total initializer bytes above which the weights are written as external data. */
  externalDataThresholdBytes?: number;
}

/** Appends initializer bytes to `<model path>.data` and hands back tensors that reference them. */
export class ExternalDataWriter {
  private readonly location: string;
  private fd: number | null;
  private offset = 0;

  constructor(modelPath: string) {
    this.location = `${basename(modelPath)}.data`;
    this.fd = openSync(`${modelPath}.data`, 'w');
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.offset;
  }

  /** A tensor with raw data: kept inline when small, else moved to the data file. */
  move(t: onnxProto.onnx.ITensorProto): onnxProto.onnx.ITensorProto {
    const raw = t.rawData;
    if (!raw || raw.length < MIN_EXTERNAL_BYTES) return t;
    return { ...t, rawData: null, ...this.append([raw]) };
  }

  /** A float32 initializer, written out at once when large. */
  tensor(name: string, dims: number[], data: Float32Array): onnxProto.onnx.ITensorProto {
    return this.move(floatTensor(name, dims, data));
  }

  /** A float32 initializer written from consecutive pieces (rows of an embedding), never whole in memory. */
  fromChunks(name: string, dims: number[], chunks: Iterable<Float32Array>): onnxProto.onnx.ITensorProto {
    const want = 4 * dims.reduce((a, b) => a * b, 1);
    const bytes = (function* () {
      for (const c of chunks) yield new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
    })();
    const ref = this.append(bytes);
    if (Number(ref.externalData[2].value) !== want)
      throw new Error(`initializer ${name}: dims [${dims}] need ${want} bytes, got ${ref.externalData[2].value}`);
    return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, ...ref };
  }

  private append(parts: Iterable<Uint8Array>) {
    if (this.fd === null) throw new Error('external data file already closed');
    const start = Math.ceil(this.offset / ALIGN) * ALIGN;
    let at = start;
    for (const raw of parts) {
      for (let done = 0; done < raw.length;) done += writeSync(this.fd, raw, done, raw.length - done, at + done);
      at += raw.length;
    }
    this.offset = at;
    return {
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: this.location },
        { key: 'offset', value: String(start) },
        { key: 'length', value: String(at - start) },
      ],
    };
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export function writeOnnxModel(spec: GraphSpec, path: string, opts: WriteModelOptions = {}): { externalData: boolean } {
  const threshold = opts.externalDataThresholdBytes ?? DEFAULT_EXTERNAL_DATA_THRESHOLD;
  const total = spec.initializers.reduce((sum, t) => sum + (t.rawData?.length ?? 0), 0);
  if (total <= threshold) {
    writeFileSync(path, serializeModel(spec));
    return { externalData: false };
  }
  const writer = new ExternalDataWriter(path);
  try {
    const initializers = spec.initializers.map((t) => writer.move(t));
    writeFileSync(path, serializeModel({ ...spec, initializers }));
  } finally {
    writer.close();
  }
  return { externalData: true };
}
