/**
 * The full-text probes of issue 16 over HTTP, on PGlite and on PostgreSQL when reachable: a catalog
 * of 4 × 2,048 features whose labels and explanations all contain "whale" and "ship" (so every row
 * matches, as on the demo atlas), then searchFeatures and searchExplanations with "whale ship "
 * repeated to 1 KB, 10 KB, 20 KB (the ATLAS_MAX_INPUT_CHARS cap) and 50 KB, and 20 KB of distinct
 * words. Prints each answer (data or its code) and its time, and the slowest /healthz answer seen
 * while the probes ran (polled every 50 ms).
 * Usage: npx tsx bench/hostile.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../src/config.js';
import { openDatabase, type Database } from '../src/db/client.js';
import { upsertModel } from '../src/db/catalog.js';
import { writeDictionary } from '../src/db/dictionary-write.js';
import { startServer } from '../src/server.js';
import { createServices } from '../src/app/services.js';
import { createTestDatabase } from '../test/helpers/postgres.js';
import { uniform } from './util.js';

const DICTS = 4;
const D_SAE = 2048;
const D_IN = 64;

async function seed(database: Database): Promise<void> {
  await upsertModel(database, {
    id: 'm',
    name: 'm',
    architecture: 'llama',
    dModel: D_IN,
    nLayers: 1,
    vocabSize: 64,
    contextLength: 128,
    prependBos: true,
    hookPoints: ['blocks.0.hook_resid_post'],
    sourcePath: '/nonexistent',
    sourceFormat: 'llama2c',
    tokenizerPath: null,
  });
  for (let d = 0; d < DICTS; d++) {
    const id = `d${d}`;
    await writeDictionary(
      database,
      {
        id,
        modelId: 'm',
        name: id,
        hookPoint: 'blocks.0.hook_resid_post',
        dIn: D_IN,
        dSae: D_SAE,
        architecture: 'topk',
        k: 8,
        params: { normalization: 'none' },
        sourceFormat: 'saelens',
        prependBos: true,
      },
      [uniform(D_SAE * D_IN, 1, d + 1)],
    );
    await database.query(`UPDATE features SET label = 'the whale ship sails ' || idx WHERE dictionary_id = $1`, [id]);
    await database.query(
      `INSERT INTO explanations (dictionary_id, feature_idx, text, source)
      SELECT dictionary_id, idx, 'whale and ship near the sea ' || idx, 'bench' FROM features WHERE dictionary_id = $1`,
      [id],
    );
  }
}

async function probe(name: string, database: Database): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'atlas-bench-hostile-'));
  const config: Config = { ...loadConfig({}), device: 'cpu', dataDir };
  const services = await createServices(config, database);
  const server = await startServer(
    { database, services, maxBodyBytes: config.maxBodyBytes, log: () => undefined },
    { port: 0, host: '127.0.0.1' },
  );
  let slowest = 0;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const t = performance.now();
      await (await fetch(new URL('/healthz', server.url))).arrayBuffer();
      slowest = Math.max(slowest, performance.now() - t);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const distinct = Array.from({ length: 4000 }, (_, i) => `w${i}x`)
    .join(' ')
    .slice(0, 20000);
  const texts: [string, string][] = [
    ['whale ship ×100 (1.1 KB)', 'whale ship '.repeat(100)],
    ['whale ship ×900 (9.9 KB)', 'whale ship '.repeat(900)],
    ['whale ship ×1800 (19.8 KB)', 'whale ship '.repeat(1800)],
    ['whale ship ×4700 (51.7 KB)', 'whale ship '.repeat(4700)],
    ['distinct words (20 KB)', distinct],
  ];
  console.log(`\n${name}`);
  for (const field of ['searchFeatures', 'searchExplanations']) {
    for (const [label, q] of texts) {
      const t = performance.now();
      const res = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          query: `query($q: String!) { ${field}(query: $q, first: 10) { score } }`,
          variables: { q },
        }),
      });
      const body = (await res.json()) as {
        data?: Record<string, unknown[]>;
        errors?: { extensions?: { code?: string } }[];
      };
      const answer = body.errors ? body.errors[0].extensions?.code : `${body.data![field].length} hits`;
      console.log(
        `  ${field.padEnd(19)} ${label.padEnd(28)} ${String(answer).padEnd(15)} ` +
          `${(performance.now() - t).toFixed(0).padStart(6)} ms`,
      );
    }
  }
  polling = false;
  await poller;
  console.log(`  slowest /healthz while probing: ${slowest.toFixed(0)} ms`);
  await server.stop();
  await services.close();
  rmSync(dataDir, { recursive: true, force: true });
}

const dir = mkdtempSync(join(tmpdir(), 'atlas-bench-hostile-db-'));
const pglite = await openDatabase({ dataDir: dir });
await seed(pglite);
await probe('PGlite', pglite);
await pglite.close();
rmSync(dir, { recursive: true, force: true });

const pg = await createTestDatabase();
if ('skip' in pg) {
  console.log(`\nPostgreSQL skipped: ${pg.skip}`);
} else {
  const database = await openDatabase({ databaseUrl: pg.url, dataDir: tmpdir() });
  try {
    await seed(database);
    await probe('PostgreSQL', database);
  } finally {
    await database.close();
    await pg.drop();
  }
}
