/**
 * Two servers on one PostgreSQL with different data folders (replicas, docs/decisions/0005): what one
 * machine registers and imports, the other serves from the files stored in the database, its source
 * files gone; a `--replace` through one is seen by the other; SIGKILL at random moments of a
 * `--replace` never loses the old version; a restarted replica reuses its cache; rows from before the
 * artifact store get their files stored by `migrateArtifacts`. Answers are checked
 * against the float64 reference forward pass and SAE formula (test/reference/).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase, type Database } from '../src/db/client.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { loadConfig } from '../src/config.js';
import { ArtifactCache, migrateArtifacts } from '../src/app/artifacts.js';
import { findDictionaryAnyState, getModels, upsertModel } from '../src/db/catalog.js';
import { openSae } from '../src/engine/sae/open.js';
import { loadTokenizer } from '../src/engine/tokenizers/load.js';
import { mulberry32 } from '../src/engine/random.js';
import { announceSkip, serveTestAtlas, type TestAtlas } from './helpers/atlas-server.js';
import { createTestDatabase } from './helpers/postgres.js';
import { writeTinyGpt2 } from './helpers/hf-fixtures.js';
import { randomVectors, tempDir, writeSaeFixture, type SaeFixture } from './helpers/sae-fixtures.js';
import { gpt2Forward } from './reference/gpt2.js';
import { refForwardOne, refTopK } from './reference/sae.js';

const ATLAS = join(import.meta.dirname, '..', 'bin', 'atlas.mjs');
const HOOK = 'blocks.1.hook_resid_post';
const TEXT = 'the cat sat on the mat';
const D = 32;
const KILLS = 2;

function refActive(fx: SaeFixture, x: number[], topK: number): { index: number; activation: number }[] {
  const { indices, values } = refTopK(refForwardOne(fx.config, fx.params, x).codes, topK);
  return indices.map((index, j) => ({ index, activation: values[j] })).filter((f) => f.activation > 0);
}

function assertSame(got: { index: number; activation: number }[], want: typeof got, what: string): void {
  assert.deepEqual(
    got.map((f) => f.index),
    want.map((f) => f.index),
    what,
  );
  got.forEach((f, j) => assert.ok(Math.abs(f.activation - want[j].activation) <= 1e-4, what));
}

/** The `atlas` CLI, killed with SIGKILL after `killAfterMs` unless it ends first; resolves with its run time. */
function runCli(args: string[], env: Record<string, string>, killAfterMs = Infinity): Promise<number> {
  const started = Date.now();
  const child = spawn(process.execPath, [ATLAS, ...args], { env: { ...process.env, ...env }, stdio: 'ignore' });
  const timer = Number.isFinite(killAfterMs) ? setTimeout(() => child.kill('SIGKILL'), killAfterMs) : undefined;
  return new Promise((resolve, reject) =>
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 || signal === 'SIGKILL') resolve(Date.now() - started);
      else reject(new Error(`atlas ${args.join(' ')} exited ${code}`));
    }),
  );
}

