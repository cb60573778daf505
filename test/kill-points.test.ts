/**
 * Imports and builds killed with SIGKILL at every named fault point (src/faults.ts) leave nothing
 * half-written visible, and a re-run completes. Each run asserts the child really died at its point.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase, type Database } from '../src/db/client.js';
import { listDictionaries } from '../src/db/catalog.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { registerModel } from '../src/app/register-model.js';
import { FAULT_POINTS, type FaultPoint } from '../src/faults.js';
import { seedCatalog, FIXTURE } from './helpers/catalog-fixture.js';
import { writeSaeFixture, tempDir } from './helpers/sae-fixtures.js';
import { writeTinyGpt2 } from './helpers/hf-fixtures.js';
import { createTestDatabase } from './helpers/postgres.js';
import { announceSkip } from './helpers/atlas-server.js';

const ATLAS = join(import.meta.dirname, '..', 'bin', 'atlas.mjs');
/** Three COPY batches of 1,024 rows, so 'import:rows' stops an import with rows on both sides. */
const D_SAE = 2500;
const HOOK = 'blocks.1.hook_resid_post';
const IMPORT_POINTS = FAULT_POINTS.filter((p) => p.startsWith('import:') && p !== 'import:replaced');
const REPLACE_POINTS = FAULT_POINTS.filter((p) => p.startsWith('import:'));
const BUILD_POINTS = FAULT_POINTS.filter((p) => p.startsWith('build:'));

/** Runs the CLI with ATLAS_FAULT set and asserts that it died by SIGKILL (the point was reached). */
async function runToFault(point: FaultPoint, args: string[], env: Record<string, string>): Promise<void> {
  const child = spawn(process.execPath, [ATLAS, ...args], {
    env: { ...process.env, ...env, ATLAS_FAULT: point },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b) => (stderr += b));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) =>
    child.on('exit', (c, s) => r([c, s])),
  );
  assert.equal(signal, 'SIGKILL', `${point}: expected a kill at the fault point, got exit ${code}: ${stderr}`);
}

/** Feature rows, decoder rows, and feature 0's decoder of dictionary `id`. */
async function rows(db: Database, id: string): Promise<{ n: number; decoders: number; first: string | null }> {
  const [r] = await db.query<{ n: number; decoders: number; first: string | null }>(
    `SELECT (SELECT count(*)::int FROM features WHERE dictionary_id = $1) AS n, count(*)::int AS decoders,
      min(decoder::text) FILTER (WHERE idx = 0) AS first FROM feature_decoders WHERE dictionary_id = $1`,
    [id],
  );
  return r;
}

async function killImports(open: () => Promise<Database>, env: Record<string, string>, dataDir: string): Promise<void> {
  const files = tempDir('atlas-kill-');
  try {
    const oldFx = writeSaeFixture(join(files.dir, 'old'), { format: 'saelens', dIn: FIXTURE.dIn, dSae: 300, seed: 8 });
    const newFx = writeSaeFixture(join(files.dir, 'big'), {
      format: 'saelens',
      dIn: FIXTURE.dIn,
      dSae: D_SAE,
      seed: 9,
    });
    const base = ['import', newFx.path, '--model', FIXTURE.model, '--id', 'big', '--hook', HOOK];
    const db = await open();
    await seedCatalog(db);
    await db.close();
    for (const point of IMPORT_POINTS) {
      await runToFault(point, base, env);
      const after = await open();
      try {
        assert.equal(
          (await listDictionaries(after)).some((d) => d.id === 'big'),
          false,
          `${point}: visible after a kill`,
        );
        await importDictionary(after, { path: newFx.path, modelId: FIXTURE.model, id: 'big', dataDir, hook: HOOK });
        const { n, decoders } = await rows(after, 'big');
        assert.deepEqual([n, decoders], [D_SAE, D_SAE], `${point}: the re-run completes`);
        await after.query("DELETE FROM dictionaries WHERE id = 'big'");
      } finally {
        await after.close();
      }
    }
    // --replace over a ready dictionary: until the swap commits, the old one serves, whole.
    for (const point of REPLACE_POINTS) {
      const before = await open();
      const old = await importDictionary(before, {
        path: oldFx.path,
        modelId: FIXTURE.model,
        id: 'big',
        dataDir,
        hook: HOOK,
        replace: true,
      });
      const oldRows = await rows(before, 'big');
      await before.close();
      await runToFault(point, [...base, '--replace'], env);
      const after = await open();
      try {
        const visible = (await listDictionaries(after)).find((d) => d.id === 'big');
        assert.equal(visible?.dSae, old.dSae, `${point}: the old dictionary is visible`);
        assert.equal(visible?.artifacts?.version, old.artifacts?.version, `${point}: with its own weights`);
        assert.deepEqual(await rows(after, 'big'), oldRows, `${point}: the old dictionary is whole`);
        await importDictionary(after, {
          path: newFx.path,
          modelId: FIXTURE.model,
          id: 'big',
          dataDir,
          hook: HOOK,
          replace: true,
        });
        const { n, decoders } = await rows(after, 'big');
        assert.deepEqual([n, decoders], [D_SAE, D_SAE], `${point}: the re-run replaces it`);
      } finally {
        await after.close();
      }
    }
  } finally {
    files.cleanup();
  }
}

