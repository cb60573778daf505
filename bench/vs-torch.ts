/**
 * Atlas against PyTorch, side by side in one interleaved run (issue #19). The PyTorch side is
 * bench/vs_torch.py, a worker child of this process; it needs /usr/bin/python3 with torch (Debian's
 * torch 1.13, development time only): without it the bench says so and exits cleanly.
 *
 * Paths (--paths, comma-separated, default all but build), each through the atlas's public entry point so that
 * later work on it shows here; each module's header says what both sides run:
 * - sae: SAE encode, SaeEncoder.encode vs topk(relu(x W + b)) (bench/vs-torch/sae.ts);
 * - forward: model forward to a hook at GPT-2-small shape (bench/vs-torch/forward.ts);
 * - http: one encode request over HTTP vs torch in-process forward + encode (bench/vs-torch/http.ts);
 * - nearest: exact nearest decoder rows, engine vs torch, with pgvector's scan (bench/vs-torch/nearest.ts);
 * - build: a whole `atlas build` at GPT-2-small size vs a torch loop of the same statistics (bench/vs-torch-build.ts).
 * A path is a `Path` (bench/vs-torch/common.ts) added to PATHS below.
 *
 * Equality first: every case's outputs are compared before anything is timed. Then ROUNDS rounds, each
 * timing every case on both sides in turn (warm call, then --iters calls each, one call at a time); the
 * table gives the median milliseconds per call over all rounds and the speed ratio torch ÷ atlas
 * (above 1: the atlas is faster).
 *
 * BLAS: torch multiplies with whatever Debian's libblas.so.3 alternative is (the worker reports the
 * library loaded); with the reference BLAS (libblas3 alone) it is about 20× slower, so install
 * libopenblas0-pthread first. Allocator: both processes run with the same glibc malloc settings
 * (ALLOCATOR in bench/util.ts; this VM pays about 30 µs per re-touched freed page), set by re-running this
 * script as a child with them.
 * Usage: node --import tsx bench/vs-torch.ts [--paths sae,forward,http,nearest,build] [--threads 1] [--rounds 5]
 * [--iters 3], and the paths' own options: [--dsae 24576] [--din 768] [--k 32] (sae), [--layer 11]
 * (forward), [--nearest-rows 16384,100000] [--queries 8] (nearest).
 *
 * Until 2026-12-02 (every figure below this paragraph) the worker left OpenBLAS at its default thread count:
 * torch.set_num_threads(1) does not bound it, so at "1 thread" torch multiplied on both cores, and its idle
 * OpenBLAS workers spun on the atlas's cores after each torch turn. The worker now runs with OPENBLAS_NUM_THREADS
 * (and OMP_/MKL_NUM_THREADS) = --threads and the header line says how many threads OpenBLAS has (torchEnv in
 * ./vs-torch/common.ts). Measured with that (2026-12-02, AMD EPYC family 26 with AVX-512 VNNI, where Debian's
 * OpenBLAS 0.3.21 runs its Haswell kernels; defaults, 1 thread each, --iters 10, load average 1.0–1.8): SAE codes
 * n = 1…1024 6.67 2.44 1.76 1.89 2.12, with reconstruction 7.27 2.13 1.76 1.82 2.05; forward 64 / 512 tokens
 * 2.42 / 2.43; exact nearest 16k / 100k 1.22 / 2.62 against torch, 36.1× / 79.2× faster than pgvector's scan; encode
 * over HTTP (the http path alone, two runs; torch 3.4–3.5 ms) objects 0.50 / 0.54, packed 0.59 / 0.63 (5.4–5.9 ms).
 * The same machine before the fix: SAE codes 3.81 1.33 1.05 1.11 1.17, forward 1.59 / 1.53.
 * Measured (2026-12-02, defaults, 2 cores shared with other jobs at load average 8–15: medians are
 * inflated by scheduling, ratios are what to read), atlas ÷ torch speed at 1 thread / 2 threads:
 * SAE codes n = 1…1024 2.62 1.46 2.03 2.09 2.52 / 1.87 3.93 2.89 2.47 2.47; with reconstruction
 * 1.75 1.67 2.52 2.29 3.05 / 3.17 3.36 3.81 2.19 2.25; forward 64 / 512 tokens 4.08 2.37 / 14.9 3.68;
 * encode over HTTP 0.20 (199 vs 40 ms) / 5.43; exact nearest 16k / 100k 0.74 1.27 / 0.89 1.25, and
 * 12.6× 38.3× / 20.5× 26.9× faster than pgvector's scan (recall@10 1 against torch). At 2 threads torch's
 * OpenMP pool suffers most from the busy machine (its 64-token forward took 4.4 s against 1.1 s at 1).
 * Encode over HTTP after issue #19's request-path work (2026-12-02, 1 thread, --iters 10, load average
 * 4–7, six runs; torch 4.7–11.7 ms, its time moves most with the load): the object list 0.41–1.03 (median
 * 0.56, 11–14 ms), the packed lists 0.44–1.10 (median 0.75, 7.8–11 ms); the commit before, four runs in the
 * same hour: 0.22–0.48 (15–28 ms).
 * Exact nearest after issue #19's 8-bit screen with an exact re-rank (src/engine/nearest.ts; 2026-12-02, 1 thread,
 * --iters 10, load average 1.0–1.8), 16k / 100k rows: clustered 1.02 / 5.88 ms, 54.2× / 81.0× faster than
 * pgvector's scan (55 / 476 ms); --nearest-data uniform 0.92 / 5.83 ms, 55.0× / 78.0×; the float32 product it
 * replaced, same hour: 2.39 / 16.85 ms, 25.7× / 33.2× (61 / 559 ms).
 * Every path on a quiet machine (2026-12-02, defaults, 1 thread, load average 1.1–1.8; the server of `http` in
 * its own process since that day): SAE codes n = 1…1024 1.16 1.04 1.13 1.11 1.09, with reconstruction 1.11
 * 0.98 1.06 1.10 1.05 (both sides near one core's GEMM peak from n = 64, memory-bound at n = 1); forward
 * 64 / 512 tokens 1.20 / 1.13; encode over HTTP objects 0.22 (16.3 vs 3.6 ms), packed 0.53 (6.6 vs 3.5 ms),
 * other runs of the http path alone that hour 0.61–0.65 packed (5.3–5.8 ms), 0.35–0.47 objects; exact nearest
 * 16k / 100k 32.1× / 69.4× faster than pgvector's scan. The ratios above 1.4 in the first line were the busy
 * machine slowing torch more than the atlas.
 * The figures above are from a CPU with AVX-512 VNNI. On an AMD EPYC (family 25, AVX2 only; 2026-12-02, defaults,
 * 1 thread, --iters 10, load average 1.4–3.7), both sides about twice as slow: SAE codes n = 1…1024 1.99 0.92
 * 0.77 0.73 0.78, with reconstruction 2.56 0.88 0.80 0.79 0.87 (the screen's uint8 codes at n ≤ 16; MLAS's float32
 * GEMM about 25% behind OpenBLAS's there); forward 64 / 512 tokens 0.82 / 0.83; encode over HTTP objects 0.50
 * (16.3 vs 8.2 ms), packed 0.59 (12.7 vs 7.5 ms); exact nearest 16k / 100k 1.10 / 1.23 against torch, 30.7× /
 * 40.3× faster than pgvector's scan.
 * On an AMD EPYC of family 25 model 17 (Zen 4, AVX-512 with VNNI; 2026-12-03, defaults, 1 thread, --iters 10, load
 * average 0.5–1.1): SAE codes n = 1…1024 7.79 2.41 1.42 1.22 1.12, with reconstruction 6.70 2.30 1.34 1.23 1.11;
 * after the screen took batches past 32 rows where it pays (src/engine/sae/encoder.ts SCREEN_WIDE_ROWS) 7.14 2.56
 * 1.59 1.40 1.49, with reconstruction 6.59 2.55 1.65 1.37 1.42; forward 64 / 512 tokens 1.31 / 1.08; exact nearest
 * 16k / 100k 2.06 / 2.75 against torch, 36.5× / 55.7× faster than pgvector's scan; encode over HTTP, five runs of the
 * path (torch 3.3–5.2 ms): objects 0.57–0.86 (median 0.78), packed 0.67–0.95 (median 0.78), atlas 3.8–8.0 ms.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ALLOCATOR, arg, withAllocator } from './util.js';
import { PYTHON, Torch, type Case, type Path, type PathCases } from './vs-torch/common.js';
import { forwardPath } from './vs-torch/forward.js';
import { httpPath } from './vs-torch/http.js';
import { nearestPath } from './vs-torch/nearest.js';
import { saePath } from './vs-torch/sae.js';
import { buildPath } from './vs-torch-build.js';

const PATHS: Path[] = [saePath, forwardPath, httpPath, nearestPath, buildPath];
/** Run only when named: a GPT-2-small dictionary import and a whole build take minutes. */
const OPT_IN = new Set(['build']);