describe('replicas on one PostgreSQL', () => {
  it('serve, replace and survive kills from the database alone', async (t) => {
    const pg = await createTestDatabase();
    if ('skip' in pg) {
      announceSkip('replicas on PostgreSQL', pg.skip);
      return t.skip(pg.skip);
    }
    const files = tempDir('atlas-replicas-');
    const dirA = tempDir('atlas-replica-a-');
    const dirB = tempDir('atlas-replica-b-');
    const open = (dataDir: string) => openDatabase({ databaseUrl: pg.url, dataDir });
    let importer: Database | undefined;
    let b: TestAtlas | undefined;
    const serveB = async () => {
      const database = await open(dirB.dir);
      const config = { ...loadConfig({}), device: 'cpu' as const, dataDir: dirB.dir };
      return serveTestAtlas('postgres', database, config, () => database.close());
    };
    try {
      // Machine A registers the model and imports v1 from its own files.
      importer = await open(dirA.dir);
      mkdirSync(join(files.dir, 'gpt2'));
      const model = writeTinyGpt2(join(files.dir, 'gpt2'));
      await registerModel(importer, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
      const sae = (seed: number, dSae: number) =>
        writeSaeFixture(join(files.dir, `v${seed}`), { format: 'saelens', dIn: D, dSae, hookName: HOOK, seed });
      const versions = new Map([64, 96].map((dSae, i) => [dSae, sae(i + 1, dSae)]));
      const [v1, v2] = [versions.get(64)!, versions.get(96)!];
      await importDictionary(importer, { path: v1.path, modelId: 'gpt2-tiny', id: 'sae', dataDir: dirA.dir });
      const ids = loadTokenizer(model.dir).encode(TEXT, { bos: true });
      const resid = gpt2Forward(model.weights, ids).hooks.get(HOOK)!;
      const rows = ids.map((_, p) => Array.from(resid.subarray(p * D, (p + 1) * D)));
      // Only the database has the model now; replica B starts on another path with an empty folder.
      rmSync(model.dir, { recursive: true });
      b = await serveB();

      const vectors = Array.from({ length: 3 }, (_, i) => Array.from(randomVectors(1, D, 40 + i)));
      const encodesAs = async (replica: TestAtlas, fx: SaeFixture, what: string) => {
        const r = await replica.gql(
          'query($v: [[Float!]!]!) { dictionary(id: "sae") { dSae } encodeVectors(dictionary: "sae", vectors: $v, ' +
            'topK: 5) { index activation } }',
          { v: vectors },
        );
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        assert.equal(r.data.dictionary.dSae, fx.config.dSae, what);
        vectors.forEach((x, i) => assertSame(r.data.encodeVectors[i], refActive(fx, x, 5), `${what}: vector ${i}`));
      };

      const enc = await b.gql(
        `{ encode(dictionary: "sae", text: "${TEXT}", topK: 4) { tokens { tokenId features { index activation } } } }`,
      );
      assert.equal(enc.errors, undefined, JSON.stringify(enc.errors));
      assert.deepEqual(
        enc.data.encode.tokens.map((tk: { tokenId: number }) => tk.tokenId),
        ids,
      );
      enc.data.encode.tokens.forEach((tk: { features: { index: number; activation: number }[] }, p: number) =>
        assertSame(tk.features, refActive(v1, rows[p], 4), `replica B encodes token ${p}`),
      );
      await encodesAs(b, v1, 'replica B serves v1');

      // --replace through machine A: B loads v2 on its next request.
      await importDictionary(importer, {
        path: v2.path,
        modelId: 'gpt2-tiny',
        id: 'sae',
        dataDir: dirA.dir,
        replace: true,
      });
      await encodesAs(b, v2, 'replica B sees the replacement');

      // The CLI's --replace killed at random moments: B serves one whole version, the old one until the swap.
      const env = { DATABASE_URL: pg.url, ATLAS_DATA_DIR: dirA.dir };
      const replace = (fx: SaeFixture) => ['import', fx.path, '--model', 'gpt2-tiny', '--id', 'sae', '--replace'];
      const whole = await runCli(replace(v1), env);
      await encodesAs(b, v1, 'replica B after a CLI --replace');
      const random = mulberry32(14);
      let current = v1;
      for (let i = 0; i < KILLS; i++) {
        const next = current === v1 ? v2 : v1;
        const at = Math.floor(random() * whole);
        await runCli(replace(next), env, at);
        const [{ n }] = await importer.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM features WHERE dictionary_id = 'sae'",
        );
        const visible = versions.get(n);
        assert.ok(visible === current || visible === next, `kill at ${at} ms: ${n} feature rows`);
        await encodesAs(b, visible, `kill ${i} at ${at} of ${whole} ms`);
        current = visible;
      }

      // A restarted replica serves from its cache, even with the stored chunks gone.
      await b.close();
      b = undefined;
      assert.ok(readdirSync(join(dirB.dir, 'cache')).length >= 2, 'model and dictionary bundles cached');
      await importer.query('DELETE FROM artifact_chunks');
      b = await serveB();
      await encodesAs(b, current, 'restarted replica B');
    } finally {
      await b?.close();
      await importer?.close();
      await pg.drop();
      for (const d of [files, dirA, dirB]) d.cleanup();
    }
  });

  it('rows that point at files get them stored, or a coded message when a file is gone', async (t) => {
    const pg = await createTestDatabase();
    if ('skip' in pg) {
      announceSkip('artifact migration on PostgreSQL', pg.skip);
      return t.skip(pg.skip);
    }
    const files = tempDir('atlas-migrate-');
    const elsewhere = tempDir('atlas-migrate-replica-');
    const db = await openDatabase({ databaseUrl: pg.url, dataDir: files.dir });
    try {
      mkdirSync(join(files.dir, 'gpt2'));
      const model = writeTinyGpt2(join(files.dir, 'gpt2'));
      const fx = writeSaeFixture(join(files.dir, 'sae'), {
        format: 'saelens',
        dIn: D,
        dSae: 48,
        hookName: HOOK,
        seed: 5,
      });
      await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2' });
      await importDictionary(db, { path: fx.path, modelId: 'gpt2-tiny', id: 'sae', dataDir: files.dir });
      const [row] = await getModels(db, ['gpt2-tiny']);
      await upsertModel(db, { ...row, id: 'gone', sourcePath: join(files.dir, 'nowhere'), artifacts: null });
      // As rows were written before the artifact store: paths only.
      await db.query('UPDATE models SET artifacts = NULL');
      await db.query('UPDATE dictionaries SET artifacts = NULL, weights_path = $1', [fx.path]);
      await db.query('DELETE FROM artifact_chunks');
      await db.query('DELETE FROM artifact_blobs');

      const report = await migrateArtifacts(db);
      assert.deepEqual(report.stored, ['Model "gpt2-tiny"', 'Dictionary "sae"']);
      assert.deepEqual(
        report.missing.map((m) => m.id),
        ['Model "gone"'],
      );
      assert.match(report.missing[0].message, /^ARTIFACT_MISSING: Model "gone" points at .*atlas migrate-artifacts/);
      assert.deepEqual(
        await migrateArtifacts(db),
        { stored: [], missing: report.missing },
        'a second run: nothing new',
      );

      // Another machine fetches the migrated files; they read as the originals.
      const tokens = loadTokenizer(model.dir).encode(TEXT, { bos: true });
      rmSync(model.dir, { recursive: true });
      const cache = new ArtifactCache(db, { dataDir: elsewhere.dir });
      const sae = openSae(await cache.dictionary((await findDictionaryAnyState(db, 'sae'))!));
      assert.deepEqual(sae.loadParams(), openSae(fx.path).loadParams());
      sae.close();
      const { path } = await cache.model((await getModels(db, ['gpt2-tiny']))[0]);
      assert.deepEqual(loadTokenizer(path).encode(TEXT, { bos: true }), tokens);

      // A stored chunk damaged by hand: the fetch fails its hash check and caches nothing.
      await db.query("UPDATE artifact_chunks SET data = overlay(data placing '\\x00ff'::bytea from 9)");
      const fresh = new ArtifactCache(db, { dataDir: join(elsewhere.dir, 'other') });
      await assert.rejects(fresh.dictionary((await findDictionaryAnyState(db, 'sae'))!), (e: Error) => {
        assert.equal((e as { code?: string }).code, 'BAD_FILE');
        assert.match(e.message, /sha256 .* was expected/);
        return true;
      });
      assert.deepEqual(readdirSync(join(elsewhere.dir, 'other', 'cache')), []);
    } finally {
      await db.close();
      await pg.drop();
      files.cleanup();
      elsewhere.cleanup();
    }
  });
});
