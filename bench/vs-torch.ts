/**
 * Atlas against PyTorch, side by side in one interleaved run (issue #19). The PyTorch side is
 * bench/vs_torch.py, a worker child of this process; it needs /usr/bin/python3 with torch (Debian's
 * torch 1.13, development time only): without it the bench says so and exits cleanly.
 *
 * Paths measured, each through the atlas's public entry point so that later work on it shows here:
 * - SAE encode (SaeEncoder.encode, what encodeVectors runs) against torch topk(relu(x W + b), k), for
 *   n = 1 … 1024 vectors, codes only and with the reconstruction Σ v W_dec[i] + b_dec.
 * Equality first: every case's outputs are compared (values and reconstruction within TOL relative,
 * indices wherever the value is not tied with a neighbour) before anything is timed. Then ROUNDS
 * rounds, each timing every case on both sides in turn; the table gives median milliseconds per
 * call and the speed ratio torch time ÷ atlas time (above 1: the atlas is faster).
 *
 * BLAS: torch multiplies with whatever Debian's libblas.so.3 alternative is; with the reference BLAS
 * (libblas3 alone) it is about 20× slower, so install libopenblas0-pthread first, as the issue measured.
 * Allocator: both processes run with the same glibc malloc settings (ALLOCATOR below; this VM pays
 * about 30 µs per re-touched freed page), set by re-running this script as a child with them.
 * Usage: node --import tsx bench/vs-torch.ts [--threads 1] [--dsae 24576] [--din 768] [--k 32]
 * [--rounds 5] [--iters 3]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { SaeEncoder, type SaeEncoding } from '../src/engine/sae/encoder.js';
import type { SaeParams } from '../src/engine/sae/types.js';
import { arg, benchSaeConfig, flag, uniform } from './util.js';

const ALLOCATOR = {
  MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20),
  MALLOC_TRIM_THRESHOLD_: String(2 ** 32),
  MALLOC_TOP_PAD_: String(256 * 2 ** 20),
};
const PYTHON = '/usr/bin/python3';
const WORKER = resolve(import.meta.dirname, 'vs_torch.py');
const TOL = 1e-5;

const threads = Number(arg('threads', '1'));
const dIn = Number(arg('din', '768'));
const dSae = Number(arg('dsae', '24576'));
const k = Number(arg('k', '32'));
const rounds = Number(arg('rounds', '5'));
const iters = Number(arg('iters', '3'));
const SIZES = [1, 16, 64, 256, 1024];

/** The PyTorch worker: one JSON command per line, one JSON answer per line. */
class Torch {
  private readonly lines: AsyncIterator<string>;
  private constructor(private readonly proc: ReturnType<typeof spawn>) {
    this.lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  }
  static start(): Torch {
    return new Torch(spawn(PYTHON, [WORKER], { stdio: ['pipe', 'pipe', 'inherit'] }));
  }
  async call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.proc.stdin!.write(JSON.stringify(cmd) + '\n');
    const r = await this.lines.next();
    if (r.done) throw new Error(`the torch worker exited during ${String(cmd.op)}`);
    const reply = JSON.parse(r.value) as Record<string, unknown>;
    if (reply.error) throw new Error(`torch worker: ${String(reply.error)}`);
    return reply;
  }
  close(): void {
    this.proc.stdin!.end();
  }
}

interface Case {
  path: string;
  n: number;
  atlas: () => Promise<unknown>;
  /** Mean seconds per call on the torch side over `iters` calls. */
  torch: () => Promise<number>;
  /** Compares both sides' outputs; returns the largest relative difference. */
  check: () => Promise<number>;
}

function relDiff(a: Float32Array, b: Float32Array, what: string): number {
  if (a.length !== b.length) throw new Error(`${what}: ${a.length} values vs torch's ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  if (!(worst <= TOL)) throw new Error(`${what}: differs from torch by ${worst} (relative), over ${TOL}`);
  return worst;
}

/** Indices must agree wherever the value is clear of its neighbours (a near-tie may order either way). */
function checkIndices(e: SaeEncoding, indices: Int32Array, values: Float32Array, what: string): void {
  for (let i = 0; i < indices.length; i++) {
    const t = i % e.width;
    const tied =
      (t > 0 && Math.abs(values[i] - values[i - 1]) <= TOL) ||
      (t + 1 < e.width && Math.abs(values[i] - values[i + 1]) <= TOL);
    if (!tied && values[i] > 0 && e.indices[i] !== indices[i])
      throw new Error(`${what}: slot ${i} holds feature ${e.indices[i]}, torch's ${indices[i]}`);
  }
}

