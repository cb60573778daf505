/**
 * `atlas model add` converts the checkpoint to its cached ONNX graph (with progress), so loading the
 * model afterwards (the server's first request) converts nothing and runs the cached graph, whose
 * hooks equal the float64 reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { registerModel } from '../src/app/register-model.js';
import { loadModel } from '../src/engine/model/load.js';
import { openTestDatabase } from './helpers/atlas-server.js';
import { relError } from './helpers/graph-runner.js';
import { writeTinyGpt2 } from './helpers/hf-fixtures.js';
import { tempDir } from './helpers/sae-fixtures.js';
import { gpt2Forward } from './reference/gpt2.js';

test('model add converts the graph once, with progress; the later load converts nothing', async () => {
  const files = tempDir('atlas-convert-');
  const opened = await openTestDatabase('pglite');
  assert.ok(!('skip' in opened));
  try {
    mkdirSync(join(files.dir, 'gpt2'));
    const fx = writeTinyGpt2(join(files.dir, 'gpt2'));
    const dataDir = join(files.dir, 'data');
    const messages: string[] = [];
    const row = await registerModel(opened.database, {
      id: 'tiny',
      path: fx.dir,
      name: 'tiny gpt2',
      convert: { dataDir, onProgress: (m) => messages.push(m) },
    });
    assert.equal(row.id, 'tiny');
    assert.match(messages[0], /converting to ONNX/);
    assert.match(messages.at(-1)!, /converted in [0-9.]+ s/);
    const entries = readdirSync(join(dataDir, 'onnx'));
    assert.equal(entries.length, 1, 'one cache entry');
    assert.ok(existsSync(join(dataDir, 'onnx', entries[0], 'model.onnx')));

    const later: string[] = [];
    const model = await loadModel(fx.dir, { dataDir, device: 'cpu', threads: 1, onProgress: (m) => later.push(m) });
    try {
      assert.deepEqual(later, [], 'the load finds the converted graph');
      const tokens = [5, 17, 260, 3, 99, 42];
      const hook = 'blocks.1.hook_resid_post';
      const got = await model.runHooks([tokens], [hook]);
      const err = relError(got.get(hook)!.data, gpt2Forward(fx.weights, tokens).hooks.get(hook)!);
      assert.ok(err < 1e-4, `relative error ${err}`);
    } finally {
      await model.close();
    }
  } finally {
    await opened.cleanup();
    files.cleanup();
  }
});
