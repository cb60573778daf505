/**
 * Dictionary scale: for each size n (features) and width d, in a fresh process so peak RSS is that
 * size's own, a synthetic decoder-like dictionary (unit rows around 12 cluster centres) is written as
 * `atlas import` writes it (writeDictionary: binary COPY, then the approximate index: IVFFlat up to
 * 262,144 features, HNSW above (src/db/vector-index.ts); halfvec above 2,000 dims), then measured:
 *   - import: rows/s of the COPY, seconds of the index build;
 *   - nearestFeatures through the index: p50/p99 ms over Q queries drawn from the same clusters, and
 *     recall@10 = |index top 10 ∩ exact top 10| / 10 averaged over the queries (exact: the same query
 *     with the index scan turned off);
 *   - exact scan p50 ms;
 *   - pages of 100 features by index and by density (keyset, from the middle), and one batched
 *     lookup of 100 features: p50 ms;
 *   - peak RSS of this process (the importer and, the queries being in-process, the server side).
 * The growth column is each cost's exponent against the previous size (log cost ratio ÷ log n ratio:
 * 1 = linear); sizes up to 1,048,576 beyond the largest measured are projected as a power law through
 * the last two measured points (cost × (N / n)^exponent), which only holds while nothing changes
 * regime (another index kind, the HNSW graph outgrowing maintenance_work_mem, the table outgrowing the
 * page cache): sizes whose index kind differs from the last measured one are not projected.
 * PostgreSQL from ATLAS_TEST_PG_URL (a scratch database, dropped afterwards), else PGlite; --pglite forces it.
 * Usage: node --import tsx bench/scale.ts [--sizes 16384,65536] [--dims 768] [--queries 50] [--pglite]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Database } from '../src/db/client.js';
import { writeDictionary } from '../src/db/dictionary-write.js';
import { nearestFeatures } from '../src/db/nearest.js';
import { approximateIndex } from '../src/db/vector-index.js';
import { getFeatures, pageFeatures } from '../src/db/features.js';
import { createTestDatabase } from '../test/helpers/postgres.js';
import { arg, clusteredBlocks, flag } from './util.js';
import { syntheticDictionary, syntheticModel } from '../test/helpers/synthetic.js';

const QUERIES = Number(arg('queries', '50'));
const BLOCK = 1024;

interface Result {
  n: number;
  d: number;
  backend: string;
  copySeconds: number;
  indexSeconds: number;
  indexP50: number;
  indexP99: number;
  recall: number;
  /** The worst query's recall@10. */
  recallMin: number;
  exactP50: number;
  pageIndexP50: number;
  pageDensityP50: number;
  lookupP50: number;
  peakRssMb: number;
}

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

