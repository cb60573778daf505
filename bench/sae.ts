/**
 * SAE dictionaries: import time and features/s for a random 24,576 × 768 dictionary on PGlite and on
 * PostgreSQL (when ATLAS_TEST_PG_URL or the local server is reachable), split into the row copy and
 * the HNSW build; then encode throughput (bench/sae-encode.ts) in the same run.
 * Usage: node --import tsx bench/sae.ts [--d-sae 24576] [--skip-encode]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Database } from '../src/db/client.js';
import { upsertModel } from '../src/db/catalog.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { writeSaeFixture } from '../test/helpers/sae-fixtures.js';
import { createTestDatabase } from '../test/helpers/postgres.js';
import { arg, flag } from './util.js';

const D_IN = 768;
const D_SAE = Number(arg('d-sae', '24576'));

const work = mkdtempSync(join(tmpdir(), 'atlas-bench-sae-'));
const fixture = writeSaeFixture(join(work, 'sae'), {
  format: 'saelens',
  architecture: 'topk',
  dIn: D_IN,
  dSae: D_SAE,
  k: 32,
  hookName: 'blocks.6.hook_resid_post',
});

async function run(name: string, database: Database, dataDir: string): Promise<string[]> {
  await upsertModel(database, {
    id: 'bench-model',
    name: 'bench',
    architecture: 'gpt2',
    dModel: D_IN,
    nLayers: 12,
    vocabSize: 50257,
    contextLength: 1024,
    prependBos: true,
    hookPoints: ['blocks.6.hook_resid_post'],
    sourcePath: '/dev/null',
    sourceFormat: 'huggingface',
    tokenizerPath: null,
  });
  const start = performance.now();
  let rowsDone = start;
  await importDictionary(database, {
    path: fixture.path,
    modelId: 'bench-model',
    id: 'bench-dict',
    dataDir,
    progress: {
      start: () => undefined,
      rows: () => undefined,
      indexing: () => {
        rowsDone = performance.now();
      },
    },
  });
  const end = performance.now();
  const total = (end - start) / 1000;
  return [
    name,
    ((rowsDone - start) / 1000).toFixed(1),
    ((end - rowsDone) / 1000).toFixed(1),
    total.toFixed(1),
    Math.round(D_SAE / total).toString(),
  ];
}

const rows: string[][] = [];
{
  const dir = mkdtempSync(join(tmpdir(), 'atlas-bench-pglite-'));
  const db = await openDatabase({ dataDir: dir });
  rows.push(await run('PGlite', db, dir));
  await db.close();
  rmSync(dir, { recursive: true, force: true });
}
const pg = await createTestDatabase();
if ('skip' in pg) {
  console.log(`PostgreSQL skipped: ${pg.skip}`);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-bench-pg-'));
  const db = await openDatabase({ databaseUrl: pg.url, dataDir: dir });
  rows.push(await run('PostgreSQL', db, dir));
  await db.close();
  await pg.drop();
  rmSync(dir, { recursive: true, force: true });
}
rmSync(work, { recursive: true, force: true });

console.log(`\nimport of a ${D_SAE} × ${D_IN} topk dictionary`);
console.log('| backend | rows (s) | HNSW index (s) | total (s) | features/s |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
if (rows.length === 2)
  console.log(`PGlite / PostgreSQL total time: ${(Number(rows[0][3]) / Number(rows[1][3])).toFixed(2)}×`);

if (!flag('skip-encode')) await import('./sae-encode.js');
