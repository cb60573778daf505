/**
 * Import speed of several checkouts of this repository, side by side: each root's own writeDictionary
 * (rows by COPY, then the vector index, as `atlas import` writes them) imports the same synthetic
 * decoder-like dictionary (unit rows around 12 cluster centres, bench/util.ts) into a fresh scratch
 * PostgreSQL database (ATLAS_TEST_PG_URL), one child process per import so each gets its own memory and
 * plan cache, rounds interleaved. Rows are generated before the clock starts. Prints rows and index
 * seconds and features/s per root and round, and the load average.
 * Usage: node --import tsx bench/import-versions.ts --roots /path/to/old,. [--n 16384] [--d 768] [--rounds 2]
 * (make an old checkout with `git worktree add /tmp/old <commit>` and link node_modules into it).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { arg } from './util.js';

const N = Number(arg('n', '16384'));
const D = Number(arg('d', '768'));

async function importOnce(root: string): Promise<void> {
  const load = (path: string) => import(pathToFileURL(resolve(root, path)).href);
  const { clusteredBlocks } = await import('./util.js');
  const { openDatabase } = await load('src/db/client.ts');
  const { writeDictionary } = await load('src/db/dictionary-write.ts');
  const { upsertModel } = await load('src/db/catalog.ts');
  const { createTestDatabase } = await load('test/helpers/postgres.ts');
  const blocks = [...clusteredBlocks(D, 11, 12, N, 1024)];
  const pg = await createTestDatabase();
  if ('skip' in pg) throw new Error(pg.skip);
  const dataDir = mkdtempSync(join(tmpdir(), 'atlas-import-versions-'));
  const database = await openDatabase({ databaseUrl: pg.url, dataDir });
  try {
    await upsertModel(database, {
      id: 'm',
      name: 'm',
      architecture: 'gpt2',
      dModel: D,
      nLayers: 1,
      vocabSize: 1,
      contextLength: 1,
      prependBos: false,
      hookPoints: ['blocks.0.hook_resid_post'],
      sourcePath: '/x',
      sourceFormat: 'huggingface',
      tokenizerPath: null,
    });
    const t0 = performance.now();
    let t1 = 0;
    // Written out, not taken from test/helpers/synthetic.ts: another checkout's schema may lack later columns.
    const dict = {
      id: 'bench',
      modelId: 'm',
      name: 'bench',
      hookPoint: 'blocks.0.hook_resid_post',
      hookPointOut: null,
      prependBos: false,
      dIn: D,
      dSae: N,
      architecture: 'standard',
      k: null,
      params: {},
      sourceFormat: 'saelens',
      sourcePath: '/x',
      weightsPath: '/x',
    };
    await writeDictionary(database, dict, blocks, { onIndexing: () => (t1 = performance.now()) });
    const t2 = performance.now();
    console.log(JSON.stringify({ rowsS: (t1 - t0) / 1000, indexS: (t2 - t1) / 1000 }));
  } finally {
    await database.close();
    await pg.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const child = arg('child', '');
if (child) {
  await importOnce(child);
} else {
  const roots = arg('roots', '.').split(',');
  console.log(`${N} × ${D} on PostgreSQL; features/s of the whole import (rows + index)`);
  console.log('| root | round | rows s | index s | features/s | load |\n| --- | ---: | ---: | ---: | ---: | ---: |');
  for (let round = 1; round <= Number(arg('rounds', '2')); round++) {
    for (const root of roots) {
      const run = spawnSync(
        process.execPath,
        ['--import', 'tsx', import.meta.filename, '--child', root, '--n', `${N}`, '--d', `${D}`],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const line = run.stdout.trim().split('\n').pop() ?? '';
      if (run.status !== 0 || !line.startsWith('{')) throw new Error(`import with ${root} failed`);
      const r = JSON.parse(line) as { rowsS: number; indexS: number };
      const rate = N / (r.rowsS + r.indexS);
      console.log(
        `| ${root} | ${round} | ${r.rowsS.toFixed(2)} | ${r.indexS.toFixed(2)} | ${rate.toFixed(0)} | ` +
          `${loadavg()[0].toFixed(1)} |`,
      );
    }
  }
}
