/**
 * searchFeatures and nearestFeatures' model scope over HTTP on both backends. The dictionary is built
 * so the answers are known: feature F fires on one token of the query and nowhere else, feature G
 * fires harder on every token but is marked dense, feature Z fires hardest of all but only on BOS,
 * feature K never fires but its decoder is the query's mean non-BOS activation, and feature L has a
 * label sharing a word with the query.
 */
import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { BACKENDS, startTestAtlas, useTestAtlas } from './helpers/atlas-server.js';
import { writeTinyGpt2 } from './helpers/hf-fixtures.js';
import { writeSaeFixture, tempDir } from './helpers/sae-fixtures.js';
import { seedCatalog, FIXTURE, cosine, type SeededCatalog } from './helpers/catalog-fixture.js';
import { gpt2Forward } from './reference/gpt2.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { insertExplanations } from '../src/db/explanations.js';
import { loadTokenizer } from '../src/engine/tokenizers/load.js';
import { writeSafetensors } from '../src/engine/tensors/safetensors.js';

const HOOK = 'blocks.1.hook_resid_post';
const TEXT = 'the cat sat on the mat';
const D = 32;
const D_SAE = 64;
const F = 5,
  G = 9,
  K = 17,
  L = 23,
  E = 31,
  Z = 41;
const F_ACTIVATION = 100;

/** The component of row p orthogonal to every other row (Gram–Schmidt), so it is zero on them. */
function ownDirection(x: Float32Array, n: number, p: number): Float64Array {
  const basis: Float64Array[] = [];
  for (let q = 0; q < n; q++) {
    if (q === p) continue;
    const v = Float64Array.from(x.subarray(q * D, (q + 1) * D));
    for (const b of basis) {
      const dot = v.reduce((s, vi, i) => s + vi * b[i], 0);
      for (let i = 0; i < D; i++) v[i] -= dot * b[i];
    }
    const norm = Math.hypot(...v);
    if (norm > 1e-6) basis.push(v.map((vi) => vi / norm));
  }
  const w = Float64Array.from(x.subarray(p * D, (p + 1) * D));
  for (const b of basis) {
    const dot = w.reduce((s, wi, i) => s + wi * b[i], 0);
    for (let i = 0; i < D; i++) w[i] -= dot * b[i];
  }
  return w;
}

/** Writes dictionary "A": random standard SAE with F, G, Z and K set as the header says (BOS at 0). */
function writeBuiltSae(dir: string, x: Float32Array, n: number, target: number): void {
  const fx = writeSaeFixture(dir, {
    format: 'saelens',
    architecture: 'standard',
    dIn: D,
    dSae: D_SAE,
    hookName: HOOK,
    seed: 3,
    applyBDecToInput: false,
  });
  const { W_enc, W_dec, b_dec } = fx.params;
  const b_enc = fx.params.b_enc!;
  b_dec.fill(0);
  const w = ownDirection(x, n, target);
  const onTarget = w.reduce((s, wi, i) => s + wi * x[target * D + i], 0);
  const bos = ownDirection(x, n, 0);
  const onBos = bos.reduce((s, wi, i) => s + wi * x[i], 0);
  for (let i = 0; i < D; i++) {
    W_enc[i * D_SAE + F] = (F_ACTIVATION / onTarget) * w[i];
    W_enc[i * D_SAE + G] = (F_ACTIVATION / onTarget) * w[i];
    W_enc[i * D_SAE + Z] = ((10 * F_ACTIVATION) / onBos) * bos[i];
    W_enc[i * D_SAE + K] = 0;
    let mean = 0;
    for (let q = 1; q < n; q++) mean += x[q * D + i] / (n - 1);
    W_dec[K * D + i] = mean;
  }
  b_enc[F] = -0.01;
  b_enc[G] = 5;
  b_enc[Z] = -0.01;
  b_enc[K] = -1000;
  writeSafetensors(
    fx.weightsPath,
    Object.fromEntries(
      Object.entries(fx.params).map(([name, data]) => [
        name,
        {
          dtype: 'F32' as const,
          shape: name === 'W_enc' ? [D, D_SAE] : name === 'W_dec' ? [D_SAE, D] : [data.length],
          data,
        },
      ]),
    ),
  );
}

