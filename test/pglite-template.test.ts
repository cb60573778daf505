/**
 * New PGlite folders start as a copy of a template cluster (src/db/pglite-template.ts): the template is made once
 * and then copied, the copy is a working cluster the migrations run on, a folder that holds anything is never
 * overwritten, and where no template can be made the folder is left to PGlite's own initdb.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { seedFromTemplate, templateDir } from '../src/db/pglite-template.js';
import { openDatabase } from '../src/db/client.js';
import { tempDir } from './helpers/sae-fixtures.js';

test('a template is made once, then copied into empty folders as a working cluster', async () => {
  const tmp = tempDir('atlas-template-');
  try {
    const template = templateDir(join(tmp.dir, 'cache'));
    assert.match(template, /feature-atlas\/pglite-template-\d+\.\d+\.\d+-\d+\.\d+\.\d+$/);
    const first = join(tmp.dir, 'a', 'pglite');
    assert.equal(await seedFromTemplate(first, template), true);
    assert.ok(existsSync(join(template, 'PG_VERSION')), 'the template is in place');
    assert.ok(existsSync(join(first, 'PG_VERSION')), 'the folder holds a cluster');
    // Nothing is left half-made beside them.
    assert.deepEqual(readdirSync(join(tmp.dir, 'cache', 'feature-atlas')), [template.split('/').pop()]);
    assert.deepEqual(readdirSync(join(tmp.dir, 'a')), ['pglite']);

    // The next folder is a copy of that template, not a new initdb: a file put into the template is in it.
    writeFileSync(join(template, 'marker'), 'from the template');
    const second = join(tmp.dir, 'b', 'pglite');
    mkdirSync(second, { recursive: true });
    assert.equal(await seedFromTemplate(second, template), true);
    assert.equal(readFileSync(join(second, 'marker'), 'utf8'), 'from the template');
    const client = await PGlite.create(second, { extensions: { vector } });
    try {
      await client.exec("CREATE EXTENSION vector; CREATE TABLE t (v vector(3)); INSERT INTO t VALUES ('[1,2,3]')");
      assert.deepEqual((await client.query('SELECT v::text AS v FROM t')).rows, [{ v: '[1,2,3]' }]);
    } finally {
      await client.close();
    }
    // The template is a closed cluster, and stays one while its copies run.
    assert.equal(readdirSync(template).includes('postmaster.pid'), false);
  } finally {
    tmp.cleanup();
  }
});

test('a folder that holds anything is left as it is; without a usable template, to initdb', async () => {
  const tmp = tempDir('atlas-template-');
  try {
    const used = join(tmp.dir, 'used');
    mkdirSync(used);
    writeFileSync(join(used, 'keep'), 'mine');
    assert.equal(await seedFromTemplate(used, templateDir(join(tmp.dir, 'cache'))), false);
    assert.deepEqual(readdirSync(used), ['keep']);
    assert.equal(existsSync(join(tmp.dir, 'cache')), false, 'no template made for a folder it would not fill');

    // A cache path under a regular file cannot be created: nothing is copied and the folder stays empty.
    writeFileSync(join(tmp.dir, 'file'), '');
    const empty = join(tmp.dir, 'empty');
    assert.equal(await seedFromTemplate(empty, join(tmp.dir, 'file', 'template')), false);
    assert.equal(existsSync(empty), false);
  } finally {
    tmp.cleanup();
  }
});

test('openDatabase on a new data folder: migrated, empty, and reopened as the same cluster', async () => {
  const tmp = tempDir('atlas-template-');
  try {
    const db = await openDatabase({ dataDir: tmp.dir });
    try {
      assert.deepEqual(await db.query('SELECT count(*)::int AS n FROM dictionaries'), [{ n: 0 }]);
      await db.query("INSERT INTO api_keys (name, key_hash, prefix) VALUES ('probe', 'h', 'p')");
    } finally {
      await db.close();
    }
    const again = await openDatabase({ dataDir: tmp.dir });
    try {
      assert.deepEqual(await again.query('SELECT name FROM api_keys'), [{ name: 'probe' }]);
    } finally {
      await again.close();
    }
  } finally {
    tmp.cleanup();
  }
});
