/**
 * A dictionary whose parameters are tensors of a state dict under the publisher's names: each
 * parameter names its tensor and how it is stored relative to the atlas layout (SaeParams):
 * - 'same': stored as the parameter is ([dIn, dSae] for W_enc, [dSae, dIn] for W_dec).
 * - 'T': stored transposed, as nn.Linear keeps its weight ([out, in]).
 * - 'fill': a single value (a 0-dim or 1-element tensor) that every feature shares.
 * Shapes are checked from headers at open time; values (and their finiteness) when read.
 */
import { AtlasError } from '../../../errors.js';
import { SaeConfig, SaeParams, SaeSource } from '../types.js';
import { TensorReader, assertFinite, readChecked, requireTensor, streamRows } from './common.js';

export interface MappedParam {
  tensor: string;
  layout: 'same' | 'T' | 'fill';
}

export type ParamMap = Partial<Record<keyof SaeParams, MappedParam>>;

/** The shape the atlas uses for each parameter. */
function atlasShape(name: keyof SaeParams, dIn: number, dSae: number): number[] {
  if (name === 'W_enc') return [dIn, dSae];
  if (name === 'W_dec') return [dSae, dIn];
  if (name === 'W_skip') return [dIn, dIn];
  return name === 'b_dec' ? [dIn] : [dSae];
}

function storedShape(p: MappedParam, shape: number[]): number[] {
  if (p.layout === 'T') return [shape[1], shape[0]];
  return p.layout === 'fill' ? [] : shape;
}

/** [rows, cols] → [cols, rows], in square tiles so that reads and writes both stay in cache. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  const T = 64;
  for (let i0 = 0; i0 < rows; i0 += T) {
    const i1 = Math.min(rows, i0 + T);
    for (let j0 = 0; j0 < cols; j0 += T) {
      const j1 = Math.min(cols, j0 + T);
      for (let i = i0; i < i1; i++) for (let j = j0; j < j1; j++) out[j * rows + i] = a[i * cols + j];
    }
  }
  return out;
}

/** Checks every mapped tensor's shape now and returns a source that reads them on demand. */
export function mappedSource(
  r: TensorReader,
  config: SaeConfig,
  map: ParamMap,
  extra: Partial<Pick<SaeSource, 'density' | 'logSparsity'>> = {},
): SaeSource {
  const { dIn, dSae } = config;
  for (const [name, p] of Object.entries(map) as [keyof SaeParams, MappedParam][]) {
    const want = storedShape(p, atlasShape(name, dIn, dSae));
    if (p.layout === 'fill') {
      if (!r.has(p.tensor))
        throw new AtlasError('BAD_FILE', `${r.path} is missing tensor "${p.tensor}" (one value for every feature).`);
      const got = r.shape(p.tensor);
      if (got.reduce((a, b) => a * b, 1) !== 1) {
        throw new AtlasError(
          'BAD_FILE',
          `${r.path}: tensor "${p.tensor}" has shape [${got.join(', ')}] but a single value was expected.`,
        );
      }
    } else requireTensor(r, p.tensor, want);
  }
  const read = (name: keyof SaeParams): Float32Array => {
    const p = map[name]!;
    const shape = atlasShape(name, dIn, dSae);
    if (p.layout === 'fill') {
      const v = r.readF32(p.tensor);
      assertFinite(v, r.path, p.tensor);
      return new Float32Array(shape[0]).fill(v[0]);
    }
    const v = readChecked(r, p.tensor, storedShape(p, shape));
    return p.layout === 'T' ? transpose(v, shape[1], shape[0]) : v;
  };
  const wDec = map.W_dec!;
  return {
    config,
    decoderRows: function* (batchRows) {
      if (wDec.layout === 'same') {
        yield* streamRows(r, wDec.tensor, dSae, dIn, batchRows);
        return;
      }
      if (!Number.isInteger(batchRows) || batchRows < 1)
        throw new AtlasError('BAD_USER_INPUT', `batchRows must be a positive integer, got ${batchRows}.`);
      // Rows of W_dec are columns of the stored [dIn, dSae] weight: one read, then slices.
      const all = read('W_dec');
      for (let start = 0; start < dSae; start += batchRows) {
        yield { start, rows: all.subarray(start * dIn, Math.min(dSae, start + batchRows) * dIn) };
      }
    },
    loadParams: () => {
      const out: Partial<Record<keyof SaeParams, Float32Array>> = {};
      for (const name of Object.keys(map) as (keyof SaeParams)[]) out[name] = read(name);
      return out as SaeParams;
    },
    logSparsity: extra.logSparsity ?? (() => null),
    density: extra.density ?? (() => null),
    close: () => r.close(),
  };
}
