/**
 * `atlas model delete` and the pruning of converted ONNX graphs, on PGlite (two replicas on PostgreSQL:
 * test/replicas.test.ts). A model with dictionaries is refused with CONFLICT naming them, and nothing is
 * lost; with them, the model, its dictionaries, their features and search indexes go. Pruning removes a
 * converted graph no model needs once unused for the grace, and the leftovers of a killed conversion;
 * it keeps a live model's graph, one a model loaded in this process holds, a young or lately used one,
 * and every one when a model's checkpoint is not on this machine. Which folder is whose is read from the folder each
 * conversion created, not from the keys the code under test computes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase, type Database } from '../src/db/client.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { deleteModelById } from '../src/app/delete-model.js';
import { pruneConvertedGraphs } from '../src/app/artifacts.js';
import { getModels, upsertModel } from '../src/db/catalog.js';
import { indexName } from '../src/db/vector-index.js';
import { loadModel } from '../src/engine/model/load.js';
import { writeTinyGpt2 } from './helpers/hf-fixtures.js';
import { tempDir, writeSaeFixture } from './helpers/sae-fixtures.js';

const HOOK = 'blocks.1.hook_resid_post';

async function counts(db: Database) {
  const [row] = await db.query<{ models: number; dicts: number; features: number; indexes: number }>(
    `SELECT (SELECT count(*)::int FROM models) AS models, (SELECT count(*)::int FROM dictionaries) AS dicts,
            (SELECT count(*)::int FROM features) AS features,
            (SELECT count(*)::int FROM pg_indexes WHERE indexname = ANY($1)) AS indexes`,
    [['sae', 'wide'].map(indexName)],
  );
  return row;
}

describe('atlas model delete (PGlite)', () => {
  it('is refused while the model has dictionaries, and takes them with --with-dictionaries', async () => {
    const files = tempDir('atlas-model-delete-');
    const db = await openDatabase({ dataDir: files.dir });
    try {
      mkdirSync(join(files.dir, 'gpt2'));
      const model = writeTinyGpt2(join(files.dir, 'gpt2'));
      await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2' });
      await registerModel(db, { id: 'bare', path: model.dir, name: 'no dictionaries' });
      for (const [id, dSae] of [
        ['sae', 48],
        ['wide', 64],
      ] as const) {
        const fx = writeSaeFixture(join(files.dir, id), { format: 'saelens', dIn: 32, dSae, hookName: HOOK, seed: 1 });
        await importDictionary(db, { path: fx.path, modelId: 'gpt2-tiny', id, dataDir: files.dir });
      }
      const before = await counts(db);
      assert.deepEqual(before, { models: 2, dicts: 2, features: 112, indexes: 2 });

      await assert.rejects(deleteModelById(db, 'gpt2-tiny'), (e: Error & { code?: string; details?: unknown }) => {
        assert.equal(e.code, 'CONFLICT');
        assert.deepEqual(e.details, { dictionaries: ['sae', 'wide'] });
        assert.match(e.message, /has 2 dictionaries \(sae, wide\); nothing was deleted.*--with-dictionaries/);
        return true;
      });
      assert.deepEqual(await counts(db), before, 'nothing lost');

      assert.deepEqual(await deleteModelById(db, 'gpt2-tiny', { withDictionaries: true }), {
        dictionaries: ['sae', 'wide'],
      });
      assert.deepEqual(await counts(db), { models: 1, dicts: 0, features: 0, indexes: 0 });
      // A model without dictionaries needs no flag; one that is not there is NOT_FOUND.
      assert.deepEqual(await deleteModelById(db, 'bare'), { dictionaries: [] });
      for (const id of ['bare', 'gpt2-tiny']) {
        await assert.rejects(deleteModelById(db, id), (e: Error & { code?: string }) => e.code === 'NOT_FOUND');
      }
    } finally {
      await db.close();
      files.cleanup();
    }
  });

  it('pruning removes the converted graphs no model needs, never a live, held or young one', async () => {
    const files = tempDir('atlas-graph-prune-');
    const db = await openDatabase({ dataDir: files.dir });
    const config = { dataDir: files.dir };
    const onnx = join(files.dir, 'onnx');
    const folders = () => new Set(readdirSync(onnx));
    const age = (name: string, hours: number) => {
      const t = new Date(Date.now() - hours * 3600_000);
      utimesSync(join(onnx, name), t, t);
    };
    try {
      // Two checkpoints, each converted by `model add` into a folder of its own.
      const add = async (id: string, seed: number) => {
        mkdirSync(join(files.dir, id));
        const model = writeTinyGpt2(join(files.dir, id), { seed });
        const had = existsSync(onnx) ? folders() : new Set<string>();
        const convert = { dataDir: files.dir, onProgress: () => undefined };
        await registerModel(db, { id, path: model.dir, name: id, convert });
        const made = [...folders()].filter((f) => !had.has(f));
        assert.equal(made.length, 1, `${id}: one graph folder`);
        return { dir: model.dir, folder: made[0] };
      };
      const live = await add('live', 1);
      const gone = await add('gone', 2);
      // A model of this process still runs on the deleted model's graph.
      const loaded = await loadModel(gone.dir, { dataDir: files.dir, device: 'cpu' });
      await deleteModelById(db, 'gone');
      const killed = `${gone.folder}.tmp-1-dead`;
      mkdirSync(join(onnx, killed));
      const young = 'f'.repeat(64);
      mkdirSync(join(onnx, young));
      for (const name of [live.folder, gone.folder, killed]) age(name, 2);

      // Grace 30 min: the killed conversion's folder goes; the held graph, the live one and the young one stay.
      assert.deepEqual(await pruneConvertedGraphs(db, config, 30), { removed: 1 });
      assert.deepEqual(folders(), new Set([live.folder, gone.folder, young]));
      await loaded.close();
      // Loading reuses the graph (as `model add` of the same checkpoint would): young again, so it stays.
      await (await loadModel(gone.dir, { dataDir: files.dir, device: 'cpu' })).close();
      assert.deepEqual(await pruneConvertedGraphs(db, config, 30), { removed: 0 });
      assert.ok(folders().has(gone.folder));
      age(gone.folder, 2);
      assert.deepEqual(await pruneConvertedGraphs(db, config, 30), { removed: 1 });
      assert.deepEqual(folders(), new Set([live.folder, young]));
      // A model whose checkpoint is not on this machine: its graph's name is unknown, so nothing goes.
      const [row] = await getModels(db, ['live']);
      await upsertModel(db, { ...row, id: 'away', sourcePath: join(files.dir, 'nowhere') });
      const kept = await pruneConvertedGraphs(db, config, 0);
      assert.equal(kept.removed, 0);
      assert.match(kept.kept!, /checkpoint of model "away" is not on this machine/);
      assert.deepEqual(folders(), new Set([live.folder, young]));
      await deleteModelById(db, 'away');
      assert.deepEqual(await pruneConvertedGraphs(db, config, 0), { removed: 1 });
      assert.deepEqual(folders(), new Set([live.folder]));

      // The live model still loads from its graph without converting.
      const heard: string[] = [];
      const again = await loadModel(live.dir, { dataDir: files.dir, device: 'cpu', onProgress: (m) => heard.push(m) });
      await again.close();
      assert.deepEqual(heard, []);
    } finally {
      await db.close();
      files.cleanup();
    }
  });
});
