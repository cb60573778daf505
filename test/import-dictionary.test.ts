/** `atlas import` / `atlas export` on both backends: every format, atomicity, refusals that change nothing. */
import { describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { BACKENDS, openTestDatabase, useFixture } from './helpers/atlas-server.js';
import { seedCatalog, FIXTURE } from './helpers/catalog-fixture.js';
import {
  writeSaeFixture,
  writeLlamaScopeFixture,
  tempDir,
  type SaeFixtureFormat,
  type SaeCorruption,
} from './helpers/sae-fixtures.js';
import type { Database } from '../src/db/client.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { exportDictionary } from '../src/app/export-dictionary.js';
import { ArtifactCache } from '../src/app/artifacts.js';
import type { DictionaryRow } from '../src/db/catalog.js';
import { getDecoders, getFeatures } from '../src/db/features.js';
import { listDictionaries } from '../src/db/catalog.js';
import { openSae } from '../src/engine/sae/open.js';
import { isAtlasError } from '../src/errors.js';
import type { SaeArchitecture } from '../src/engine/sae/types.js';

const HOOK = 'blocks.1.hook_resid_post';

async function snapshot(database: Database): Promise<string> {
  const [d] = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM dictionaries');
  const [f] = await database.query<{ n: number }>('SELECT count(*)::int AS n FROM features');
  return `${d.n} dictionaries, ${f.n} features`;
}

async function expectCode(p: Promise<unknown>, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isAtlasError(e), `expected an AtlasError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

for (const backend of BACKENDS) {
  describe(`import and export on ${backend}`, () => {
    const files = tempDir('atlas-import-');
    const data = tempDir('atlas-import-data-');
    /** The encoder weights as a server gets them: fetched from the artifact store into its cache. */
    const weightsOf = async (db: Database, row: DictionaryRow) =>
      openSae(await new ArtifactCache(db, { dataDir: data.dir }).dictionary(row));
    /** A failed import leaves no temporary file in the PGlite store. */
    const noTempFiles = () =>
      !existsSync(join(data.dir, 'artifacts')) ||
      readdirSync(join(data.dir, 'artifacts')).every((f) => !f.includes('.tmp-'));
    after(() => {
      files.cleanup();
      data.cleanup();
    });
    let closeDatabase = async () => undefined as void;
    const test = useFixture<Database>(
      `import on ${backend}`,
      async () => {
        const opened = await openTestDatabase(backend);
        if ('skip' in opened) return opened;
        closeDatabase = opened.cleanup;
        await seedCatalog(opened.database);
        return opened.database;
      },
      () => closeDatabase(),
    );

    const cases: [SaeFixtureFormat, SaeArchitecture][] = [
      ['saelens', 'standard'],
      ['saelens', 'jumprelu'],
      ['saelens', 'topk'],
      ['saelens', 'gated'],
      ['saelens-old', 'standard'],
      ['sparsify', 'topk'],
      ['gemmascope', 'jumprelu'],
    ];
    for (const [format, architecture] of cases) {
      test(`imports ${format} ${architecture}: rows equal W_dec, weights kept, visible once ready`, async (db) => {
        const fx = writeSaeFixture(join(files.dir, `${format}-${architecture}`), {
          format,
          architecture,
          dIn: FIXTURE.dIn,
          dSae: 96,
          k: 4,
          hookName: HOOK,
          seed: 11,
        });
        const id = `${format}-${architecture}`;
        const row = await importDictionary(db, {
          path: fx.path,
          modelId: FIXTURE.model,
          id,
          hook: HOOK,
          dataDir: data.dir,
        });
        assert.equal(row.state, 'ready');
        assert.equal(row.architecture, architecture);
        assert.equal(row.dSae, 96);
        const keys = Array.from({ length: 96 }, (_, index) => ({ dictionaryId: id, index }));
        const decoders = await getDecoders(db, keys);
        for (let i = 0; i < 96; i++) {
          const want = Array.from(fx.params.W_dec.subarray(i * FIXTURE.dIn, (i + 1) * FIXTURE.dIn));
          assert.deepEqual(decoders.get(`${id}:${i}`)!.map(Math.fround), want.map(Math.fround), `row ${i}`);
        }
        const kept = await weightsOf(db, row);
        assert.deepEqual(kept.loadParams().W_enc, openSae(fx.path).loadParams().W_enc);
        kept.close();
      });
    }

    test('export → import round trip is exact', async (db) => {
      const fx = writeSaeFixture(join(files.dir, 'roundtrip'), {
        format: 'saelens',
        architecture: 'jumprelu',
        dIn: FIXTURE.dIn,
        dSae: 64,
        hookName: HOOK,
        normalization: 'expected_average_only_in',
        scalingFactor: 1.7,
        seed: 5,
      });
      await importDictionary(db, { path: fx.path, modelId: FIXTURE.model, id: 'rt-a', dataDir: data.dir });
      const out = join(files.dir, 'exported');
      await exportDictionary(db, 'rt-a', out, { dataDir: data.dir });
      const back = await importDictionary(db, { path: out, modelId: FIXTURE.model, id: 'rt-b', dataDir: data.dir });
      assert.equal(back.hookPoint, HOOK);
      const a = openSae(fx.path);
      const b = openSae(out);
      assert.deepEqual(b.loadParams(), a.loadParams());
      assert.equal(b.config.architecture, 'jumprelu');
      assert.deepEqual(b.config.normalization, a.config.normalization);
      a.close();
      b.close();
      const keys = Array.from({ length: 64 }, (_, index) => index);
      const da = await getDecoders(
        db,
        keys.map((index) => ({ dictionaryId: 'rt-a', index })),
      );
      const dbb = await getDecoders(
        db,
        keys.map((index) => ({ dictionaryId: 'rt-b', index })),
      );
      for (const i of keys) assert.deepEqual(dbb.get(`rt-b:${i}`), da.get(`rt-a:${i}`));
    });

    test(
      'imports an OpenAI .pt file (atlas import 8.pt --hook …): density from its stats buffer, export → import ' +
        'round trip',
      async (db) => {
        const torchFixtures = join(import.meta.dirname, 'fixtures', 'torch');
        const release = join(files.dir, 'resid_post_mlp_v5_32k', 'autoencoders');
        mkdirSync(release, { recursive: true });
        // Its neighbours in the release folder must not be copied along.
        copyFileSync(join(torchFixtures, 'openai-relu.pt'), join(release, '7.pt'));
        const file = join(release, '8.pt');
        copyFileSync(join(torchFixtures, 'openai-topk.pt'), file);
        const want = JSON.parse(readFileSync(join(torchFixtures, 'openai-topk.expected.json'), 'utf8')) as {
          dSae: number;
          density: number[];
        };
        const row = await importDictionary(db, {
          path: file,
          modelId: FIXTURE.model,
          id: 'openai-8',
          hook: HOOK,
          dataDir: data.dir,
        });
        assert.equal(row.state, 'ready');
        assert.equal(row.architecture, 'topk');
        assert.equal(row.k, 4);
        assert.deepEqual(
          row.artifacts!.files.map((f) => f.name),
          ['8.pt'],
        );
        const keys = Array.from({ length: want.dSae }, (_, index) => ({ dictionaryId: 'openai-8', index }));
        const features = await getFeatures(db, keys);
        for (let i = 0; i < want.dSae; i++)
          assert.equal(
            Math.fround(features.get(`openai-8:${i}`)!.density!),
            Math.fround(want.density[i]),
            `density ${i}`,
          );
        const src = openSae(file);
        const params = src.loadParams();
        src.close();
        const decoders = await getDecoders(db, keys);
        for (let i = 0; i < want.dSae; i++) {
          assert.deepEqual(
            decoders.get(`openai-8:${i}`)!.map(Math.fround),
            Array.from(params.W_dec.subarray(i * FIXTURE.dIn, (i + 1) * FIXTURE.dIn)),
            `row ${i}`,
          );
        }
        const out = join(files.dir, 'openai-exported');
        await exportDictionary(db, 'openai-8', out, { dataDir: data.dir });
        const back = await importDictionary(db, {
          path: out,
          modelId: FIXTURE.model,
          id: 'openai-8-rt',
          dataDir: data.dir,
        });
        assert.equal(back.hookPoint, HOOK);
        const again = await weightsOf(db, back);
        assert.deepEqual(again.loadParams(), params);
        assert.deepEqual(again.config.normalization, { kind: 'layer_norm', scalingFactor: null });
        again.close();

        const before = await snapshot(db);
        await expectCode(
          importDictionary(db, {
            path: join(torchFixtures, 'hostile-os-system.pt'),
            modelId: FIXTURE.model,
            id: 'bad-pickle',
            hook: HOOK,
            dataDir: data.dir,
          }),
          'UNSAFE_CHECKPOINT',
          /posix\.system/,
        );
        const cut = join(files.dir, 'cut.pt');
        writeFileSync(cut, readFileSync(file).subarray(0, 15000));
        await expectCode(
          importDictionary(db, { path: cut, modelId: FIXTURE.model, id: 'bad-openai', hook: HOOK, dataDir: data.dir }),
          'BAD_FILE',
          /truncated/,
        );
        assert.equal(await snapshot(db), before);
        assert.ok(noTempFiles());
      },
    );

    test(
      'imports dictionary_learning, Goodfire and Llama Scope files with the hook they name; export → import ' +
        'round trip',
      async (db) => {
        const torchFixtures = join(import.meta.dirname, 'fixtures', 'torch');
        const ls = join(files.dir, 'llamascope-L1R');
        writeLlamaScopeFixture(
          ls,
          {
            d_model: FIXTURE.dIn,
            d_sae: 40,
            act_fn: 'jumprelu',
            jump_relu_threshold: 0.3,
            norm_activation: 'dataset-wise',
            dataset_average_activation_norm: { in: 5, out: 5 },
            hook_point_in: HOOK,
            hook_point_out: HOOK,
          },
          9,
        );
        const cases: [string, string][] = [
          [join(torchFixtures, 'dl-AutoEncoderTopK'), 'dl-topk'],
          [join(torchFixtures, 'dl-GatedAutoEncoder', 'ae.pt'), 'dl-gated'],
          [join(torchFixtures, 'goodfire', 'Tiny-SAE-l1.pth'), 'goodfire'],
          [ls, 'llamascope'],
        ];
        for (const [path, id] of cases) {
          const row = await importDictionary(db, { path, modelId: FIXTURE.model, id, dataDir: data.dir });
          assert.equal(row.state, 'ready', id);
          assert.equal(row.hookPoint, HOOK, id);
          const original = openSae(path);
          const kept = await weightsOf(db, row);
          assert.deepEqual(kept.loadParams(), original.loadParams(), id);
          // The copy the server keeps reads as the user's file did.
          assert.deepEqual(kept.config, original.config, id);
          kept.close();
          const out = join(files.dir, `${id}-exported`);
          await exportDictionary(db, id, out, { dataDir: data.dir });
          const back = await importDictionary(db, {
            path: out,
            modelId: FIXTURE.model,
            id: `${id}-rt`,
            dataDir: data.dir,
          });
          const again = await weightsOf(db, back);
          assert.deepEqual(again.loadParams(), original.loadParams(), `${id} round trip`);
          assert.deepEqual(again.config.normalization, original.config.normalization, `${id} round trip`);
          again.close();
          original.close();
        }
        const before = await snapshot(db);
        const bad = join(files.dir, 'dl-bad');
        mkdirSync(bad);
        copyFileSync(join(torchFixtures, 'dl-AutoEncoderTopK', 'ae.pt'), join(bad, 'ae.pt'));
        writeFileSync(
          join(bad, 'config.json'),
          JSON.stringify({ trainer: { dict_class: 'AutoEncoderTopK', dict_size: 99, k: 6 } }),
        );
        await expectCode(
          importDictionary(db, { path: bad, modelId: FIXTURE.model, id: 'bad-dl', hook: HOOK, dataDir: data.dir }),
          'BAD_FILE',
          /dict_size 99/,
        );
        assert.equal(await snapshot(db), before);
        assert.ok(noTempFiles());
      },
    );

    test('a second import of the same id is refused unless --replace', async (db) => {
      const fx = writeSaeFixture(join(files.dir, 'dup'), {
        format: 'saelens',
        dIn: FIXTURE.dIn,
        dSae: 32,
        hookName: HOOK,
        seed: 3,
      });
      await importDictionary(db, { path: fx.path, modelId: FIXTURE.model, id: 'dup', dataDir: data.dir });
      const before = await snapshot(db);
      await expectCode(
        importDictionary(db, { path: fx.path, modelId: FIXTURE.model, id: 'dup', dataDir: data.dir }),
        'CONFLICT',
        /--replace/,
      );
      assert.equal(await snapshot(db), before);
      await db.query(`INSERT INTO example_contexts (dictionary_id, context, tokens, token_ids)
        VALUES ('dup', 0, '["a"]', '{1}')`);
      await db.query(`INSERT INTO feature_examples (dictionary_id, feature_idx, kind, contexts, max_values,
        max_positions, counts, positions, "values")
        VALUES ('dup', 0, 'top', '{0}', '{1}', '{0}', '{1}', '{0}', '{1}')`);
      await db.query(
        `INSERT INTO feature_logits (dictionary_id, feature_idx, positive_token_ids, positive_tokens, ` +
          `positive_weights, negative_token_ids, negative_tokens, negative_weights) ` +
          `VALUES ('dup', 0, '{1}', '["a"]', '{1}', '{}', '[]', '{}')`,
      );
      const fx2 = writeSaeFixture(join(files.dir, 'dup2'), {
        format: 'saelens',
        dIn: FIXTURE.dIn,
        dSae: 48,
        hookName: HOOK,
        seed: 4,
      });
      const replaced = await importDictionary(db, {
        path: fx2.path,
        modelId: FIXTURE.model,
        id: 'dup',
        replace: true,
        dataDir: data.dir,
      });
      assert.equal(replaced.dSae, 48);
      const [{ n }] = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM features WHERE dictionary_id = 'dup'",
      );
      assert.equal(n, 48);
      // The old dictionary's dashboard rows go with it.
      const [{ e }] = await db.query<{ e: number }>(
        "SELECT (SELECT count(*) FROM feature_examples WHERE dictionary_id = 'dup') + " +
          "(SELECT count(*) FROM example_contexts WHERE dictionary_id = 'dup') + " +
          "(SELECT count(*) FROM feature_logits WHERE dictionary_id = 'dup') AS e",
      );
      assert.equal(Number(e), 0);
    });

    test('refusals name the problem and leave the database as it was', async (db) => {
      const before = await snapshot(db);
      const wide = writeSaeFixture(join(files.dir, 'wide'), { format: 'saelens', dIn: 40, dSae: 32, hookName: HOOK });
      await expectCode(
        importDictionary(db, { path: wide.path, modelId: FIXTURE.model, id: 'wide', dataDir: data.dir }),
        'DIMENSION_MISMATCH',
        /40.*32/,
      );
      const ok = writeSaeFixture(join(files.dir, 'nohook'), {
        format: 'saelens',
        dIn: FIXTURE.dIn,
        dSae: 32,
        hookName: 'blocks.9.hook_resid_post',
      });
      await expectCode(
        importDictionary(db, { path: ok.path, modelId: FIXTURE.model, id: 'nohook', dataDir: data.dir }),
        'BAD_USER_INPUT',
        /blocks\.9\.hook_resid_post/,
      );
      await expectCode(
        importDictionary(db, { path: ok.path, modelId: 'no-such-model', id: 'x', dataDir: data.dir }),
        'NOT_FOUND',
      );
      const corruptions: [SaeCorruption, string, RegExp][] = [
        [{ kind: 'missing-tensor', tensor: 'W_dec' }, 'BAD_FILE', /W_dec/],
        [{ kind: 'wrong-shape', tensor: 'b_enc' }, 'BAD_FILE', /b_enc.*shape|shape.*b_enc/],
        [{ kind: 'non-finite', tensor: 'W_enc', index: 7 }, 'BAD_FILE', /W_enc/],
        [{ kind: 'non-finite', tensor: 'W_dec', index: 70, value: Infinity }, 'BAD_FILE', /W_dec/],
        [{ kind: 'truncate' }, 'BAD_FILE', /truncated/i],
        [{ kind: 'unknown-architecture', name: 'crosscoder' }, 'UNSUPPORTED', /crosscoder/],
      ];
      for (const [corrupt, code, pattern] of corruptions) {
        const bad = writeSaeFixture(join(files.dir, `bad-${corrupt.kind}`), {
          format: 'saelens',
          dIn: FIXTURE.dIn,
          dSae: 32,
          hookName: HOOK,
          corrupt,
        });
        await expectCode(
          importDictionary(db, {
            path: bad.path,
            modelId: FIXTURE.model,
            id: `bad-${corrupt.kind}`,
            dataDir: data.dir,
          }),
          code,
          pattern,
        );
      }
      assert.equal(await snapshot(db), before);
      assert.equal(
        (await listDictionaries(db)).some((d) => d.id.startsWith('bad-')),
        false,
      );
      assert.ok(noTempFiles());
    });
  });
}
