/** What the benchmarks share: their --name value options and random weights for timing runs. */
import { parseArgs } from 'node:util';
import type { SaeArchitecture, SaeConfig } from '../src/engine/sae/types.js';

/** The value of `--name VALUE` (or `--name=VALUE`) on the command line, else the fallback. */
export function arg(name: string, fallback: string): string {
  const { values } = parseArgs({ options: { [name]: { type: 'string' } }, strict: false, allowPositionals: true });
  const v = values[name];
  return typeof v === 'string' ? v : fallback;
}

/** Whether `--name` was given. */
export function flag(name: string): boolean {
  const { values } = parseArgs({ options: { [name]: { type: 'boolean' } }, strict: false, allowPositionals: true });
  return values[name] === true;
}

/** Cheap deterministic uniform values in [-scale, scale) (xorshift): random weights for timing runs. */
export function uniform(count: number, scale: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** A float32 SAELens-style configuration for timing runs on random weights. */
export function benchSaeConfig(
  architecture: SaeArchitecture,
  dIn: number,
  dSae: number,
  k: number | null,
  applyBDecToInput: boolean,
): SaeConfig {
  return {
    architecture,
    dIn,
    dSae,
    k,
    hookName: null,
    modelName: null,
    prependBos: null,
    applyBDecToInput,
    normalization: { kind: 'none', scalingFactor: null },
    sourceFormat: 'saelens',
    dtype: 'float32',
    extra: {},
  };
}