const SEARCH = `query($q: String!, $model: ID, $dictionary: ID, $first: Int) {
  searchFeatures(query: $q, model: $model, dictionary: $dictionary, first: $first) {
    feature { id index dictionary { id } } score reasons { signal value detail } } }`;

for (const backend of BACKENDS) {
  describe(`feature search on ${backend}`, () => {
    const files = tempDir('atlas-search-');
    let targetToken = '';
    let catalog: SeededCatalog;

    const test = useTestAtlas(
      `feature search on ${backend}`,
      async () => {
        mkdirSync(join(files.dir, 'gpt2'));
        const model = writeTinyGpt2(join(files.dir, 'gpt2'));
        const tokenizer = loadTokenizer(model.dir);
        const ids = tokenizer.encode(TEXT, { bos: true });
        assert.equal(ids[0], tokenizer.bosId);
        const target = 2;
        targetToken = tokenizer.tokenText(ids[target]);
        writeBuiltSae(join(files.dir, 'a'), gpt2Forward(model.weights, ids).hooks.get(HOOK)!, ids.length, target);
        const b = writeSaeFixture(join(files.dir, 'b'), {
          format: 'saelens',
          architecture: 'standard',
          dIn: D,
          dSae: D_SAE,
          hookName: HOOK,
          seed: 4,
        });
        return startTestAtlas(backend, async (db, dataDir) => {
          // The fixture dictionaries say prepend_bos: true.
          await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
          await importDictionary(db, { path: join(files.dir, 'a'), modelId: 'gpt2-tiny', id: 'sae-a', dataDir });
          await importDictionary(db, { path: b.path, modelId: 'gpt2-tiny', id: 'sae-b', dataDir });
          // A second model whose files do not exist and whose dictionaries have no weights.
          catalog = await seedCatalog(db);
          // The twin dictionary gets a copy of tiny-dict's feature 5, so the model scope has a sure first hit.
          const dIn = FIXTURE.dIn;
          catalog.decoders
            .get(FIXTURE.twin)!
            .set(catalog.decoders.get(FIXTURE.dict)!.subarray(5 * dIn, 6 * dIn), 7 * dIn);
          await db.query(
            `UPDATE feature_decoders SET decoder = (SELECT decoder FROM feature_decoders WHERE dictionary_id = $1
          AND idx = 5) WHERE dictionary_id = $2 AND idx = 7`,
            [FIXTURE.dict, FIXTURE.twin],
          );
          await db.query(`UPDATE features SET density = 0.9 WHERE dictionary_id = 'sae-a' AND idx = ${G}`);
          await db.query(`UPDATE features SET label = 'mats and rugs' WHERE dictionary_id = 'sae-a' AND idx = ${L}`);
          await insertExplanations(db, [
            { dictionaryId: 'sae-b', index: E, text: 'Sitting cats', source: 'test', author: null },
          ]);
        });
      },
      () => files.cleanup(),
    );

    test(
      'the feature built to fire on one token ranks first, with an ACTIVATION reason naming the ' + 'token',
      async (a) => {
        const r = await a.gql(SEARCH, { q: TEXT, dictionary: 'sae-a', first: 10 });
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        const [top] = r.data.searchFeatures;
        assert.equal(top.feature.id, `sae-a:${F}`);
        const act = top.reasons.find((x: any) => x.signal === 'ACTIVATION');
        assert.ok(Math.abs(act.value - (F_ACTIVATION - 0.01)) < 0.05, `activation ${act.value}`);
        assert.ok(act.detail.includes(JSON.stringify(targetToken)), act.detail);
        assert.match(act.detail, /density not built yet/);
        for (let i = 1; i < r.data.searchFeatures.length; i++)
          assert.ok(r.data.searchFeatures[i - 1].score >= r.data.searchFeatures[i].score);
        const all = await a.gql(SEARCH, { q: TEXT, dictionary: 'sae-a', first: 100 });
        const z = all.data.searchFeatures.find((h: any) => h.feature.index === Z);
        assert.ok(
          !z?.reasons.some((x: any) => x.signal === 'ACTIVATION'),
          'the BOS-only feature does not count as firing',
        );
      },
    );

    test('a feature that fires harder but on nearly every token is down-weighted by its density', async (a) => {
      const r = await a.gql(SEARCH, { q: TEXT, dictionary: 'sae-a', first: 50 });
      const hits = r.data.searchFeatures;
      const g = hits.findIndex((h: any) => h.feature.index === G);
      assert.ok(g > 0, 'G is found, below F');
      const act = hits[g].reasons.find((x: any) => x.signal === 'ACTIVATION');
      assert.ok(act.value > F_ACTIVATION, 'G fires harder than F');
      assert.match(act.detail, /density 0\.9 \(weight 0\.01525\)/);
      assert.ok(hits[g].score < hits[0].score / 2);
    });

    test('decoder cosine and text matches on labels and explanations are reasons too', async (a) => {
      const r = await a.gql(SEARCH, { q: TEXT, model: 'gpt2-tiny', first: 60 });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      const hit = (id: string) => r.data.searchFeatures.find((h: any) => h.feature.id === id);
      const k = hit(`sae-a:${K}`);
      assert.deepEqual(
        k.reasons.map((x: any) => x.signal),
        ['DECODER_COSINE'],
      );
      assert.ok(k.reasons[0].value > 0.9999);
      assert.ok(Math.abs(k.score - 0.3 * k.reasons[0].value) < 1e-9);
      const l = hit(`sae-a:${L}`).reasons.find((x: any) => x.signal === 'TEXT');
      assert.ok(l.value > 0 && l.value < 1);
      assert.equal(l.detail, 'label matches: "mats and rugs"');
      const e = hit(`sae-b:${E}`).reasons.find((x: any) => x.signal === 'TEXT');
      assert.equal(e.detail, 'explanation matches: "Sitting cats"');
      // Before a build, activations are compared within a dictionary only: F leads its own.
      assert.equal(
        r.data.searchFeatures.find((h: any) => h.feature.dictionary.id === 'sae-a').feature.id,
        `sae-a:${F}`,
      );
    });

    test(
      'scope: one dictionary, one model, or every dictionary; dictionaries without weights take part by text ' + 'only',
      async (a) => {
        const onlyB = await a.gql(SEARCH, { q: TEXT, dictionary: 'sae-b', first: 20 });
        assert.ok(onlyB.data.searchFeatures.length > 0);
        assert.ok(onlyB.data.searchFeatures.every((h: any) => h.feature.dictionary.id === 'sae-b'));
        const all = await a.gql(SEARCH, { q: TEXT, first: 100 });
        assert.equal(all.errors, undefined, JSON.stringify(all.errors));
        const dicts = new Set(all.data.searchFeatures.map((h: any) => h.feature.dictionary.id));
        assert.deepEqual([...dicts].sort(), ['sae-a', 'sae-b']);
        const labelled = await a.gql(SEARCH, { q: 'feature 12', model: FIXTURE.model, first: 5 });
        assert.equal(labelled.errors, undefined, JSON.stringify(labelled.errors));
        assert.equal(labelled.data.searchFeatures[0].feature.id, `${FIXTURE.dict}:12`);
        assert.deepEqual(
          labelled.data.searchFeatures[0].reasons.map((x: any) => x.signal),
          ['TEXT'],
        );
      },
    );

    test('after a build, activation strength is relative to the corpus maximum', async (a) => {
      await a.database.query(`UPDATE features SET max_activation = 400 WHERE dictionary_id = 'sae-a' AND idx = ${F}`);
      try {
        const r = await a.gql(SEARCH, { q: TEXT, dictionary: 'sae-a', first: 50 });
        const f = r.data.searchFeatures.find((h: any) => h.feature.index === F);
        const act = f.reasons.find((x: any) => x.signal === 'ACTIVATION');
        assert.match(act.detail, /, 25% of its corpus maximum 400;/);
        const cos = f.reasons.find((x: any) => x.signal === 'DECODER_COSINE')?.value ?? 0;
        assert.ok(Math.abs(f.score - (act.value / 400 + 0.3 * cos)) < 1e-6);
      } finally {
        await a.database.query(
          `UPDATE features SET max_activation = NULL WHERE dictionary_id = 'sae-a' AND idx = ${F}`,
        );
      }
    });

    test('bad search arguments are refused with codes', async (a) => {
      const cases: [Record<string, unknown>, string][] = [
        [{ q: '   ' }, 'BAD_USER_INPUT'],
        [{ q: TEXT, first: 0 }, 'BAD_USER_INPUT'],
        [{ q: TEXT, first: 101 }, 'BAD_USER_INPUT'],
        [{ q: TEXT, model: 'nope' }, 'NOT_FOUND'],
        [{ q: TEXT, dictionary: 'nope' }, 'NOT_FOUND'],
        [{ q: TEXT, dictionary: 'sae-a', model: FIXTURE.model }, 'BAD_USER_INPUT'],
        [{ q: 'x'.repeat(30_000) }, 'INPUT_TOO_LONG'],
      ];
      for (const [vars, code] of cases) {
        const r = await a.gql(SEARCH, vars);
        assert.equal(
          r.errors?.[0]?.extensions?.code,
          code,
          `${JSON.stringify(vars).slice(0, 80)}: ${JSON.stringify(r.errors)}`,
        );
      }
      const quoted = await a.gql(SEARCH, { q: `it's "quoted" & | ! :* \\ %`, first: 3 });
      assert.equal(quoted.errors, undefined, JSON.stringify(quoted.errors));
    });

    test('nearestFeatures scope MODEL searches every dictionary of the model with the same width', async (a) => {
      const r = await a.gql(
        `{ nearestFeatures(dictionary: "${FIXTURE.dict}", index: 5, k: 10, scope: MODEL, exact: true) { feature { ` +
          `index dictionary { id } } cosine } }`,
      );
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      const source = catalog.decoders.get(FIXTURE.dict)!.subarray(5 * FIXTURE.dIn, 6 * FIXTURE.dIn);
      const want: { id: string; cosine: number }[] = [];
      for (const id of [FIXTURE.dict, FIXTURE.twin]) {
        const rows = catalog.decoders.get(id)!;
        for (let i = 0; i < FIXTURE.dSae; i++) {
          if (id === FIXTURE.dict && i === 5) continue;
          want.push({
            id: `${id}:${i}`,
            cosine: cosine(source, rows.subarray(i * FIXTURE.dIn, (i + 1) * FIXTURE.dIn)),
          });
        }
      }
      want.sort((p, q) => q.cosine - p.cosine);
      assert.deepEqual(
        r.data.nearestFeatures.map((h: any) => `${h.feature.dictionary.id}:${h.feature.index}`),
        want.slice(0, 10).map((w) => w.id),
      );
      assert.equal(r.data.nearestFeatures[0].feature.dictionary.id, FIXTURE.twin);
      assert.ok(r.data.nearestFeatures[0].cosine > 0.9999);
      const plain = await a.gql(
        `{ nearestFeatures(dictionary: "${FIXTURE.dict}", index: 5, k: 10, exact: true) { feature { dictionary { id ` +
          `} } } }`,
      );
      assert.ok(plain.data.nearestFeatures.every((h: any) => h.feature.dictionary.id === FIXTURE.dict));
      const both = await a.gql(
        `{ nearestFeatures(dictionary: "${FIXTURE.dict}", index: 5, in: ["${FIXTURE.twin}"], scope: MODEL) { cosine ` +
          `} }`,
      );
      assert.equal(both.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    });
  });
}
