/**
 * ExactSearch (src/engine/nearest.ts): its top k equal a float64 brute-force cosine ranking written here
 * (cos(w, q) = w·q / ‖w‖‖q‖, 0 for a zero row), on decoder-like clustered rows and on uniformly random
 * rows (the 8-bit screen's worst case: every cosine near 0), with zero and duplicate rows, n < k, a width
 * that is not a whole number of blocks, and rows built to stress the int8 kernels; and the screen's
 * bound holds for every row: |ŵ_r·q − s'_r| ≤ B_r.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExactSearch, SCREEN_MAX_QUERIES, exactSearchBytes } from '../src/engine/nearest.js';
import { clusteredRows, normal, rng } from './helpers/rng.js';

const SETTINGS = { device: 'cpu', threads: 1 } as const;
/** Cosines closer than this may rank either way (float32 normalisation and sums against float64). */
const TIE = 1e-6;

function randomRows(seed: number, n: number, d: number): Float32Array {
  const rand = rng(seed);
  return Float32Array.from({ length: n * d }, () => normal(rand));
}

/** Unit queries: rows of `rows` (or random directions) plus noise of the given size, normalised in float32. */
function queriesNear(rows: Float32Array, d: number, m: number, noise: number, seed: number): Float32Array {
  const rand = rng(seed);
  const n = rows.length / d;
  const out = new Float32Array(m * d);
  for (let j = 0; j < m; j++) {
    const r = Math.floor(rand() * n);
    let sq = 0;
    for (let i = 0; i < d; i++) {
      const v = rows[r * d + i] + noise * normal(rand);
      out[j * d + i] = v;
      sq += v * v;
    }
    for (let i = 0; i < d; i++) out[j * d + i] /= Math.sqrt(sq);
  }
  return out;
}

function cosines64(rows: Float32Array, d: number, q: Float32Array): Float64Array {
  const n = rows.length / d;
  const out = new Float64Array(n);
  let qq = 0;
  for (let i = 0; i < d; i++) qq += q[i] * q[i];
  for (let r = 0; r < n; r++) {
    let dot = 0;
    let ww = 0;
    for (let i = 0; i < d; i++) {
      dot += rows[r * d + i] * q[i];
      ww += rows[r * d + i] ** 2;
    }
    out[r] = ww > 0 ? dot / Math.sqrt(ww * qq) : 0;
  }
  return out;
}

/** `fn` on an ExactSearch over a copy of `raw` (create takes its matrix and normalizes it), closed after. */
async function withSearch<T>(
  raw: Float32Array,
  d: number,
  fn: (search: ExactSearch) => Promise<T>,
  chunkBytes?: number,
): Promise<T> {
  const search = await ExactSearch.create(raw.slice(), d, SETTINGS, chunkBytes);
  try {
    return await fn(search);
  } finally {
    await search.close();
  }
}

/** Searches `raw` with m queries and checks every answer against the float64 ranking. */
async function checkSearch(
  raw: Float32Array,
  d: number,
  queries: Float32Array,
  m: number,
  k: number,
  what: string,
  chunkBytes?: number,
) {
  const n = raw.length / d;
  return withSearch(
    raw,
    d,
    async (search) => {
      assert.equal(search.bytes, exactSearchBytes(n, d));
      // create()'s probe check must trust the screen here, or these searches would test the float32 product.
      assert.ok(search.screened, `${what}: the screen is in use`);
      const hits = await search.search(queries, m, k);
      assert.equal(hits.length, m);
      for (let j = 0; j < m; j++) {
        const cos = cosines64(raw, d, queries.subarray(j * d, (j + 1) * d));
        const want = Array.from(cos.keys()).sort((a, b) => cos[b] - cos[a]);
        const { indices, cosines } = hits[j];
        assert.equal(indices.length, Math.min(k, n), `${what}, query ${j}: k clamps to the rows`);
        assert.equal(new Set(indices).size, indices.length, `${what}, query ${j}: rows repeat`);
        for (let i = 0; i < indices.length; i++) {
          const at = `${what}, query ${j}, rank ${i}`;
          const best = cos[want[i]];
          assert.ok(Math.abs(cosines[i] - best) <= TIE, `${at}: cosine ${cosines[i]}, want ${best}`);
          const got = cos[indices[i]];
          assert.ok(Math.abs(got - best) <= TIE, `${at}: row ${indices[i]} (${got}), want ${best}`);
          const apart = (o: number) => o < 0 || o >= n || Math.abs(cos[want[o]] - best) > TIE;
          if (apart(i - 1) && apart(i + 1)) assert.equal(indices[i], want[i], `${at}: a clear winner`);
        }
      }
      // Small batches go through the screen, larger ones through the float32 product: both answer here.
      assert.equal(search.screening.queries, m <= SCREEN_MAX_QUERIES ? m : 0);
      return search.screening;
    },
    chunkBytes,
  );
}