const WORKER = resolve(import.meta.dirname, 'vs_torch.py');

const threads = Number(arg('threads', '1'));
const rounds = Number(arg('rounds', '5'));
const iters = Number(arg('iters', '3'));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (s: number) => (s * 1e3).toFixed(2);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

async function timeCalls(run: () => Promise<unknown>, times: number[]): Promise<void> {
  await run(); // warm: first calls pay for allocations
  for (let i = 0; i < iters; i++) {
    const t = performance.now();
    await run();
    times.push((performance.now() - t) / 1000);
  }
}

async function main(): Promise<void> {
  const names = arg(
    'paths',
    PATHS.filter((p) => !OPT_IN.has(p.name))
      .map((p) => p.name)
      .join(','),
  ).split(',');
  const unknown = names.filter((n) => !PATHS.some((p) => p.name === n));
  if (unknown.length) throw new Error(`unknown path ${unknown.join(', ')}; known: ${PATHS.map((p) => p.name)}`);
  const paths = PATHS.filter((p) => names.includes(p.name));
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    console.log(`bench/vs-torch: skipped, ${PYTHON} cannot import torch (development-time dependency).`);
    return;
  }
  const torch = Torch.start(
    WORKER,
    paths.flatMap((p) => (p.pythonModule ? [p.pythonModule] : [])),
    threads,
  );
  const dir = mkdtempSync(join(tmpdir(), 'atlas-vs-torch-'));
  const opened: PathCases[] = [];
  try {
    const hello = await torch.call({ op: 'hello', threads });
    console.log(
      `atlas vs torch ${String(hello.torch)} (numpy ${String(hello.numpy)}), ${threads} thread(s) each, ` +
        `${rounds} interleaved rounds of ${iters} calls, median per call\n` +
        `allocator (both processes): ${Object.entries(ALLOCATOR)
          .map(([key, v]) => `${key}=${v}`)
          .join(' ')}\n` +
        `torch BLAS: ${String(hello.blas)} (${String(hello.blas_threads ?? '?')} thread(s)); atlas: onnxruntime's ` +
        `own kernels (MLAS)\n` +
        `load average at start: ${load()}`,
    );
    const cases: Case[] = [];
    const ctx = { torch, dir, threads, iters, log: (line: string) => console.log(line) };
    for (const p of paths) {
      console.log(`\n${p.name}: ${p.describe}`);
      const set = await p.setup(ctx);
      if ('skip' in set) {
        console.log(`${p.name}: skipped (${set.skip})`);
        continue;
      }
      opened.push(set);
      cases.push(...set.cases);
    }
    console.log('');
    for (const c of cases) {
      const worst = await c.check();
      console.log(`equal: ${c.path}, ${c.size} (max relative difference ${worst.toExponential(1)})`);
    }
    const times = cases.map(() => ({ atlas: [] as number[], torch: [] as number[], other: [] as number[] }));
    for (let r = 0; r < rounds; r++) {
      for (const [i, c] of cases.entries()) {
        await timeCalls(c.atlas, times[i].atlas);
        times[i].torch.push(...(await c.torch()));
        if (c.other) await timeCalls(c.other.run, times[i].other);
      }
      console.log(`round ${r + 1}/${rounds} done, load average ${load()}`);
    }
    console.log('\n| path | size | atlas ms | torch ms | atlas ÷ torch speed | other |\n|---|---|---|---|---|---|');
    for (const [i, c] of cases.entries()) {
      const a = median(times[i].atlas);
      const t = median(times[i].torch);
      const other = c.other
        ? `${c.other.name} ${ms(median(times[i].other))} ms (atlas ${(median(times[i].other) / a).toFixed(1)}× faster)`
        : '';
      console.log(`| ${c.path} | ${c.size} | ${ms(a)} | ${ms(t)} | ${(t / a).toFixed(2)} | ${other} |`);
    }
    console.log(`\nload average at end: ${load()}`);
  } finally {
    for (const set of opened) await set.close();
    torch.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await withAllocator(main);
