/**
 * nearestFeatures reaches each dictionary's approximate index (src/db/vector-index.ts) of either kind
 * (IVFFlat up to IVFFLAT_MAX_FEATURES, HNSW above: the HNSW case indexes a small table as if the
 * dictionary were wider) for both column types: vector up to 2,000 dims, halfvec above. The search
 * runs against a Database whose statements are prefixed with EXPLAIN, so the plan is that of the very
 * statement and session settings the search issues; it must scan the dictionary's index by name, and
 * an exact search must not. The dictionaries are small and unanalysed, where the planner used to
 * prefer sorting every row. The answer itself is checked against a float64 cosine over the same rows,
 * and IVFFlat's recall@10 at its default probes against a float64 ranking of 4,096 clustered rows.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BACKENDS, announceSkip, openTestDatabase } from './helpers/atlas-server.js';
import { clusteredRows } from './helpers/rng.js';
import { syntheticDictionary, syntheticModel } from './helpers/synthetic.js';
import type { Database, Query } from '../src/db/client.js';
import { writeDictionary } from '../src/db/dictionary-write.js';
import { nearestFeatures } from '../src/db/nearest.js';
import { IVFFLAT_MAX_FEATURES, createVectorIndex, indexName } from '../src/db/vector-index.js';

const N = 200;

/** The same database, except that the search statements (SELECT … ORDER BY … <=>) only collect their plans. */
function explaining(database: Database, plans: string[]): Database {
  const wrapped = Object.create(database) as Database;
  wrapped.transaction = (fn, opts) =>
    database.transaction((q, copy) => {
      const explain: Query = async <T>(text: string, params?: unknown[]) => {
        if (!/^SELECT idx\b/.test(text.trim())) return q<T>(text, params);
        const rows = await q<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${text}`, params);
        plans.push(rows.map((r) => r['QUERY PLAN'].replace(/'\[[^\]]*\]'/g, "'[…]'")).join('\n'));
        return [];
      };
      return fn(explain, copy);
    }, opts);
  return wrapped;
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0,
    aa = 0,
    bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

async function writeClustered(database: Database, id: string, d: number, n: number, seed: number) {
  await syntheticModel(database, `model-${d}`, 'model', d);
  const rows = clusteredRows(seed, n, d);
  await writeDictionary(database, syntheticDictionary(id, `model-${d}`, d, n), [rows]);
  return rows;
}

for (const backend of BACKENDS) {
  describe(`nearest search through the vector indexes on ${backend}`, () => {
    for (const [d, type, kind] of [
      [64, 'vector', 'ivfflat'],
      [2048, 'halfvec', 'ivfflat'],
      [64, 'vector', 'hnsw'],
      [2048, 'halfvec', 'hnsw'],
    ] as const) {
      it(`a ${type} dictionary (d = ${d}) is searched through its ${kind} index, an exact search is not`, async (t) => {
        const opened = await openTestDatabase(backend);
        if ('skip' in opened) {
          announceSkip(`nearest search through the vector indexes on ${backend}`, opened.skip);
          return t.skip(opened.skip);
        }
        const { database } = opened;
        try {
          const id = `dict-${type}`;
          const rows = await writeClustered(database, id, d, N, 7);
          // The size the index and the search settings are chosen by.
          const dSae = kind === 'hnsw' ? IVFFLAT_MAX_FEATURES + 1 : N;
          if (kind === 'hnsw') await createVectorIndex(database, id, d, dSae);
          const [def] = await database.query<{ indexdef: string }>(
            'SELECT indexdef FROM pg_indexes WHERE indexname = $1',
            [indexName(id)],
          );
          assert.match(def.indexdef, new RegExp(`USING ${kind} .*${type}_cosine_ops`), def.indexdef);
          if (kind === 'ivfflat') assert.match(def.indexdef, /lists='?15'?/, def.indexdef);
          const query = rows.subarray(3 * d, 4 * d);
          const request = { dictionaries: [{ id, dSae }], dIn: d, vector: Array.from(query), k: 5 };

          const plans: string[] = [];
          await nearestFeatures(explaining(database, plans), request);
          await nearestFeatures(explaining(database, plans), { ...request, exact: true });
          assert.equal(plans.length, 2);
          assert.match(plans[0], new RegExp(`Index Scan using ${indexName(id)} on feature_decoders`), plans[0]);
          assert.doesNotMatch(plans[1], new RegExp(indexName(id)), plans[1]);

          // The answer: feature 3 itself first, then the float64 ranking's next best (halfvec rounds
          // the stored components to about 3 decimal digits, so cosines agree to 1e-3 there).
          const hits = await nearestFeatures(database, request);
          const expected = Array.from({ length: N }, (_, i) => cosine(query, rows.subarray(i * d, (i + 1) * d)))
            .map((c, index) => ({ index, c }))
            .sort((a, b) => b.c - a.c)
            .slice(0, 5);
          assert.equal(hits[0].index, 3);
          const tolerance = type === 'halfvec' ? 1e-3 : 1e-5;
          hits.forEach((h, i) => assert.ok(Math.abs(h.cosine - expected[i].c) < tolerance, `${h.cosine} ${i}`));
        } finally {
          await opened.cleanup();
        }
      });
    }

    it('IVFFlat at its default probes finds the float64 top 10 of clustered rows (recall@10 ≥ 0.95)', async (t) => {
      const opened = await openTestDatabase(backend);
      if ('skip' in opened) return t.skip(opened.skip);
      const { database } = opened;
      try {
        // 4,096 rows: 64 cells, of which a search reads 16.
        const [n, d, queries] = [4096, 64, 40];
        const rows = await writeClustered(database, 'recall', d, n, 11);
        let found = 0;
        for (let q = 0; q < queries; q++) {
          const query = rows.subarray(q * 97 * d, (q * 97 + 1) * d);
          const truth = Array.from({ length: n }, (_, i) => ({
            i,
            c: cosine(query, rows.subarray(i * d, (i + 1) * d)),
          }))
            .sort((a, b) => b.c - a.c)
            .slice(0, 10)
            .map((h) => h.i);
          const hits = await nearestFeatures(database, {
            dictionaries: [{ id: 'recall', dSae: n }],
            dIn: d,
            vector: Array.from(query),
            k: 10,
          });
          found += hits.filter((h) => truth.includes(h.index)).length;
        }
        assert.ok(found / (10 * queries) >= 0.95, `recall@10 ${found / (10 * queries)}`);
      } finally {
        await opened.cleanup();
      }
    });
  });
}