/** Clustered rows with zero rows and exact duplicates planted. */
function withZerosAndDuplicates(rows: Float32Array, d: number): Float32Array {
  const n = rows.length / d;
  for (const r of [0, 3, n - 1]) rows.fill(0, r * d, (r + 1) * d);
  for (const [to, from] of [
    [5, 7],
    [n - 2, 7],
    [9, 11],
  ])
    rows.copyWithin(to * d, from * d, (from + 1) * d);
  return rows;
}

test('top k equal float64 brute force on clustered decoder-like rows, with zero and duplicate rows', async () => {
  for (const [n, d, m, k] of [
    [2000, 768, 2, 10],
    [600, 50, 5, 25],
    [400, 64, 1, 101],
  ]) {
    const raw = withZerosAndDuplicates(clusteredRows(n + d, n, d), d);
    const queries = queriesNear(raw, d, m, 0.02, n);
    const stats = await checkSearch(raw, d, queries, m, k, `clustered ${n} x ${d}`);
    if (m <= SCREEN_MAX_QUERIES) assert.ok(stats.most < n, `clustered ${n} x ${d}: the screen kept all ${n} rows`);
  }
});

test('top k equal float64 brute force on uniformly random rows', async () => {
  for (const [n, d, m, k] of [
    [3000, 768, 2, 10],
    [1500, 96, 1, 10],
    [800, 40, 6, 5],
  ]) {
    const raw = randomRows(n * 7 + d, n, d);
    const queries = queriesNear(randomRows(1 + d, 16, d), d, m, 0, n + 1);
    await checkSearch(raw, d, queries, m, k, `uniform ${n} x ${d}`);
  }
});

test('k above the rows returns them all; a query equal to duplicate rows finds both; zero rows score 0', async () => {
  const d = 16;
  const raw = randomRows(3, 6, d);
  raw.copyWithin(4 * d, 1 * d, 2 * d);
  raw.fill(0, 2 * d, 3 * d);
  const q = queriesNear(raw.subarray(d, 2 * d), d, 1, 0, 4);
  await checkSearch(raw, d, q, 1, 10, 'six rows');
  await withSearch(raw, d, async (search) => {
    const [hit] = await search.search(q, 1, 10);
    assert.deepEqual([...hit.indices.subarray(0, 2)].sort(), [1, 4]);
    assert.equal(hit.cosines[hit.indices.indexOf(2)], 0);
  });
});

test('rows that stress the int8 kernels: constant, one-hot, one large entry among tiny ones', async () => {
  const d = 128;
  const n = 64;
  const rand = rng(77);
  const raw = new Float32Array(n * d);
  for (let r = 0; r < n; r++) {
    const row = raw.subarray(r * d, (r + 1) * d);
    if (r % 4 === 0) row.fill(r % 8 ? 1 : -1);
    else if (r % 4 === 1) row[r % d] = 1;
    else if (r % 4 === 2) {
      for (let i = 0; i < d; i++) row[i] = 1e-4 * normal(rand);
      row[r % d] = 5;
    } else for (let i = 0; i < d; i++) row[i] = normal(rand);
  }
  const constant = new Float32Array(d).fill(1 / Math.sqrt(d));
  const queries = new Float32Array([...constant, ...queriesNear(raw, d, 3, 0.01, 5)]);
  await checkSearch(raw, d, queries, 4, 8, 'stress rows');
  await checkBound(raw, d, queries, 4, 'stress rows');
});

