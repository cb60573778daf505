/** What the format readers share: one tensor-file interface over safetensors and npz, and checks. */
import { readFileSync } from 'node:fs';
import { AtlasError } from '../../../errors.js';
import { DType } from '../../tensors/dtype.js';
import { SafetensorsFile, assertShape } from '../../tensors/safetensors.js';
import { NpzFile } from '../../tensors/npy.js';
import { TorchStateDict } from '../../tensors/torch.js';
import { DecoderBatch } from '../types.js';

export interface TensorReader {
  readonly path: string;
  has(name: string): boolean;
  shape(name: string): number[];
  dtype(name: string): DType;
  readF32(name: string, expectShape?: number[]): Float32Array;
  readRowsF32(name: string, start: number, count: number): Float32Array;
  close(): void;
}

/** What SafetensorsFile and NpzFile both offer; a reader needs nothing more. */
interface TensorFile {
  has(name: string): boolean;
  info(name: string): { shape: number[]; dtype: DType };
  readF32(name: string, expectShape?: number[]): Float32Array;
  readRowsF32(name: string, start: number, count: number): Float32Array;
  close(): void;
}

function readerOf(path: string, f: TensorFile): TensorReader {
  return {
    path,
    has: (n) => f.has(n),
    shape: (n) => f.info(n).shape,
    dtype: (n) => f.info(n).dtype,
    readF32: (n, s) => f.readF32(n, s),
    readRowsF32: (n, a, c) => f.readRowsF32(n, a, c),
    close: () => f.close(),
  };
}

export function safetensorsReader(path: string): TensorReader {
  return readerOf(path, SafetensorsFile.open(path));
}

export function npzReader(path: string): TensorReader {
  return readerOf(path, NpzFile.open(path));
}

export function torchReader(sd: TorchStateDict): TensorReader {
  return readerOf(sd.path, sd);
}

/** Checks at open time, from headers only, that a tensor exists with the expected shape. */
export function requireTensor(r: TensorReader, name: string, shape: number[]): void {
  if (!r.has(name))
    throw new AtlasError('BAD_FILE', `${r.path} is missing tensor "${name}" (expected shape [${shape.join(', ')}]).`);
  assertShape(r.path, name, r.shape(name), shape);
}

/** Throws BAD_FILE naming the tensor and the flat index of its first NaN or infinite value. */
export function assertFinite(values: Float32Array, file: string, name: string, baseIndex = 0): void {
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new AtlasError(
        'BAD_FILE',
        `${file}: tensor "${name}" holds ${values[i]} at flat index ${baseIndex + i}; every weight must be finite.`,
      );
    }
  }
}

/** Reads a whole tensor as float32, checking shape and finiteness. */
export function readChecked(r: TensorReader, name: string, shape: number[]): Float32Array {
  const v = r.readF32(name, shape);
  assertFinite(v, r.path, name);
  return v;
}

/** Streams rows of a [dSae, dIn] tensor in batches, each read from disk and checked. */
export function* streamRows(
  r: TensorReader,
  name: string,
  dSae: number,
  dIn: number,
  batchRows: number,
): Iterable<DecoderBatch> {
  if (!Number.isInteger(batchRows) || batchRows < 1)
    throw new AtlasError('BAD_USER_INPUT', `batchRows must be a positive integer, got ${batchRows}.`);
  for (let start = 0; start < dSae; start += batchRows) {
    const count = Math.min(batchRows, dSae - start);
    const rows = r.readRowsF32(name, start, count);
    assertFinite(rows, r.path, name, start * dIn);
    yield { start, rows };
  }
}

export const DTYPE_NAMES: Partial<Record<DType, string>> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
};

export function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new AtlasError('BAD_FILE', `Cannot read ${path}: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new AtlasError('BAD_FILE', `${path} is not valid JSON (${(e as Error).message}); it may be truncated.`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new AtlasError('BAD_FILE', `${path} must hold a JSON object.`);
  return v as Record<string, unknown>;
}

export function positiveInt(v: unknown, what: string, file: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new AtlasError('BAD_FILE', `${file}: ${what} must be a positive integer, got ${JSON.stringify(v)}.`);
  }
  return v;
}

export function optString(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}
