/** An import killed with SIGKILL at any moment leaves no visible dictionary, and a re-run completes. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase, type Database } from '../src/db/client.js';
import { listDictionaries } from '../src/db/catalog.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { seedCatalog, FIXTURE } from './helpers/catalog-fixture.js';
import { writeSaeFixture, tempDir } from './helpers/sae-fixtures.js';
import { createTestDatabase } from './helpers/postgres.js';
import { announceSkip } from './helpers/atlas-server.js';

const ATLAS = join(import.meta.dirname, '..', 'bin', 'atlas.mjs');
const D_SAE = 8000;

async function killMidway(env: Record<string, string>, path: string, dataDir: string, delayMs: number): Promise<void> {
  const child = spawn(process.execPath, [ATLAS, 'import', path, '--model', FIXTURE.model, '--id', 'big'], {
    env: { ...process.env, ...env, ATLAS_DATA_DIR: dataDir }, stdio: 'ignore',
  });
  const exited = new Promise((r) => child.on('exit', r));
  // The staging folder appears once the file has been validated and writing starts.
  const staging = join(dataDir, 'dictionaries', '.big.importing');
  const deadline = Date.now() + 60_000;
  while (!existsSync(staging) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(existsSync(staging), 'the import never started writing');
  await new Promise((r) => setTimeout(r, delayMs));
  child.kill('SIGKILL');
  await exited;
}

async function checkRecovery(open: () => Promise<Database>, path: string, dataDir: string): Promise<void> {
  const db = await open();
  try {
    assert.equal((await listDictionaries(db)).some((d) => d.id === 'big'), false, 'a killed import must not be visible');
    const row = await importDictionary(db, { path, modelId: FIXTURE.model, id: 'big', dataDir });
    assert.equal(row.state, 'ready');
    const [{ n }] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM features WHERE dictionary_id = 'big'");
    assert.equal(n, D_SAE);
  } finally {
    await db.close();
  }
}

describe('import killed with SIGKILL', () => {
  const files = tempDir('atlas-kill-');
  const fx = writeSaeFixture(join(files.dir, 'big'), { format: 'saelens', dIn: FIXTURE.dIn, dSae: D_SAE, hookName: 'blocks.1.hook_resid_post', seed: 9 });

  it('on PGlite', async () => {
    const data = tempDir('atlas-kill-data-');
    try {
      const db = await openDatabase({ dataDir: data.dir });
      await seedCatalog(db);
      await db.close();
      for (const delay of [100, 1500]) {
        await killMidway({ DATABASE_URL: '' }, fx.path, data.dir, delay);
        // The lock of the killed process names a dead pid, so the next open takes it over.
        await checkRecovery(() => openDatabase({ dataDir: data.dir }), fx.path, data.dir);
        const db2 = await openDatabase({ dataDir: data.dir });
        await db2.query("DELETE FROM dictionaries WHERE id = 'big'");
        await db2.close();
      }
    } finally {
      data.cleanup();
    }
  });

  it('on PostgreSQL', async (t) => {
    const pg = await createTestDatabase();
    if ('skip' in pg) {
      announceSkip('SIGKILL import on PostgreSQL', pg.skip);
      return t.skip(pg.skip);
    }
    const data = tempDir('atlas-kill-data-');
    try {
      const db = await openDatabase({ databaseUrl: pg.url, dataDir: data.dir });
      await seedCatalog(db);
      await db.close();
      await killMidway({ DATABASE_URL: pg.url }, fx.path, data.dir, 300);
      await checkRecovery(() => openDatabase({ databaseUrl: pg.url, dataDir: data.dir }), fx.path, data.dir);
    } finally {
      data.cleanup();
      await pg.drop();
      files.cleanup();
    }
  });
});