describe('kill at every fault point', () => {
  it('import and import --replace on PGlite', async () => {
    const data = tempDir('atlas-kill-data-');
    try {
      await killImports(
        () => openDatabase({ dataDir: data.dir }),
        { DATABASE_URL: '', ATLAS_DATA_DIR: data.dir },
        data.dir,
      );
    } finally {
      data.cleanup();
    }
  });

  it('import and import --replace on PostgreSQL', async (t) => {
    const pg = await createTestDatabase();
    if ('skip' in pg) {
      announceSkip('kill points on PostgreSQL', pg.skip);
      return t.skip(pg.skip);
    }
    const data = tempDir('atlas-kill-data-');
    try {
      const open = () => openDatabase({ databaseUrl: pg.url, dataDir: data.dir });
      await killImports(open, { DATABASE_URL: pg.url, ATLAS_DATA_DIR: data.dir }, data.dir);
    } finally {
      data.cleanup();
      await pg.drop();
    }
  });

  it('atlas build on PGlite: the previous dashboards stay whole, and a re-run publishes', async () => {
    const files = tempDir('atlas-kill-build-');
    const dataDir = join(files.dir, 'data');
    const env = { DATABASE_URL: '', ATLAS_DATA_DIR: dataDir };
    try {
      mkdirSync(join(files.dir, 'gpt2'));
      const model = writeTinyGpt2(join(files.dir, 'gpt2'));
      const fx = writeSaeFixture(join(files.dir, 'sae'), {
        format: 'saelens',
        architecture: 'topk',
        dIn: 32,
        dSae: 48,
        k: 5,
        hookName: HOOK,
      });
      const corpus = join(files.dir, 'corpus.txt');
      writeFileSync(corpus, Array.from({ length: 40 }, (_, i) => `the cat ${i} sat on the mat`).join('\n'));
      const db = await openDatabase({ dataDir });
      await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
      await importDictionary(db, { path: fx.path, modelId: 'gpt2-tiny', id: 'sae', dataDir });
      await db.close();
      const build = ['build', 'sae', '--corpus', corpus, '--context', '16', '--batch', '2'];
      const snapshot = async (d: Database) => ({
        stats: await d.query('SELECT stats FROM dictionaries'),
        features: await d.query('SELECT idx, density, max_activation FROM features ORDER BY idx'),
        examples: await d.query(
          'SELECT count(*)::int AS n, sum(m)::float8 AS s FROM feature_examples, unnest(max_values) AS m',
        ),
        contexts: await d.query('SELECT context, tokens, token_ids FROM example_contexts ORDER BY context'),
      });
      for (const point of BUILD_POINTS) {
        const before = await openDatabase({ dataDir });
        const previous = await snapshot(before);
        await before.close();
        await runToFault(point, build, env);
        const after = await openDatabase({ dataDir });
        try {
          assert.deepEqual(await snapshot(after), previous, `${point}: the previous dashboards are intact`);
        } finally {
          await after.close();
        }
        // A run without a fault publishes, so the next point has real dashboards to protect.
        const child = spawn(process.execPath, [ATLAS, ...build], { env: { ...process.env, ...env }, stdio: 'ignore' });
        assert.equal(await new Promise((r) => child.on('exit', r)), 0, `${point}: the re-run completes`);
        const done = await openDatabase({ dataDir });
        try {
          const [{ n }] = await done.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM feature_examples, unnest(max_values)',
          );
          assert.ok(n > 0, `${point}: the re-run published examples`);
        } finally {
          await done.close();
        }
      }
    } finally {
      files.cleanup();
    }
  });
});
