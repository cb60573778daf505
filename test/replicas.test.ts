/**
 * Two servers on one PostgreSQL with different data folders (replicas, docs/decisions/0005): what one
 * machine registers and imports, the other serves from the files stored in the database (the converted
 * ONNX graph included), its source files gone; a `--replace` through one is seen by the other; SIGKILL
 * at random moments of a `--replace` never loses the old version; a restarted replica reuses its cache;
 * a deletion or replacement through one process makes the other drop the old encoder and its cached
 * files by itself; pruning deletes the stored files no row names except those of an import in flight
 * (younger than the grace, or claimed by it), on PostgreSQL and PGlite; `atlas model delete` is refused
 * while the model has dictionaries and, with them, makes the other replica drop the model; rows from
 * before the artifact store get their files, and with `atlas migrate-artifacts` their converted graph,
 * stored by `migrateArtifacts`, and a replica with an empty folder runs that graph without converting.
 * Answers are checked against the float64 reference forward pass and SAE formula (test/reference/).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { openDatabase, type Database } from '../src/db/client.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { loadConfig } from '../src/config.js';
import { CATALOG_TTL_MS } from '../src/app/catalog-cache.js';
import { ArtifactCache, migrateArtifacts, pruneArtifacts, storeDictionaryArtifacts } from '../src/app/artifacts.js';
import { findDictionaryAnyState, getModels, upsertModel } from '../src/db/catalog.js';
import { loadModel } from '../src/engine/model/load.js';
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

/** The `atlas` CLI run to its end: its exit code and what it wrote. */
function cliOutput(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [ATLAS, ...args], { env: { ...process.env, ...env } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out })));
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
      const convert = { dataDir: dirA.dir, onProgress: () => undefined };
      await registerModel(importer, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true, convert });
      // The graph A converted is stored too: a replica fetches it (ArtifactCache never converts) as A wrote it.
      const [modelRow] = await getModels(importer, ['gpt2-tiny']);
      const graph = modelRow.artifacts!.converted!;
      assert.deepEqual(graph.files.map((f) => f.name).sort(), ['model.onnx', 'model.onnx.data']);
      await new ArtifactCache(importer, { dataDir: join(files.dir, 'graph') }).model(modelRow);
      for (const f of graph.files) {
        assert.deepEqual(
          readFileSync(join(files.dir, 'graph', 'onnx', graph.key, f.name)),
          readFileSync(join(dirA.dir, 'onnx', graph.key, f.name)),
          f.name,
        );
      }
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
        // A replica may serve a catalog row it read up to CATALOG_TTL_MS ago: a change is promised after that.
        await new Promise((r) => setTimeout(r, CATALOG_TTL_MS + 50));
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
      assert.ok(existsSync(join(dirB.dir, 'onnx', graph.key, 'model.onnx')), 'B runs the graph A converted');

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

  it('deletions and replacements leave the other replica; pruning spares imports in flight', async (t) => {
    const pg = await createTestDatabase();
    if ('skip' in pg) {
      announceSkip('deletion and pruning on PostgreSQL', pg.skip);
      return t.skip(pg.skip);
    }
    const files = tempDir('atlas-prune-');
    const dirA = tempDir('atlas-prune-a-');
    const dirB = tempDir('atlas-prune-b-');
    let importer: Database | undefined;
    let b: TestAtlas | undefined;
    try {
      importer = await openDatabase({ databaseUrl: pg.url, dataDir: dirA.dir });
      const db = importer;
      mkdirSync(join(files.dir, 'gpt2'));
      const model = writeTinyGpt2(join(files.dir, 'gpt2'));
      await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
      const sae = (name: string, seed: number, dSae: number) =>
        writeSaeFixture(join(files.dir, name), { format: 'saelens', dIn: D, dSae, hookName: HOOK, seed });
      const [gone, old, next, inFlight] = [
        sae('gone', 1, 48),
        sae('old', 2, 64),
        sae('next', 3, 80),
        sae('new', 4, 40),
      ];
      const add = (fx: SaeFixture, id: string, replace = false) =>
        importDictionary(db, { path: fx.path, modelId: 'gpt2-tiny', id, dataDir: dirA.dir, replace });
      const manifestOf = async (id: string) => (await findDictionaryAnyState(db, id))!.artifacts!;
      await add(gone, 'gone');
      await add(old, 'kept');
      const goneFiles = await manifestOf('gone');
      const oldFiles = await manifestOf('kept');

      const database = await openDatabase({ databaseUrl: pg.url, dataDir: dirB.dir });
      b = await serveTestAtlas('postgres', database, { ...loadConfig({}), device: 'cpu', dataDir: dirB.dir }, () =>
        database.close(),
      );
      const replica = b;
      const vectors = [Array.from(randomVectors(1, D, 7))];
      const encode = (id: string) =>
        replica.gql(
          'query($v: [[Float!]!]!) { encodeVectors(dictionary: "' +
            id +
            '", vectors: $v, topK: 5) ' +
            '{ index activation } }',
          { v: vectors },
        );
      const encodesAs = async (id: string, fx: SaeFixture) => {
        const r = await encode(id);
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        assertSame(r.data.encodeVectors[0], refActive(fx, vectors[0], 5), `${id} as ${fx.path}`);
      };
      const resident = async () => {
        const r = await replica.gql('{ serverInfo { resident { entries { key } } } }');
        return r.data.serverInfo.resident.entries.map((e: { key: string }) => e.key) as string[];
      };
      /** Polls B's resident set until `done`: the sweep runs every second; 30 s is a bound, not a speed check. */
      const eventually = async (done: (keys: string[]) => boolean, what: string) => {
        for (let i = 0; i < 300 && !done(await resident()); i++) await new Promise((r) => setTimeout(r, 100));
        assert.ok(done(await resident()), `${what}: ${(await resident()).join(', ')}`);
      };
      await encodesAs('gone', gone);
      await encodesAs('kept', old);
      const more = await replica.gql(
        `{ nearestFeatures(dictionary: "kept", index: 0, k: 2, exact: true) { cosine } ` +
          `encode(dictionary: "kept", text: "${TEXT}", topK: 1) { tokens { tokenId } } }`,
      );
      assert.equal(more.errors, undefined, JSON.stringify(more.errors));
      // A sweep while nothing changed keeps every entry: the keys it rebuilds from the rows are the same.
      const loaded = await resident();
      assert.equal(loaded.length, 4, `model, two encoders, a decoder matrix: ${loaded.join(', ')}`);
      await replica.services.freshness!.sweep();
      assert.deepEqual(await resident(), loaded);
      assert.ok(loaded.includes(`encoder:gone@${goneFiles.version}`));
      const cachedGone = join(dirB.dir, 'cache', goneFiles.version);
      assert.ok(existsSync(cachedGone), 'B fetched the dictionary into its cache');

      // Replaced through A, with no request to B: B retires the old encoder by itself.
      await add(next, 'kept', true);
      const nextFiles = await manifestOf('kept');
      await eventually(
        (keys) => !keys.some((k) => k === `encoder:kept@${oldFiles.version}` || k.startsWith('decoders:kept@')),
        'the replaced encoder and decoder matrix leave B',
      );
      await eventually(() => !existsSync(join(dirB.dir, 'cache', oldFiles.version)), "the old version's cache folder");
      // Deleted through the CLI on machine A: B drops the encoder and its cached files, and answers NOT_FOUND.
      await runCli(['dictionary', 'delete', 'gone'], { DATABASE_URL: pg.url, ATLAS_DATA_DIR: dirA.dir });
      await eventually((keys) => !keys.some((k) => k.startsWith('encoder:gone@')), 'the deleted encoder leaves B');
      assert.ok(!existsSync(cachedGone), "B removed the deleted version's cache folder");
      const r = await encode('gone');
      assert.equal(r.errors?.[0]?.extensions?.code, 'NOT_FOUND', JSON.stringify(r.errors));

      // The deletion's own prune spared everything: its files are younger than the default grace.
      const stored = async () =>
        new Set((await db.query<{ sha256: string }>('SELECT sha256 FROM artifact_blobs')).map((x) => x.sha256));
      const chunksOf = async (shas: string[]) =>
        (
          await db.query<{ n: number }>('SELECT count(*)::int AS n FROM artifact_chunks WHERE sha256 = ANY($1)', [shas])
        )[0].n;
      const shasOf = (m: { files: { sha256: string }[] }) => m.files.map((f) => f.sha256);
      const orphans = [...new Set([...shasOf(goneFiles), ...shasOf(oldFiles)])].filter(
        (h) => !shasOf(nextFiles).includes(h),
      );
      const before = await stored();
      assert.ok(
        orphans.every((h) => before.has(h)),
        'nothing pruned yet',
      );
      // As if everything had been stored two hours ago; then an import in flight stores (or claims) its files.
      await db.query("UPDATE artifact_blobs SET created_at = now() - interval '2 hours'");
      const flight = await storeDictionaryArtifacts(db, dirA.dir, inFlight.path);
      const reclaimed = await storeDictionaryArtifacts(db, dirA.dir, gone.path);
      const claimed = [...shasOf(flight), ...shasOf(reclaimed)];
      await runCli(['prune-artifacts', '--grace-minutes', '30'], { DATABASE_URL: pg.url, ATLAS_DATA_DIR: dirA.dir });
      const after = await stored();
      for (const h of orphans.filter((x) => !claimed.includes(x))) assert.ok(!after.has(h), `${h} pruned`);
      for (const h of [...claimed, ...shasOf(nextFiles)]) assert.ok(after.has(h), `${h} kept`);
      assert.equal(await chunksOf(orphans.filter((x) => !claimed.includes(x))), 0, 'their chunks went too');
      // Grace 0: the in-flight files no row names go as well; the current version's stay and still serve.
      const pruned = await pruneArtifacts(db, dirA.dir, 0);
      assert.equal(pruned.blobs, new Set(claimed.filter((h) => !shasOf(nextFiles).includes(h))).size);
      const [modelRow] = await getModels(db, ['gpt2-tiny']);
      assert.deepEqual(await stored(), new Set([...shasOf(nextFiles), ...shasOf(modelRow.artifacts!)]));
      const fresh = new ArtifactCache(db, { dataDir: join(files.dir, 'fresh') });
      const weights = openSae(await fresh.dictionary((await findDictionaryAnyState(db, 'kept'))!));
      assert.deepEqual(weights.loadParams(), openSae(next.path).loadParams(), 'a new replica fetches the new version');
      weights.close();
      await encodesAs('kept', next);
    } finally {
      await b?.close();
      await importer?.close();
      await pg.drop();
      for (const d of [files, dirA, dirB]) d.cleanup();
    }
  });

  it('model delete: refused while the model has dictionaries; with them, it leaves the other replica', async (t) => {
    const pg = await createTestDatabase();
    if ('skip' in pg) {
      announceSkip('model deletion on PostgreSQL', pg.skip);
      return t.skip(pg.skip);
    }
    const files = tempDir('atlas-model-delete-');
    const dirA = tempDir('atlas-model-delete-a-');
    const dirB = tempDir('atlas-model-delete-b-');
    let importer: Database | undefined;
    let b: TestAtlas | undefined;
    try {
      importer = await openDatabase({ databaseUrl: pg.url, dataDir: dirA.dir });
      const db = importer;
      mkdirSync(join(files.dir, 'gpt2'));
      const model = writeTinyGpt2(join(files.dir, 'gpt2'));
      const convert = { dataDir: dirA.dir, onProgress: () => undefined };
      await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true, convert });
      const fx = writeSaeFixture(join(files.dir, 'sae'), {
        format: 'saelens',
        dIn: D,
        dSae: 48,
        hookName: HOOK,
        seed: 3,
      });
      await importDictionary(db, { path: fx.path, modelId: 'gpt2-tiny', id: 'sae', dataDir: dirA.dir });
      const [modelRow] = await getModels(db, ['gpt2-tiny']);
      const manifest = modelRow.artifacts!;

      const database = await openDatabase({ databaseUrl: pg.url, dataDir: dirB.dir });
      b = await serveTestAtlas('postgres', database, { ...loadConfig({}), device: 'cpu', dataDir: dirB.dir }, () =>
        database.close(),
      );
      const replica = b;
      const ids = loadTokenizer(model.dir).encode(TEXT, { bos: true });
      const resid = gpt2Forward(model.weights, ids).hooks.get(HOOK)!;
      const encodes = async (what: string) => {
        const r = await replica.gql(
          `{ encode(dictionary: "sae", text: "${TEXT}", topK: 4) { tokens { features { index activation } } } }`,
        );
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        r.data.encode.tokens.forEach((tk: { features: { index: number; activation: number }[] }, p: number) =>
          assertSame(tk.features, refActive(fx, Array.from(resid.subarray(p * D, (p + 1) * D)), 4), `${what} ${p}`),
        );
      };
      const resident = async () => {
        const r = await replica.gql('{ serverInfo { resident { entries { key } } } }');
        return r.data.serverInfo.resident.entries.map((e: { key: string }) => e.key) as string[];
      };
      await encodes('B encodes');
      assert.ok((await resident()).includes(`model:gpt2-tiny@${manifest.version}`));
      assert.ok(existsSync(join(dirB.dir, 'cache', manifest.version)), 'B fetched the model into its cache');
      const counts = async () =>
        (
          await db.query<{ models: number; dicts: number; features: number }>(
            `SELECT (SELECT count(*)::int FROM models) AS models, (SELECT count(*)::int FROM dictionaries) AS dicts,
                    (SELECT count(*)::int FROM features) AS features`,
          )
        )[0];
      const before = await counts();
      assert.deepEqual(before, { models: 1, dicts: 1, features: 48 });

      // Without --with-dictionaries: a coded refusal naming the dictionary, and nothing lost.
      const env = { DATABASE_URL: pg.url, ATLAS_DATA_DIR: dirA.dir };
      const refused = await cliOutput(['model', 'delete', 'gpt2-tiny'], env);
      assert.equal(refused.code, 1, refused.out);
      assert.match(refused.out, /atlas: CONFLICT: Model "gpt2-tiny" has 1 dictionary \(sae\).*--with-dictionaries/);
      assert.deepEqual(await counts(), before);
      await encodes('B still encodes after the refusal');

      // A model without dictionaries needs no flag; B's sweep retires it with no request. Its files are
      // gpt2-tiny's too (one version), so B keeps their cache folder.
      await registerModel(db, { id: 'twin', path: model.dir, name: 'same checkpoint' });
      const twin = await replica.gql(
        `{ hookActivations(model: "twin", text: "${TEXT}", hooks: ["${HOOK}"]) { __typename } }`,
      );
      assert.equal(twin.errors, undefined, JSON.stringify(twin.errors));
      assert.ok((await resident()).includes(`model:twin@${manifest.version}`));
      const twinGone = await cliOutput(['model', 'delete', 'twin'], env);
      assert.equal(twinGone.code, 0, twinGone.out);
      for (let i = 0; i < 300 && (await resident()).some((k) => k.startsWith('model:twin@')); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(!(await resident()).some((k) => k.startsWith('model:twin@')), 'the sweep retired the deleted model');
      assert.ok(existsSync(join(dirB.dir, 'cache', manifest.version)), 'a version another row names stays');

      // With it: the model and its dictionary go. B's sweep is stopped first, so what drops them here is
      // the catalog lookup that finds each row gone (NOT_FOUND), then one sweep removes the cache folder.
      await replica.services.freshness!.stop();
      const done = await cliOutput(['model', 'delete', 'gpt2-tiny', '--with-dictionaries'], env);
      assert.equal(done.code, 0, done.out);
      assert.match(done.out, /Deleted model gpt2-tiny and its dictionaries sae\./);
      assert.deepEqual(await counts(), { models: 0, dicts: 0, features: 0 });
      await new Promise((r) => setTimeout(r, CATALOG_TTL_MS + 50));
      const hooks = await replica.gql(
        `{ hookActivations(model: "gpt2-tiny", text: "${TEXT}", hooks: ["${HOOK}"]) { __typename } }`,
      );
      assert.equal(hooks.errors?.[0]?.extensions?.code, 'NOT_FOUND', JSON.stringify(hooks.errors));
      assert.deepEqual(
        (await resident()).map((k) => k.split(':')[0]),
        ['encoder'],
        'B dropped the model on its NOT_FOUND',
      );
      const enc = await replica.gql(`{ encode(dictionary: "sae", text: "${TEXT}") { __typename } }`);
      assert.equal(enc.errors?.[0]?.extensions?.code, 'NOT_FOUND', JSON.stringify(enc.errors));
      assert.deepEqual(await resident(), [], 'and the encoder on its own');
      assert.ok(existsSync(join(dirB.dir, 'cache', manifest.version)), 'the folder waits for a sweep');
      await replica.services.freshness!.sweep();
      assert.ok(!existsSync(join(dirB.dir, 'cache', manifest.version)), "B removed the model's cache folder");

      // Its stored files and A's converted graph are unreferenced now: a prune with no grace takes them all.
      const graph = join(dirA.dir, 'onnx', manifest.converted!.key);
      assert.ok(existsSync(graph), 'younger than the default grace, the graph outlived the deletion');
      const pruned = await cliOutput(['prune-artifacts', '--grace-minutes', '0'], env);
      assert.equal(pruned.code, 0, pruned.out);
      assert.match(pruned.out, /Removed 1 converted graph folder/);
      assert.ok(!existsSync(graph), "A's converted graph went");
      assert.deepEqual(await db.query('SELECT sha256 FROM artifact_blobs'), [], 'every stored file went');
    } finally {
      await b?.close();
      await importer?.close();
      await pg.drop();
      for (const d of [files, dirA, dirB]) d.cleanup();
    }
  });

  it('on PGlite, pruning deletes the unnamed files of the data folder store alike', async () => {
    const files = tempDir('atlas-prune-pglite-');
    const db = await openDatabase({ dataDir: files.dir });
    try {
      mkdirSync(join(files.dir, 'gpt2'));
      const model = writeTinyGpt2(join(files.dir, 'gpt2'));
      await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2' });
      const sae = (name: string, seed: number, dSae: number) =>
        writeSaeFixture(join(files.dir, name), { format: 'saelens', dIn: D, dSae, hookName: HOOK, seed });
      const [v1, v2, inFlight] = [sae('v1', 1, 48), sae('v2', 2, 64), sae('new', 3, 40)];
      const add = (fx: SaeFixture, replace: boolean) =>
        importDictionary(db, { path: fx.path, modelId: 'gpt2-tiny', id: 'sae', dataDir: files.dir, replace });
      const shas = (m: { files: { sha256: string }[] }) => m.files.map((f) => f.sha256);
      const old = shas((await add(v1, false)).artifacts!);
      const current = shas((await add(v2, true)).artifacts!);
      const store = join(files.dir, 'artifacts');
      const stored = () => new Set(readdirSync(store));
      assert.deepEqual(await pruneArtifacts(db, files.dir), { blobs: 0, bytes: 0 }, 'all younger than the grace');
      // As if stored two hours ago; then an import in flight stores its files.
      const past = new Date(Date.now() - 2 * 3600_000);
      for (const name of readdirSync(store)) utimesSync(join(store, name), past, past);
      const flight = shas(await storeDictionaryArtifacts(db, files.dir, inFlight.path));
      const pruned = await pruneArtifacts(db, files.dir, 30);
      assert.equal(pruned.blobs, old.length);
      assert.deepEqual(stored(), new Set([...current, ...flight]));
      await pruneArtifacts(db, files.dir, 0);
      assert.deepEqual(stored(), new Set(current));
      const cache = new ArtifactCache(db, { dataDir: join(files.dir, 'elsewhere') });
      const weights = openSae(await cache.dictionary((await findDictionaryAnyState(db, 'sae'))!));
      assert.deepEqual(weights.loadParams(), openSae(v2.path).loadParams());
      weights.close();
    } finally {
      await db.close();
      files.cleanup();
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

      // As a server starting migrates: files only, no converted graph.
      const report = await migrateArtifacts(db);
      assert.deepEqual(report.stored, ['Model "gpt2-tiny"', 'Dictionary "sae"']);
      assert.deepEqual(
        report.missing.map((m) => m.id),
        ['Model "gone"'],
      );
      assert.match(report.missing[0].message, /^ARTIFACT_MISSING: Model "gone" points at .*atlas migrate-artifacts/);
      assert.equal((await getModels(db, ['gpt2-tiny']))[0].artifacts!.converted, undefined);
      // `atlas migrate-artifacts` converts: a row still pointing at its checkpoint is converted from it, one
      // migrated already from the files fetched out of the database.
      const [migrated] = await getModels(db, ['gpt2-tiny']);
      await upsertModel(db, { ...migrated, id: 'again', artifacts: null });
      const progress: string[] = [];
      const convert = { config: { dataDir: files.dir }, onProgress: (id: string, m: string) => progress.push(id + m) };
      const converted = await migrateArtifacts(db, convert);
      assert.deepEqual(converted.stored, ['Model "again"', 'Model "gpt2-tiny" (its converted graph)']);
      assert.ok(
        progress.some((m) => m.startsWith('againconverting')),
        progress.join('; '),
      );
      const stored = new Set(
        (await db.query<{ sha256: string }>('SELECT sha256 FROM artifact_blobs')).map((r) => r.sha256),
      );
      const graphs = (await getModels(db, ['again', 'gpt2-tiny'])).map((r) => r.artifacts!.converted!);
      assert.equal(graphs[0].key, graphs[1].key, 'one checkpoint, one graph');
      assert.deepEqual(graphs[0].files.map((f) => f.name).sort(), ['model.onnx', 'model.onnx.data']);
      for (const f of graphs[0].files) assert.ok(stored.has(f.sha256), `${f.name} stored`);
      assert.deepEqual(await migrateArtifacts(db, convert), { stored: [], missing: report.missing }, 'nothing new');

      // Another machine fetches the migrated files; they read as the originals.
      const tokens = loadTokenizer(model.dir).encode(TEXT, { bos: true });
      const resid = gpt2Forward(model.weights, tokens).hooks.get(HOOK)!;
      rmSync(model.dir, { recursive: true });
      const cache = new ArtifactCache(db, { dataDir: elsewhere.dir });
      const sae = openSae(await cache.dictionary((await findDictionaryAnyState(db, 'sae'))!));
      assert.deepEqual(sae.loadParams(), openSae(fx.path).loadParams());
      sae.close();
      const { path } = await cache.model((await getModels(db, ['gpt2-tiny']))[0]);
      assert.deepEqual(loadTokenizer(path).encode(TEXT, { bos: true }), tokens);
      // With an empty data folder, it runs the stored graph without converting, as the float64 forward pass.
      assert.ok(existsSync(join(elsewhere.dir, 'onnx', graphs[0].key, 'model.onnx')), 'the graph was fetched');
      const heard: string[] = [];
      const loaded = await loadModel(path, { dataDir: elsewhere.dir, device: 'cpu', onProgress: (m) => heard.push(m) });
      try {
        const got = (await loaded.runHooks([tokens], [HOOK])).get(HOOK)!;
        assert.deepEqual(heard, [], 'no conversion');
        assert.equal(got.data.length, resid.length);
        got.data.forEach((v, i) => assert.ok(Math.abs(v - resid[i]) <= 1e-4, `activation ${i}: ${v} vs ${resid[i]}`));
      } finally {
        await loaded.close();
      }

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
