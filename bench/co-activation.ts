/**
 * The co-activation counter of `atlas build` (src/engine/dashboards/co-activation.ts) on its own:
 * a 16k parent and a 65k child dictionary (every child paired with one parent), codes of --k active
 * features per token on both sides, --tokens tokens in batches of 4096. Prints tokens per second and
 * the counter's memory. Run: npx tsx bench/co-activation.ts [--tokens 200000] [--k 64]
 *
 * Measured on the 2-core development machine shared with other jobs (load average 6):
 *   k 64   0.35–0.42 s for 200k tokens, 480–570k tokens/s, counter arrays 1.9 MB
 *   k 128  0.65 s for 200k tokens, 310k tokens/s
 * (the model run and the two encodings of the same tokens cost far more; see bench/build.ts.)
 */
import { CoActivation, type TokenCodes } from '../src/engine/dashboards/co-activation.js';
import { arg, uniform } from './util.js';

const P = 16384;
const C = 65536;
const TOKENS = Number(arg('tokens', '200000'));
const K = Number(arg('k', '64'));
const BATCH = 4096;

/** A batch of codes: K distinct-enough random features per token, values descending. */
function batch(n: number, width: number, seed: number): TokenCodes {
  const u = uniform(n * K, 0.5, seed);
  const indices = new Int32Array(n * K);
  const values = new Float32Array(n * K);
  for (let i = 0; i < n * K; i++) {
    indices[i] = Math.floor((u[i] + 0.5) * width) % width;
    values[i] = K - (i % K);
  }
  return { n, k: K, indices, values };
}

const parents = new Int32Array(C);
const pu = uniform(C, 0.5, 3);
for (let c = 0; c < C; c++) parents[c] = Math.floor((pu[c] + 0.5) * P) % P;
const counter = new CoActivation({ parents, children: Int32Array.from({ length: C }, (_, i) => i) }, P, C);
// Parents concentrated on 1/8 of the features, so their pair lists are long (a harder case than uniform).
const batches = Array.from({ length: 4 }, (_, s) => ({ p: batch(BATCH, P / 8, 10 + s), c: batch(BATCH, C, 20 + s) }));
const heap0 = process.memoryUsage().heapUsed;
const started = performance.now();
let done = 0;
for (let b = 0; done < TOKENS; b++) {
  const { p, c } = batches[b % batches.length];
  counter.add(p, c);
  done += BATCH;
}
const seconds = (performance.now() - started) / 1000;
// start, pairsOf, the pairs themselves, childStamp, parentCount, bothCount.
const mb = (4 * (P + 1) + 4 * C + 8 * C + 8 * C + 8 * P + 8 * C) / 2 ** 20;
console.log(
  `${done} tokens, k ${K}: ${seconds.toFixed(2)} s, ${Math.round(done / seconds)} tokens/s; counter arrays ` +
    `${mb.toFixed(1)} MB (heap delta ${((process.memoryUsage().heapUsed - heap0) / 2 ** 20).toFixed(1)} MB)`,
);
