/** What the benchmarks share: their --name value options and random weights for timing runs. */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import type { SaeArchitecture, SaeConfig } from '../src/engine/sae/types.js';
import type { EncodeOptions, SaeEncoder } from '../src/engine/sae/encoder.js';
import type { LoadedModel } from '../src/engine/model/types.js';
import type { TokenContext } from '../src/engine/dashboards/corpus.js';
import { nonBosRows } from '../src/engine/dashboards/dictionary-build.js';
import { normal, rng } from '../test/helpers/rng.js';

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

/** Scales each row of `a` ([n, d] row-major) to unit length, in place. */
export function normalizeRows(a: Float32Array, d: number): Float32Array {
  for (let i = 0; i < a.length; i += d) {
    let sq = 0;
    for (let j = 0; j < d; j++) sq += a[i + j] ** 2;
    const inv = 1 / Math.sqrt(sq);
    for (let j = 0; j < d; j++) a[i + j] *= inv;
  }
  return a;
}

/**
 * Decoder-like rows: unit rows of width d around `clusters` random centres (as test/helpers/rng.ts
 * clusteredRows), made block by block; the centres come from `centreSeed` and the scatter from `seed`,
 * so queries can share the clusters of the rows without repeating them.
 */
export function* clusteredBlocks(
  d: number,
  centreSeed: number,
  seed: number,
  n: number,
  block: number,
  clusters = 12,
  spread = 0.6,
): Generator<Float32Array> {
  const centreRand = rng(centreSeed);
  const centres = Array.from({ length: clusters }, () => Float32Array.from({ length: d }, () => normal(centreRand)));
  const rand = rng(seed);
  for (let start = 0; start < n; start += block) {
    const rows = Math.min(block, n - start);
    const out = new Float32Array(rows * d);
    for (let i = 0; i < rows; i++) {
      const c = centres[Math.floor(rand() * clusters)];
      for (let j = 0; j < d; j++) out[i * d + j] = c[j] + spread * normal(rand);
    }
    yield normalizeRows(out, d);
  }
}

/**
 * The allocator settings the torch comparisons run under, on both sides: this VM pays about 30 µs per
 * re-touched freed page, so freed memory is kept (no trim, a large top pad, mmap only above 32 MB).
 */
export const ALLOCATOR = {
  MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20),
  MALLOC_TRIM_THRESHOLD_: String(2 ** 32),
  MALLOC_TOP_PAD_: String(256 * 2 ** 20),
};

/**
 * Runs `main` in a child of this script started with ALLOCATOR, which glibc reads at process start (a
 * torch worker the child spawns inherits it); in that child (--child), runs it directly.
 */
export async function withAllocator(main: () => Promise<void>): Promise<void> {
  if (flag('child')) return main();
  const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1), '--child'], {
    stdio: 'inherit',
    env: { ...process.env, ...ALLOCATOR },
  });
  process.exitCode = child.status ?? 1;
}

/** Story-like sentences from a fixed word list, in paragraphs, for build corpora (a seeded LCG picks words). */
export function benchText(words: number, seed: number): string {
  const vocab = (
    'once upon a time there was little girl named Lily she liked to play with her dog in the park one day sun ' +
    'hot and sky blue saw big red ball under tree mom said yes happy friend Tom ran home'
  ).split(' ');
  let s = seed;
  const next = (n: number) => {
    s = (s * 1103515245 + 12345) >>> 0;
    return (s >>> 8) % n;
  };
  const parts: string[] = [];
  for (let w = 0; w < words;) {
    const len = 5 + next(8);
    const sentence = Array.from({ length: len }, () => vocab[next(vocab.length)]).join(' ');
    parts.push(sentence[0].toUpperCase() + sentence.slice(1) + (next(6) === 0 ? '.\n\n' : '. '));
    w += len;
  }
  return parts.join('');
}

/**
 * Seconds of a bare pass, the baseline a build is measured against: batches of `batch` contexts run
 * forward to `hook`, and their non-BOS rows encoded with `k` (and `options`); nothing kept.
 */
export async function barePass(
  model: LoadedModel,
  encoder: SaeEncoder,
  contexts: TokenContext[],
  run: { batch: number; hook: string; dIn: number; k: number; options?: EncodeOptions },
): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < contexts.length; i += run.batch) {
    const part = contexts.slice(i, i + run.batch);
    const acts = (
      await model.runHooks(
        part.map((c) => c.ids),
        [run.hook],
      )
    ).get(run.hook)!;
    const n = part.reduce((s, c) => s + c.ids.length - (c.bos ? 1 : 0), 0);
    const x = nonBosRows({ id: 'bench', dIn: run.dIn }, part, acts, run.hook, n);
    await encoder.encode(x, n, run.k, run.options);
  }
  return (performance.now() - t0) / 1000;
}
