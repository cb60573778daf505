/**
 * Dictionary comparison against float64 brute force and planted structure: best matches both ways,
 * the Hungarian step against enumerating every permutation, one-to-one matching recovering a planted
 * permutation, and a split dictionary whose children find their parent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bestMatches, unitRows } from '../src/engine/compare/similarity.js';
import { hungarian, matchOneToOne } from '../src/engine/compare/matching.js';
import { compareDecoders } from '../src/engine/compare/compare.js';
import { randomRows, permutedCopy, splitDictionary, cosine64 } from './helpers/planted-dictionaries.js';
import { rng } from './helpers/rng.js';

const session = { device: 'cpu' as const, threads: 1 };

function permutations(n: number): number[][] {
  if (n === 1) return [[0]];
  const out: number[][] = [];
  for (const p of permutations(n - 1)) {
    for (let i = 0; i <= p.length; i++) out.push([...p.slice(0, i), n - 1, ...p.slice(i)]);
  }
  return out;
}

test('best matches both ways equal float64 brute force, across blocks', async () => {
  const d = 16,
    nA = 50,
    nB = 70;
  const a = randomRows(1, nA, d);
  const b = randomRows(2, nB, d);
  a.fill(0, 3 * d, 4 * d); // a zero decoder: cosine 0 with everything
  const got = await bestMatches(unitRows(a, d), unitRows(b, d), d, { k: 5, session, blockRows: 7 });
  for (let i = 0; i < nA; i++) {
    const ref = Array.from({ length: nB }, (_, j) => ({ j, c: cosine64(a, i, b, j, d) })).sort(
      (x, y) => y.c - x.c || x.j - y.j,
    );
    for (let t = 0; t < 5; t++) {
      assert.ok(Math.abs(got.topCosines[i * 5 + t] - ref[t].c) < 1e-5, `row ${i} rank ${t}`);
      if (i !== 3) assert.equal(got.topIndices[i * 5 + t], ref[t].j, `row ${i} rank ${t}`);
    }
  }
  for (let j = 0; j < nB; j++) {
    let best = -1,
      bestC = -Infinity;
    for (let i = 0; i < nA; i++) {
      const c = cosine64(a, i, b, j, d);
      if (c > bestC) {
        bestC = c;
        best = i;
      }
    }
    assert.equal(got.reverseIndices[j], best, `column ${j}`);
    assert.ok(Math.abs(got.reverseCosines[j] - bestC) < 1e-5);
  }
});

test('the Hungarian step finds the best total of every permutation', () => {
  const rand = rng(5);
  for (let trial = 0; trial < 5; trial++) {
    const r = 7;
    const m = Float64Array.from({ length: r * r }, () => rand() * 2 - 1);
    const bestTotal = Math.max(...permutations(r).map((p) => p.reduce((s, j, i) => s + m[i * r + j], 0)));
    const got = hungarian(m, r);
    assert.deepEqual(
      [...got].sort((x, y) => x - y),
      Array.from({ length: r }, (_, i) => i),
    );
    const total = [...got].reduce((s, j, i) => s + m[i * r + j], 0);
    assert.ok(Math.abs(total - bestTotal) < 1e-12, `trial ${trial}: ${total} vs ${bestTotal}`);
  }
});

test('a permuted, noised copy is matched one-to-one with the planted permutation', async () => {
  const d = 64,
    n = 400;
  const a = randomRows(3, n, d);
  const { rows: b, perm } = permutedCopy(a, d, 4, 0.3);
  const result = await compareDecoders(a, b, d, { session });
  const one = result.oneToOne!;
  // Row perm[i] of A was copied to row i of B.
  for (let i = 0; i < n; i++) assert.equal(one.pairs[perm[i]], i, `feature ${perm[i]}`);
  const expected = perm.reduce((s, p, i) => s + cosine64(a, p, b, i, d), 0) / n;
  assert.ok(Math.abs(one.score - expected) < 1e-5, `PW-MCC ${one.score} vs ${expected}`);
  for (let i = 0; i < n; i++) assert.equal(result.aToB.indices[perm[i]], i);
  assert.ok(Math.abs(result.meanMaxAB - expected) < 1e-5);
});

test('rows whose candidates collide are still paired optimally', () => {
  // Six rows that all prefer the same two columns: with two candidates each, four are left over
  // for the exact step; the total must equal the best of all 720 permutations.
  const d = 6,
    n = 6;
  const rand = rng(9);
  const a = Float32Array.from({ length: n * d }, () => rand() - 0.5);
  const b = Float32Array.from({ length: n * d }, () => rand() - 0.5);
  for (let t = 0; t < d; t++) {
    b[t] += 3;
    b[d + t] += 3;
  }
  for (let i = 0; i < n; i++) for (let t = 0; t < d; t++) a[i * d + t] += 3;
  const ua = unitRows(a, d),
    ub = unitRows(b, d);
  const k = 2;
  const cand = new Int32Array(n * k);
  const cos = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    const order = Array.from({ length: n }, (_, j) => j).sort(
      (x, y) => cosine64(a, i, b, y, d) - cosine64(a, i, b, x, d),
    );
    for (let t = 0; t < k; t++) {
      cand[i * k + t] = order[t];
      cos[i * k + t] = cosine64(a, i, b, order[t], d);
    }
  }
  const got = matchOneToOne(ua, ub, d, cand, cos, k);
  const best = Math.max(...permutations(n).map((p) => p.reduce((s, j, i) => s + cosine64(a, i, b, j, d), 0)));
  assert.deepEqual([...got.pairs].sort(), [0, 1, 2, 3, 4, 5]);
  assert.ok(Math.abs(got.score * n - best) < 1e-4, `${got.score * n} vs ${best}`);
});

test("a wide dictionary built by splitting features finds each child's parent", async () => {
  const d = 64,
    n = 120;
  const narrow = randomRows(6, n, d);
  const split = new Set([3, 17, 42, 99]);
  const { rows: wide, parent } = splitDictionary(narrow, d, 7, split, 3, 0.82);
  const result = await compareDecoders(narrow, wide, d, { session });
  assert.equal(result.oneToOne, null);
  for (let j = 0; j < parent.length; j++) assert.equal(result.bToA.indices[j], parent[j], `wide feature ${j}`);
  for (const p of split) {
    const children = parent.flatMap((q, j) => (q === p ? [j] : []));
    assert.equal(children.length, 3);
    for (const c of children) assert.ok(Math.abs(result.bToA.cosines[c] - cosine64(narrow, p, wide, c, d)) < 1e-5);
  }
  // Histogram of A's best-match cosines: bins of width 0.05 from −1, counted independently.
  const counts = new Array(40).fill(0);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const best = Math.max(...parent.map((_, j) => cosine64(narrow, i, wide, j, d)));
    sum += best;
    counts[Math.min(39, Math.floor((best + 1) / 0.05 + 1e-9))]++;
  }
  assert.deepEqual(result.histogramAB.counts, counts);
  assert.equal(result.histogramAB.edges.length, 41);
  assert.ok(Math.abs(result.meanMaxAB - sum / n) < 1e-5);
  const countsBA = new Array(40).fill(0);
  parent.forEach((p, j) => countsBA[Math.min(39, Math.floor((cosine64(narrow, p, wide, j, d) + 1) / 0.05 + 1e-9))]++);
  assert.deepEqual(result.histogramBA.counts, countsBA);
});
