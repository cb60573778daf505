/**
 * What the paths of bench/vs-torch.ts share: the PyTorch worker (bench/vs_torch.py, one JSON command per
 * line each way), the Path and Case shapes a path hands the runner, and the equality checks.
 * A new path is a module exporting a Path, added to PATHS in bench/vs-torch.ts; its PyTorch side is either
 * ops of bench/vs_torch.py or its own Python module (Path.pythonModule) whose OPS dict the worker loads.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const PYTHON = '/usr/bin/python3';
/** Largest relative difference |a − b| / max(1, |b|) accepted between the two sides. */
export const TOL = 1e-5;

/**
 * The worker's environment for `threads` threads (0: the libraries' defaults, every core). torch.set_num_threads
 * bounds ATen's own pool only: Debian's OpenBLAS (pthreads) reads its thread count from the environment when it
 * loads, and without this it multiplied on every core while the bench said one thread each, and its idle workers
 * spun on the atlas's cores after each torch turn (a [256, 768] × [768, 24576] product: 59.6 ms at 1.97 cores
 * busy, 121.4 ms with OPENBLAS_NUM_THREADS=1).
 */
export function torchEnv(threads: number): NodeJS.ProcessEnv {
  if (threads <= 0) return process.env;
  const n = String(threads);
  return { ...process.env, OPENBLAS_NUM_THREADS: n, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n };
}

/** The PyTorch worker: one JSON command per line, one JSON answer per line. */
export class Torch {
  private readonly lines: AsyncIterator<string>;
  private constructor(private readonly proc: ReturnType<typeof spawn>) {
    this.lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  }
  static start(worker: string, modules: string[], threads: number): Torch {
    return new Torch(
      spawn(PYTHON, [worker, ...modules], { stdio: ['pipe', 'pipe', 'inherit'], env: torchEnv(threads) }),
    );
  }
  async call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.proc.stdin!.write(JSON.stringify(cmd) + '\n');
    const r = await this.lines.next();
    if (r.done) throw new Error(`the torch worker exited during ${String(cmd.op)}`);
    const reply = JSON.parse(r.value) as Record<string, unknown>;
    if (reply.error) throw new Error(`torch worker: ${String(reply.error)}`);
    return reply;
  }
  /** Seconds per call of a timed command (its `times`). */
  async times(cmd: Record<string, unknown>): Promise<number[]> {
    return (await this.call(cmd)).times as number[];
  }
  /** Runs `cmd` once with an output folder and returns a reader of the raw files it wrote there. */
  async outputs(dir: string, cmd: Record<string, unknown>): Promise<(file: string) => ArrayBuffer> {
    const out = mkdtempSync(join(dir, 'out-'));
    await this.call({ ...cmd, out, iters: 0 });
    return (file) => {
      // A small file's Buffer is a view into Node's shared pool: copy exactly its bytes.
      const b = readFileSync(join(out, `${file}.bin`));
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    };
  }
  close(): void {
    this.proc.stdin!.end();
  }
}

export interface PathContext {
  torch: Torch;
  /** Scratch folder, removed after the run. */
  dir: string;
  /** Threads each side computes with. */
  threads: number;
  /** Calls timed per case per round on each side. */
  iters: number;
  log: (line: string) => void;
}

/** One row of the table: the same computation on both sides. */
export interface Case {
  path: string;
  /** Size column: vectors, tokens, rows… with its unit. */
  size: string;
  /** One atlas call (timed by the runner, one call at a time). */
  atlas: () => Promise<unknown>;
  /** `iters` torch calls; seconds per call. */
  torch: () => Promise<number[]>;
  /** Compares both sides' outputs before anything is timed; returns the largest relative difference. */
  check: () => Promise<number>;
  /** Another implementation timed in the same rounds (pgvector's scan), shown beside the ratio. */
  other?: { name: string; run: () => Promise<unknown> };
}

export interface PathCases {
  cases: Case[];
  close(): Promise<void>;
}

export interface Path {
  /** Its name in --paths. */
  name: string;
  /** What it runs on either side, printed before the table. */
  describe: string;
  /** A Python module with an OPS dict for the worker, when the path's torch side is not in bench/vs_torch.py. */
  pythonModule?: string;
  /** Builds the inputs and both sides' state; returns the reason instead when it cannot run here. */
  setup(ctx: PathContext): Promise<PathCases | { skip: string }>;
}

export function relDiff(a: Float32Array, b: Float32Array, what: string, tol = TOL): number {
  if (a.length !== b.length) throw new Error(`${what}: ${a.length} values vs torch's ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  if (!(worst <= tol)) throw new Error(`${what}: differs from torch by ${worst} (relative), over ${tol}`);
  return worst;
}

/**
 * TopK rows of `width` slots: indices must agree wherever the value is positive and clear of its
 * neighbours (a near-tie may order either way).
 */
export function checkTopIndices(
  got: ArrayLike<number>,
  indices: Int32Array,
  values: Float32Array,
  width: number,
  what: string,
  tol = TOL,
): void {
  for (let i = 0; i < indices.length; i++) {
    const t = i % width;
    const tied =
      (t > 0 && Math.abs(values[i] - values[i - 1]) <= tol) ||
      (t + 1 < width && Math.abs(values[i] - values[i + 1]) <= tol);
    if (!tied && values[i] > 0 && got[i] !== indices[i])
      throw new Error(`${what}: slot ${i} holds ${got[i]}, torch's ${indices[i]}`);
  }
}
