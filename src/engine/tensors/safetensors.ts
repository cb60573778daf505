/**
 * safetensors reader and writer. The reader keeps only the header in memory and reads each
 * tensor (or a row range of it) from disk on demand, so a large checkpoint never sits whole in
 * the JS heap.
 * Format: u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
 * then the raw little-endian tensor bytes.
 */
import { openSync, readSync, fstatSync, closeSync, writeFileSync } from 'node:fs';
import { AtlasError } from '../../errors.js';
import { DType, DTYPE_BYTES, isDType, toFloat32, fromFloat32 } from './dtype.js';

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  byteLength: number;
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export class SafetensorsFile {
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Record<string, string>;
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
  ) {
    this.fd = fd;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new AtlasError('BAD_FILE', `Cannot open safetensors file ${path}: ${(e as Error).message}`);
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 8)
        throw new AtlasError('BAD_FILE', `${path} is truncated: ${size} bytes, too short for a safetensors header.`);
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
        throw new AtlasError(
          'BAD_FILE',
          `${path} is not a valid safetensors file (header length ${headerLen}, file size ${size}); it may be ` +
            `truncated.`,
        );
      }
      const headerBuf = Buffer.alloc(headerLen);
      readSync(fd, headerBuf, 0, headerLen, 8);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(headerBuf.toString('utf8'));
      } catch {
        throw new AtlasError('BAD_FILE', `${path} has an unreadable safetensors header (not JSON).`);
      }
      const dataStart = 8 + headerLen;
      const tensors = new Map<string, TensorInfo>();
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header)) {
        if (name === '__metadata__') {
          metadata = (raw ?? {}) as Record<string, string>;
          continue;
        }
        const t = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
        if (!t || typeof t.dtype !== 'string' || !Array.isArray(t.shape) || !Array.isArray(t.data_offsets)) {
          throw new AtlasError('BAD_FILE', `${path}: tensor "${name}" has a malformed header entry.`);
        }
        if (!isDType(t.dtype))
          throw new AtlasError('UNSUPPORTED', `${path}: tensor "${name}" has unsupported dtype ${t.dtype}.`);
        const [begin, end] = t.data_offsets;
        const count = t.shape.reduce((a, b) => a * b, 1);
        if (end - begin !== count * DTYPE_BYTES[t.dtype]) {
          throw new AtlasError(
            'BAD_FILE',
            `${path}: tensor "${name}" of shape [${t.shape}] ${t.dtype} should take ${count * DTYPE_BYTES[t.dtype]} ` +
              `bytes but its offsets span ${end - begin}.`,
          );
        }
        if (dataStart + end > size) {
          throw new AtlasError(
            'BAD_FILE',
            `${path} is truncated: tensor "${name}" ends at byte ${dataStart + end} but the file has ${size} bytes.`,
          );
        }
        tensors.set(name, { name, dtype: t.dtype, shape: t.shape, offset: dataStart + begin, byteLength: end - begin });
      }
      return new SafetensorsFile(path, fd, tensors, metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) {
      const have = [...this.tensors.keys()].slice(0, 20).join(', ');
      throw new AtlasError('BAD_FILE', `${this.path} has no tensor "${name}" (it has: ${have}).`);
    }
    return t;
  }

  /** Reads a tensor as float32 and checks its shape when `expectShape` is given. */
  readF32(name: string, expectShape?: number[]): Float32Array {
    const t = this.info(name);
    if (expectShape) assertShape(this.path, name, t.shape, expectShape);
    return toFloat32(this.readBytes(t.offset, t.byteLength), t.dtype);
  }

  /** Reads rows [start, start+count) of a tensor's first dimension as float32. */
  readRowsF32(name: string, start: number, count: number): Float32Array {
    const t = this.info(name);
    const rowElems = t.shape.slice(1).reduce((a, b) => a * b, 1);
    const rowBytes = rowElems * DTYPE_BYTES[t.dtype];
    if (start < 0 || start + count > (t.shape[0] ?? 1)) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        `Rows ${start}..${start + count} are outside tensor "${name}" of shape [${t.shape}].`,
      );
    }
    return toFloat32(this.readBytes(t.offset + start * rowBytes, count * rowBytes), t.dtype);
  }

  private readBytes(position: number, length: number): Uint8Array {
    if (this.fd === null) throw new Error(`safetensors file ${this.path} is closed`);
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buf, done, length - done, position + done);
      if (n === 0) throw new AtlasError('BAD_FILE', `${this.path} is truncated at byte ${position + done}.`);
      done += n;
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

export function assertShape(file: string, name: string, got: number[], want: number[]): void {
  if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
    throw new AtlasError(
      'BAD_FILE',
      `${file}: tensor "${name}" has shape [${got.join(', ')}] but [${want.join(', ')}] was expected.`,
    );
  }
}

export interface TensorToWrite {
  dtype?: 'F32' | 'F16' | 'BF16';
  shape: number[];
  data: Float32Array;
}

/** Writes float tensors to a safetensors file (used by export and by tests that make fixtures). */
export function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      throw new Error(`tensor ${name}: shape [${t.shape}] does not match ${t.data.length} values`);
    const dtype = t.dtype ?? 'F32';
    const bytes = fromFloat32(t.data, dtype);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, ...chunks]));
}