async function timed(runs: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

async function one(n: number, d: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-bench-scale-'));
  const pgdb = flag('pglite') ? { skip: '--pglite' } : await createTestDatabase();
  const database: Database = await openDatabase(
    'skip' in pgdb ? { dataDir: dir } : { databaseUrl: pgdb.url, dataDir: dir },
  );
  try {
    await syntheticModel(database, 'scale-model', 'synthetic', d);
    // Densities give the DENSITY ordering something to sort.
    const density = Float32Array.from({ length: n }, (_, i) => ((i * 2654435761) % 1000003) / 1000003);
    // Making the synthetic rows is not the importer's cost: its time is taken out of the COPY's.
    let making = 0;
    function* rows(): Generator<Float32Array> {
      const source = clusteredBlocks(d, 11, 12, n, BLOCK);
      for (;;) {
        const t = performance.now();
        const next = source.next();
        making += performance.now() - t;
        if (next.done) return;
        yield next.value;
      }
    }
    const t0 = performance.now();
    let t1 = 0;
    await writeDictionary(database, syntheticDictionary('scale', 'scale-model', d, n), rows(), {
      density,
      onIndexing: () => (t1 = performance.now()),
    });
    const t2 = performance.now();
    const queries = [...clusteredBlocks(d, 11, 13, QUERIES, QUERIES)][0];
    const vector = (i: number) => Array.from(queries.subarray(i * d, (i + 1) * d));
    const search = (i: number, exact: boolean) =>
      nearestFeatures(database, { dictionaries: [{ id: 'scale', dSae: n }], dIn: d, vector: vector(i), k: 10, exact });
    const truth: Set<number>[] = [];
    const exactMs = await timed(QUERIES, async (i) => {
      truth.push(new Set((await search(i, true)).map((h) => h.index)));
    });
    const found: number[] = [];
    const indexMs = await timed(QUERIES, async (i) => {
      found.push((await search(i, false)).filter((h) => truth[i].has(h.index)).length);
    });
    const mid = Math.floor(n / 2);
    const page = (orderBy: 'INDEX' | 'DENSITY') =>
      pageFeatures(database, {
        dictionaryId: 'scale',
        orderBy,
        direction: 'ASC',
        first: 100,
        after: orderBy === 'INDEX' ? { value: mid, index: mid } : { value: 0.5, index: mid },
      });
    const pageIndexMs = await timed(20, () => page('INDEX'));
    const pageDensityMs = await timed(20, () => page('DENSITY'));
    const lookupMs = await timed(20, (r) =>
      getFeatures(
        database,
        Array.from({ length: 100 }, (_, i) => ({ dictionaryId: 'scale', index: (r * 7919 + i * 104729) % n })),
      ),
    );
    return {
      n,
      d,
      backend: database.kind,
      copySeconds: (t1 - t0 - making) / 1000,
      indexSeconds: (t2 - t1) / 1000,
      indexP50: percentile(indexMs, 0.5),
      indexP99: percentile(indexMs, 0.99),
      recall: found.reduce((a, b) => a + b, 0) / (10 * QUERIES),
      recallMin: Math.min(...found) / 10,
      exactP50: percentile(exactMs, 0.5),
      pageIndexP50: percentile(pageIndexMs, 0.5),
      pageDensityP50: percentile(pageDensityMs, 0.5),
      lookupP50: percentile(lookupMs, 0.5),
      peakRssMb: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    await database.close();
    if (!('skip' in pgdb)) await pgdb.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const COSTS: [string, (r: Result) => number, number][] = [
  ['copy s', (r) => r.copySeconds, 1],
  ['index s', (r) => r.indexSeconds, 1],
  ['index search p50 ms', (r) => r.indexP50, 2],
  ['index search p99 ms', (r) => r.indexP99, 2],
  ['exact p50 ms', (r) => r.exactP50, 1],
  ['page by index p50 ms', (r) => r.pageIndexP50, 2],
  ['page by density p50 ms', (r) => r.pageDensityP50, 2],
  ['100-feature lookup p50 ms', (r) => r.lookupP50, 2],
  ['peak RSS MB', (r) => r.peakRssMb, 0],
];

/** Sizes past the measured ones, projected from the last two measured points. */
const PROJECT = [262_144, 1_048_576];

function report(results: Result[]): void {
  for (const d of [...new Set(results.map((r) => r.d))]) {
    const rows = results.filter((r) => r.d === d);
    const k = rows.length;
    const kind = approximateIndex(rows[k - 1].n);
    const ahead = k >= 2 ? PROJECT.filter((n) => n > rows[k - 1].n && approximateIndex(n) === kind) : [];
    console.log(`\nd = ${d} (${d > 2000 ? 'halfvec' : 'vector'} index), ${rows[0].backend}, ${QUERIES} queries`);
    console.log(
      `| cost | ${rows.map((r) => r.n).join(' | ')} | growth exponent (last two) |` +
        ahead.map((n) => ` ${n} projected |`).join(''),
    );
    console.log(`| --- |${rows.map(() => ' ---: |').join('')} ---: |${ahead.map(() => ' ---: |').join('')}`);
    console.log(
      `| index | ${rows.map((r) => approximateIndex(r.n)).join(' | ')} | |${ahead.map(() => ` ${kind} |`).join('')}`,
    );
    const line = (name: string, values: number[], digits: number) => {
      const growth = k >= 2 ? Math.log(values[k - 1] / values[k - 2]) / Math.log(rows[k - 1].n / rows[k - 2].n) : NaN;
      const projected = ahead.map((n) => (values[k - 1] * (n / rows[k - 1].n) ** growth).toFixed(digits));
      console.log(
        `| ${name} | ${values.map((v) => v.toFixed(digits)).join(' | ')} | ${k >= 2 ? growth.toFixed(2) : ''} |` +
          projected.map((v) => ` ${v} |`).join(''),
      );
    };
    line(
      'import rows/s',
      rows.map((r) => r.n / r.copySeconds),
      0,
    );
    line(
      'import + index features/s',
      rows.map((r) => r.n / (r.copySeconds + r.indexSeconds)),
      0,
    );
    for (const [name, get, digits] of COSTS)
      line(
        name,
        rows.map((r) => get(r)),
        digits,
      );
    console.log(`| recall@10 | ${rows.map((r) => r.recall.toFixed(3)).join(' | ')} | |`);
    console.log(`| worst query's recall@10 | ${rows.map((r) => r.recallMin.toFixed(1)).join(' | ')} | |`);
  }
  console.log(
    `\nload average at the end (1, 5, 15 min): ${loadavg()
      .map((l) => l.toFixed(2))
      .join(', ')}`,
  );
}

const single = arg('one', '');
if (single) {
  const [n, d] = single.split(':').map(Number);
  console.log(JSON.stringify(await one(n, d)));
} else {
  const sizes = arg('sizes', '16384,65536').split(',').map(Number);
  const dims = arg('dims', '768').split(',').map(Number);
  const results: Result[] = [];
  for (const d of dims) {
    for (const n of sizes) {
      const extra = ['--queries', String(QUERIES), ...(flag('pglite') ? ['--pglite'] : [])];
      const child = spawnSync(
        process.execPath,
        ['--import', 'tsx', import.meta.filename, '--one', `${n}:${d}`, ...extra],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
      );
      if (child.status !== 0) throw new Error(`bench/scale.ts --one ${n}:${d} failed`);
      const result = JSON.parse(child.stdout.trim().split('\n').pop()!) as Result;
      console.error(`${n} x ${d}: ${JSON.stringify(result)}`);
      results.push(result);
    }
  }
  report(results);
}
