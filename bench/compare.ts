/**
 * Dictionary comparison and feature-map layout at realistic sizes (d 768), engine only (no database):
 * - 16k × 16k: B is a permuted copy of A with each row rotated by noise (two training runs that share
 *   most features), so the one-to-one matching runs too; --unrelated makes B independent (the hard case);
 * - 16k × 65k: B splits every feature of A into 4 children at cosine ≈ 0.65 with their parent.
 * - --map N lays out N features (UMAP; 0 skips).
 * Prints wall time per phase and peak resident memory (sampled every 50 ms, and the OS's max RSS).
 * Usage: node --import tsx bench/compare.ts [--narrow 16384] [--wide 65536] [--map 16384] [--unrelated] [--threads 0]
 *
 * Measured on the 2-core development machine while five other jobs shared it (load average 10–13),
 * so times varied about 3× between runs:
 *   16k × 16k   9.6–38.7 s (one-to-one matching 0.1–0.6 s, nothing left to the exact step), peak RSS 445 MB
 *   16k × 65k   42–139 s, peak RSS 780 MB
 *   4k × 4k unrelated  7.8 s (matching 0.4 s, PW-MCC 0.126)
 *   map 16k     98 s (neighbours about 40 s, 200 epochs about 53 s), peak RSS 390 MB
 *   map 65k     407 s (neighbours about 260 s, 200 epochs about 133 s), peak RSS 735 MB
 */
import { compareDecoders } from '../src/engine/compare/compare.js';
import { layoutDecoders } from '../src/engine/map/layout.js';
import { arg, flag, uniform } from './util.js';

const D = 768;
const NARROW = Number(arg('narrow', '16384'));
const WIDE = Number(arg('wide', '65536'));
const MAP = Number(arg('map', '16384'));
const session = { device: 'cpu' as const, threads: Number(arg('threads', '0')) };

let peak = 0;
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss);
}, 50);
const mb = (b: number) => `${Math.round(b / 2 ** 20)} MB`;

/** Row i of the result is mix·a_{src(i)} + (1 − mix)·noise, per row, with independent noise. */
function derived(a: Float32Array, n: number, src: (i: number) => number, mix: number, seed: number): Float32Array {
  const noise = uniform(n * D, 1, seed);
  const out = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    const s = src(i);
    for (let t = 0; t < D; t++) out[i * D + t] = mix * a[s * D + t] + (1 - mix) * noise[i * D + t];
  }
  return out;
}

async function timeCompare(name: string, a: Float32Array, b: Float32Array): Promise<void> {
  peak = process.memoryUsage().rss;
  const phases: Record<string, number> = {};
  const start = performance.now();
  let phase = 'similarity';
  let t = start;
  const result = await compareDecoders(a, b, D, {
    session,
    onProgress: (p) => {
      if (p === phase) return;
      const now = performance.now();
      phases[phase] = (now - t) / 1000;
      phase = p;
      t = now;
    },
  });
  phases[phase] = (performance.now() - t) / 1000;
  const total = (performance.now() - start) / 1000;
  const one = result.oneToOne
    ? `, PW-MCC ${result.oneToOne.score.toFixed(3)} (${result.oneToOne.leftover} left to the exact step)`
    : '';
  console.log(
    `${name}: ${total.toFixed(1)} s (${Object.entries(phases)
      .map(([k, v]) => `${k} ${v.toFixed(1)} s`)
      .join(', ')}), peak RSS ${mb(peak)}; MMCS ${result.meanMaxAB.toFixed(3)} / ${result.meanMaxBA.toFixed(3)}${one}`,
  );
}

const a = uniform(NARROW * D, 1, 1);
const perm = Array.from({ length: NARROW }, (_, i) => (i * 7919) % NARROW);
const twin = flag('unrelated') ? uniform(NARROW * D, 1, 2) : derived(a, NARROW, (i) => perm[i], 0.5, 2);
await timeCompare(`${NARROW} × ${NARROW}${flag('unrelated') ? ' (unrelated)' : ''}`, a, twin);
if (WIDE > 0) {
  const per = Math.max(1, Math.round(WIDE / NARROW));
  await timeCompare(
    `${NARROW} × ${WIDE}`,
    a,
    derived(a, WIDE, (i) => Math.floor(i / per) % NARROW, 0.45, 3),
  );
}
if (MAP > 0) {
  peak = process.memoryUsage().rss;
  const rows = MAP <= NARROW ? a.subarray(0, MAP * D) : derived(a, MAP, (i) => i % NARROW, 0.45, 4);
  let last = '';
  const start = performance.now();
  const marks: string[] = [];
  const layout = await layoutDecoders(rows, D, {
    session,
    onProgress: (p) => {
      if (p !== last) marks.push(`${p} from ${((performance.now() - start) / 1000).toFixed(1)} s`);
      last = p;
    },
  });
  console.log(
    `map ${MAP}: ${((performance.now() - start) / 1000).toFixed(1)} s (${marks.join(', ')}; ${layout.epochs} ` +
      `epochs), peak RSS ${mb(peak)}`,
  );
}
clearInterval(sampler);
console.log(
  `max RSS (OS) ${mb(process.resourceUsage().maxRSS * 1024)}; ${D} dims, onnxruntime threads ` +
    `${session.threads || 'default'}`,
);