async function saeCases(dir: string, torch: Torch): Promise<{ cases: Case[]; close: () => Promise<void> }> {
  const w = 1 / Math.sqrt(dIn);
  const params: SaeParams = {
    W_enc: uniform(dIn * dSae, w, 1),
    b_enc: uniform(dSae, 0.1, 2),
    W_dec: uniform(dSae * dIn, w, 3),
    b_dec: uniform(dIn, 0.1, 4),
  };
  for (const name of ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const)
    writeFileSync(join(dir, `${name}.bin`), params[name]!);
  await torch.call({ op: 'sae_load', dir, dIn, dSae, k });
  // torch's formula exactly: no normalization, no b_dec subtracted from the input.
  const cfg = benchSaeConfig('topk', dIn, dSae, k, false);
  const encoder = await SaeEncoder.create(cfg, params, { session: { device: 'cpu', threads } });
  const cases: Case[] = [];
  for (const reconstruct of [false, true]) {
    for (const n of SIZES) {
      const x = uniform(n * dIn, 1, 100 + n);
      const xPath = join(dir, `x${n}.bin`);
      writeFileSync(xPath, x);
      const run = () => encoder.encode(x, n, k, { reconstruct });
      cases.push({
        path: reconstruct ? 'SAE encode + reconstruction' : 'SAE encode (codes)',
        n,
        atlas: run,
        torch: async () => (await torch.call({ op: 'sae_encode', x: xPath, n, reconstruct, iters })).seconds as number,
        check: async () => {
          const out = mkdtempSync(join(dir, 'out-'));
          await torch.call({ op: 'sae_encode', x: xPath, n, reconstruct, out, iters: 0 });
          const e = await run();
          // A small file's Buffer is a view into Node's shared pool: copy exactly its bytes.
          const read = (f: string) => {
            const b = readFileSync(join(out, f));
            return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
          };
          const values = new Float32Array(read('values.bin'));
          const indices = new Int32Array(read('indices.bin'));
          const what = `${reconstruct ? 'encode+decode' : 'encode'} n=${n}`;
          let worst = relDiff(e.values, values, `${what} values`);
          checkIndices(e, indices, values, what);
          if (reconstruct)
            worst = Math.max(worst, relDiff(e.xHat!, new Float32Array(read('x_hat.bin')), `${what} x_hat`));
          return worst;
        },
      });
    }
  }
  return { cases, close: () => encoder.close() };
}

async function atlasSeconds(run: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  for (let i = 0; i < iters; i++) await run();
  return (performance.now() - t) / 1000 / iters;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    console.log(`bench/vs-torch: skipped, ${PYTHON} cannot import torch (development-time dependency).`);
    return;
  }
  const torch = Torch.start();
  const dir = mkdtempSync(join(tmpdir(), 'atlas-vs-torch-'));
  try {
    const hello = await torch.call({ op: 'hello', threads });
    console.log(
      `atlas vs torch ${String(hello.torch)} (numpy ${String(hello.numpy)}), ${threads} thread(s) each, ` +
        `${rounds} interleaved rounds of ${iters} calls; allocator: ` +
        Object.entries(ALLOCATOR)
          .map(([key, v]) => `${key}=${v}`)
          .join(' '),
    );
    console.log(`SAE: TopK ${dSae} x ${dIn}, k = ${k}, random weights`);
    const sae = await saeCases(dir, torch);
    try {
      for (const c of sae.cases) {
        const worst = await c.check();
        console.log(`equal: ${c.path} n=${c.n} (max relative difference ${worst.toExponential(1)})`);
      }
      const times = sae.cases.map(() => ({ atlas: [] as number[], torch: [] as number[] }));
      for (let r = 0; r < rounds; r++) {
        for (const [i, c] of sae.cases.entries()) {
          await c.atlas(); // warm: first calls pay for allocations both sides
          times[i].atlas.push(await atlasSeconds(c.atlas));
          times[i].torch.push(await c.torch());
        }
      }
      console.log('\n| path | n | atlas ms | torch ms | atlas ÷ torch speed |\n|---|---|---|---|---|');
      for (const [i, c] of sae.cases.entries()) {
        const a = median(times[i].atlas);
        const t = median(times[i].torch);
        console.log(
          `| ${c.path} | ${c.n} | ${(a * 1e3).toFixed(2)} | ${(t * 1e3).toFixed(2)} | ${(t / a).toFixed(2)} |`,
        );
      }
    } finally {
      await sae.close();
    }
  } finally {
    torch.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (flag('child')) await main();
else {
  // Re-run with the allocator settings, which glibc reads at process start; the torch worker inherits them.
  const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1), '--child'], {
    stdio: 'inherit',
    env: { ...process.env, ...ALLOCATOR },
  });
  process.exitCode = child.status ?? 1;
}