/** Every row's screen score is within its bound of the float64 cosine. */
async function checkBound(
  raw: Float32Array,
  d: number,
  queries: Float32Array,
  m: number,
  what: string,
  chunkBytes?: number,
) {
  const n = raw.length / d;
  return withSearch(
    raw,
    d,
    async (search) => {
      const { scores, bound } = await search.screen(queries, m);
      let widest = 0;
      for (let j = 0; j < m; j++) {
        const cos = cosines64(raw, d, queries.subarray(j * d, (j + 1) * d));
        for (let r = 0; r < n; r++) {
          const b = bound(j, r);
          widest = Math.max(widest, b);
          const off = Math.abs(cos[r] - scores[j * n + r]);
          // TIE: ŵ here is float64, the engine's is float32 (a relative 1e-7 apart).
          assert.ok(off <= b + TIE, `${what}, query ${j}, row ${r}: screen off by ${off}, bound ${b}`);
        }
      }
      return widest;
    },
    chunkBytes,
  );
}

test('the screen bound holds for every row, on clustered and uniformly random rows', async () => {
  const d = 768;
  const clustered = withZerosAndDuplicates(clusteredRows(21, 1500, d), d);
  const uniform = randomRows(22, 1500, d);
  const random = queriesNear(randomRows(23, 8, d), d, 8, 0, 24);
  for (const [raw, what] of [
    [clustered, 'clustered'],
    [uniform, 'uniform'],
  ] as const) {
    const near = queriesNear(raw, d, 8, 0.05, 25);
    for (const queries of [near, random]) {
      const widest = await checkBound(raw, d, queries, 8, what);
      // The bound is a screen, not a formality: e_r and δ are each about 5e-3 at this width.
      assert.ok(widest < 0.02, `${what}: bound ${widest}`);
    }
  }
});

test('a matrix split over several screen sessions answers and bounds as one', async () => {
  // 64 code bytes a row at d = 50 (two blocks of 32): 37 rows a session, the last one shorter.
  const [n, d, chunkBytes] = [600, 50, 37 * 64];
  const raw = withZerosAndDuplicates(clusteredRows(31, n, d), d);
  for (const m of [1, 2]) {
    const queries = queriesNear(raw, d, m, 0.02, 32 + m);
    await checkSearch(raw, d, queries, m, 12, `${n} x ${d} in sessions of 37 rows`, chunkBytes);
    await checkBound(raw, d, queries, m, `${n} x ${d} in sessions of 37 rows`, chunkBytes);
  }
});

test('the bound holds at a narrow width, where Cauchy–Schwarz is nearly tight', async () => {
  // At d = 2…8 a row's quantization error can lie almost along the query: in trials of 1.6M row-query pairs
  // the screen's error reached 0.98–0.997 of B_r.
  const [n, d] = [20000, 8];
  const raw = randomRows(41, n, d);
  await checkBound(raw, d, queriesNear(randomRows(42, 8, d), d, 8, 0, 43), 8, 'narrow');
});

test('create lets the event loop turn while it quantizes and checks a wide matrix', async () => {
  const d = 16;
  const n = 8192;
  let turns = 0;
  let spinning = true;
  const spin = () => {
    turns++;
    if (spinning) setImmediate(spin);
  };
  setImmediate(spin);
  await withSearch(randomRows(23, n, d), d, async (search) => {
    spinning = false;
    // onnxruntime's session creation alone gives a few turns; the row loops give one per 1,024 rows each.
    assert.ok(turns >= 16, `the event loop turned ${turns} times during create`);
    assert.ok(search.screened);
  });
});
