/**
 * Writes a built graph to disk. onnxruntime-node refuses model buffers over 2 GB, so when the
 * initializers exceed a threshold their bytes go to `<model file>.data` beside the model as ONNX
 * external data; such a model must then be opened by path, not from bytes.
 */
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import type onnxProto from 'onnx-proto';
import { onnx, serializeModel, type GraphSpec } from './proto.js';

export const DEFAULT_EXTERNAL_DATA_THRESHOLD = 1.5 * 1024 ** 3;
/** Tensors smaller than this stay inline: constants and shapes are not worth an external reference. */
const MIN_EXTERNAL_BYTES = 1024;
/** Offsets aligned to pages let onnxruntime memory-map the data. */
const ALIGN = 4096;

export interface WriteModelOptions {
  /** Total initializer bytes above which the weights are written as external data. */
  externalDataThresholdBytes?: number;
}

export function writeOnnxModel(spec: GraphSpec, path: string, opts: WriteModelOptions = {}): { externalData: boolean } {
  const threshold = opts.externalDataThresholdBytes ?? DEFAULT_EXTERNAL_DATA_THRESHOLD;
  const total = spec.initializers.reduce((sum, t) => sum + (t.rawData?.length ?? 0), 0);
  if (total <= threshold) {
    writeFileSync(path, serializeModel(spec));
    return { externalData: false };
  }
  const dataName = `${basename(path)}.data`;
  const fd = openSync(`${path}.data`, 'w');
  let offset = 0;
  try {
    const initializers = spec.initializers.map((t) => {
      const raw = t.rawData;
      if (!raw || raw.length < MIN_EXTERNAL_BYTES) return t;
      offset = Math.ceil(offset / ALIGN) * ALIGN;
      for (let done = 0; done < raw.length; ) done += writeSync(fd, raw, done, raw.length - done, offset + done);
      const external: onnxProto.onnx.ITensorProto = {
        ...t,
        rawData: null,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: dataName },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(raw.length) },
        ],
      };
      offset += raw.length;
      return external;
    });
    writeFileSync(path, serializeModel({ ...spec, initializers }));
  } finally {
    closeSync(fd);
  }
  return { externalData: true };
}
