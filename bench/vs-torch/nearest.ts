/**
 * Exact nearest decoder rows by cosine, k = 10, one query per call as a request makes: the engine's
 * ExactSearch (src/engine/nearest.ts, what the planner's EXACT runs over a resident decoder matrix)
 * against torch topk(normalize(W_dec) @ q, k), and pgvector's exact sequential scan (EXACT_SCAN,
 * src/db/nearest.ts) timed in the same rounds when PostgreSQL is reachable (ATLAS_TEST_PG_URL; a
 * scratch database is created and dropped). Rows: --nearest-rows (default 16384,100000) decoder-like
 * 768-d unit vectors around clusters, queries from the same clusters (bench/util.ts clusteredBlocks);
 * --nearest-data uniform: uniformly random rows and queries instead (the engine's 8-bit screen's worst
 * case). Equality: the engine's top 10 equal torch's (recall@10 = 1, cosines within TOL) for every query;
 * recall@10 against pgvector's answers is reported, and the engine's create time and its screen's
 * candidates per query (rows re-scored exactly).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase, type Database } from '../../src/db/client.js';
import { copyDecoders } from '../../src/db/features.js';
import { nearestFeatures } from '../../src/db/nearest.js';
import { ExactSearch, type RowHits } from '../../src/engine/nearest.js';
import { createTestDatabase } from '../../test/helpers/postgres.js';
import { arg, clusteredBlocks, normalizeRows, uniform } from '../util.js';
import { syntheticModel } from '../../test/helpers/synthetic.js';
import { relDiff, type Case, type Path } from './common.js';

const D = 768;
const K = 10;
const ROWS = arg('nearest-rows', '16384,100000').split(',').map(Number);
const QUERIES = Number(arg('queries', '8'));
const DATA = arg('nearest-data', 'clustered');

/** Unit rows in blocks: decoder-like clustered ones, or uniformly random directions (--nearest-data). */
function* rowBlocks(seed: number, n: number, block: number): Generator<Float32Array> {
  if (DATA !== 'uniform') return yield* clusteredBlocks(D, 11, seed, n, block);
  for (let start = 0; start < n; start += block) {
    yield normalizeRows(uniform(Math.min(block, n - start) * D, 1, seed * 7919 + start), D);
  }
}

function concat(blocks: Float32Array[]): Float32Array {
  const out = new Float32Array(blocks.reduce((s, b) => s + b.length, 0));
  let at = 0;
  for (const b of blocks) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

async function openScan(dir: string): Promise<{ database: Database; drop(): Promise<void> } | { skip: string }> {
  const pg = await createTestDatabase();
  if ('skip' in pg) return pg;
  const database = await openDatabase({ databaseUrl: pg.url, dataDir: dir });
  await syntheticModel(database, 'vs-torch-768', 'synthetic 768-d', D);
  return {
    database,
    drop: async () => {
      await database.close();
      await pg.drop();
    },
  };
}

export const nearestPath: Path = {
  name: 'nearest',
  describe:
    `exact nearest search: ${ROWS.join(' and ')} ${DATA === 'uniform' ? 'uniformly random' : 'decoder-like'} ` +
    `rows x ${D}, k = ${K}, ${QUERIES} queries in turn; ` +
    'engine ExactSearch vs torch topk(normalize(W_dec) @ q) (and pgvector exact scan)',
  async setup({ torch, dir, threads, iters, log }) {
    const scan = await openScan(dir);
    if ('skip' in scan) log(`nearest: no pgvector comparison (${scan.skip})`);
    const searches: ExactSearch[] = [];
    const cases: Case[] = [];
    const queries = concat([...rowBlocks(13, QUERIES, QUERIES)]);
    const qPath = join(dir, 'nearest-q.bin');
    writeFileSync(qPath, queries);
    for (const n of ROWS) {
      const blocks = [...rowBlocks(12, n, 2000)];
      const rows = concat(blocks);
      const wPath = join(dir, `nearest-${n}.bin`);
      writeFileSync(wPath, rows);
      const name = `rows-${n}`;
      await torch.call({ op: 'nearest_load', name, path: wPath, n, d: D });
      // ExactSearch owns `rows` from here (already unit vectors; torch and PostgreSQL have their copies).
      const created = performance.now();
      const search = await ExactSearch.create(rows, D, { device: 'cpu', threads });
      log(`nearest: ExactSearch.create over ${n} rows took ${(performance.now() - created).toFixed(0)} ms`);
      searches.push(search);
      let scanOne: ((j: number) => Promise<number[]>) | null = null;
      if (!('skip' in scan)) {
        const id = `vs-torch-${n}`;
        log(`nearest: copying ${n} rows into PostgreSQL …`);
        await scan.database.query(
          `INSERT INTO dictionaries (id, model_id, name, hook_point, prepend_bos, d_in, d_sae, architecture,
             source_format, state)
           VALUES ($1, 'vs-torch-768', $1, 'blocks.0.hook_resid_post', false, $2, $3, 'standard', 'saelens', 'ready')`,
          [id, D, n],
        );
        await copyDecoders(scan.database, id, D, blocks);
        const vector = (j: number) => Array.from(queries.subarray(j * D, (j + 1) * D));
        scanOne = async (j) =>
          (
            await nearestFeatures(scan.database, {
              dictionaries: [{ id, dSae: n }],
              dIn: D,
              vector: vector(j),
              k: K,
              exact: true,
            })
          ).map((h) => h.index);
      }
      let next = 0;
      let nextScan = 0;
      const cmd = { op: 'nearest', name, q: qPath, m: QUERIES, k: K };
      cases.push({
        path: 'exact nearest, k = 10',
        size: `${n} rows`,
        atlas: () => {
          const j = next++ % QUERIES;
          return search.search(queries.subarray(j * D, (j + 1) * D), 1, K);
        },
        torch: () => torch.times({ ...cmd, iters }),
        ...(scanOne ? { other: { name: 'pgvector exact scan', run: () => scanOne!(nextScan++ % QUERIES) } } : {}),
        check: async () => {
          const read = await torch.outputs(dir, cmd);
          const indices = new Int32Array(read('indices'));
          const cosines = new Float32Array(read('cosines'));
          // One query per call, as timed (a batch of them would take the float32 product).
          const hits: RowHits[] = [];
          for (let j = 0; j < QUERIES; j++)
            hits.push(...(await search.search(queries.subarray(j * D, (j + 1) * D), 1, K)));
          let worst = 0;
          let scanRecall = 0;
          for (let j = 0; j < QUERIES; j++) {
            const want = new Set(indices.subarray(j * K, (j + 1) * K));
            const missed = [...hits[j].indices].filter((i) => !want.has(i));
            if (missed.length) throw new Error(`nearest ${n} rows, query ${j}: rows ${missed} not in torch's top ${K}`);
            worst = Math.max(worst, relDiff(hits[j].cosines, cosines.subarray(j * K, (j + 1) * K), 'cosines'));
            if (scanOne) scanRecall += (await scanOne(j)).filter((i) => want.has(i)).length / K / QUERIES;
          }
          if (scanOne) log(`nearest ${n} rows: pgvector exact scan recall@${K} against torch ${scanRecall.toFixed(3)}`);
          return worst;
        },
      });
    }
    return {
      cases,
      close: async () => {
        for (const s of searches) {
          const { queries: q, candidates, most } = s.screening;
          log(`nearest ${s.rows} rows: the screen kept ${(candidates / q).toFixed(1)} rows a query (most ${most})`);
          await s.close();
        }
        if (!('skip' in scan)) await scan.drop();
      },
    };
  },
};
