/**
 * hookActivations, encodeVectors, encode and encodeMany over HTTP on both backends, against plain
 * reference implementations: a tiny random GPT-2 in Hugging Face format and random dictionaries of
 * every architecture imported through `atlas import`'s code path.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { BACKENDS, startTestAtlas, useTestAtlas, type TestAtlas } from './helpers/atlas-server.js';
import { writeTinyGpt2, type HfFixture } from './helpers/hf-fixtures.js';
import { writeSaeFixture, tempDir, randomVectors, type SaeFixture } from './helpers/sae-fixtures.js';
import { gpt2Forward } from './reference/gpt2.js';
import { refForwardOne, refTopK } from './reference/sae.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { buildDashboards } from '../src/app/build-dashboards.js';
import { loadTokenizer } from '../src/engine/tokenizers/load.js';
import type { SaeArchitecture } from '../src/engine/sae/types.js';

const HOOK = 'blocks.1.hook_resid_post';
const ARCHS: SaeArchitecture[] = ['standard', 'jumprelu', 'topk', 'gated'];
const TEXT = 'the cat sat on the mat';

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0,
    scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return diff / scale;
}

/** Reference active features of one vector: sorted top-k of the reference codes, zeros dropped. */
function refActive(fx: SaeFixture, x: number[], topK: number): { index: number; activation: number }[] {
  const { codes } = refForwardOne(fx.config, fx.params, x);
  const { indices, values } = refTopK(codes, topK);
  return indices.map((index, j) => ({ index, activation: values[j] })).filter((f) => f.activation > 0);
}

function assertSameFeatures(
  got: { index: number; activation: number }[],
  want: { index: number; activation: number }[],
  what: string,
  tol = 1e-5,
): void {
  assert.deepEqual(
    got.map((f) => f.index),
    want.map((f) => f.index),
    what,
  );
  got.forEach((f, j) =>
    assert.ok(
      Math.abs(f.activation - want[j].activation) <= tol * Math.max(1, Math.abs(want[j].activation)),
      `${what}: ${f.activation} vs ${want[j].activation}`,
    ),
  );
}

for (const backend of BACKENDS) {
  describe(`encoding API on ${backend}`, () => {
    const files = tempDir('atlas-encode-');
    let model: HfFixture;
    const saes = new Map<string, SaeFixture>();
    /** Dictionaries of the BOS test, on model gpt2-nobos. */
    const bosFixtures = new Map<string, SaeFixture>();

    const test = useTestAtlas(
      `encoding API on ${backend}`,
      async () => {
        mkdirSync(join(files.dir, 'gpt2'));
        model = writeTinyGpt2(join(files.dir, 'gpt2'));
        return startTestAtlas(backend, async (db, dataDir) => {
          // The fixture dictionaries say prepend_bos: true, as TransformerLens-trained GPT-2 SAEs do.
          await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
          for (const architecture of ARCHS) {
            const fx = writeSaeFixture(join(files.dir, architecture), {
              format: 'saelens',
              architecture,
              dIn: 32,
              dSae: 128,
              k: 6,
              hookName: HOOK,
              seed: ARCHS.indexOf(architecture) + 1,
              normalization: architecture === 'gated' ? 'constant_norm_rescale' : 'none',
            });
            saes.set(architecture, fx);
            await importDictionary(db, { path: fx.path, modelId: 'gpt2-tiny', id: `sae-${architecture}`, dataDir });
          }
        });
      },
      () => files.cleanup(),
    );

    test('hookActivations returns the tokens and activations of the reference forward pass', async (a) => {
      const r = await a.gql(
        `{ hookActivations(model: "gpt2-tiny", text: "${TEXT}", hooks: ["blocks.0.hook_resid_pre", "${HOOK}"]) { ` +
          `tokens { tokenId text } hooks { hook values } } }`,
      );
      assert.equal(r.errors, undefined);
      const tokenizer = loadTokenizer(model.dir);
      const ids = tokenizer.encode(TEXT, { bos: true });
      assert.equal(ids[0], tokenizer.bosId);
      assert.deepEqual(
        r.data.hookActivations.tokens.map((t: any) => t.tokenId),
        ids,
      );
      assert.equal(
        r.data.hookActivations.tokens
          .slice(1)
          .map((t: any) => t.text)
          .join(''),
        TEXT,
      );
      const ref = gpt2Forward(model.weights, ids);
      for (const h of r.data.hookActivations.hooks) {
        assert.ok(maxRelErr(h.values.flat(), ref.hooks.get(h.hook)!) < 1e-4, h.hook);
        assert.equal(h.values.length, ids.length);
      }
    });

    test('encodeVectors equals the published formula for every architecture', async (a) => {
      const n = 5;
      const x = randomVectors(n, 32, 3, 2);
      const vectors = Array.from({ length: n }, (_, i) => Array.from(x.subarray(i * 32, (i + 1) * 32)));
      for (const arch of ARCHS) {
        const r = await a.gql(
          `query($v: [[Float!]!]!) { encodeVectors(dictionary: "sae-${arch}", vectors: $v, topK: 5) { index ` +
            `activation feature { id } } }`,
          { v: vectors },
        );
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        vectors.forEach((v, i) =>
          assertSameFeatures(r.data.encodeVectors[i], refActive(saes.get(arch)!, v, 5), `${arch} vector ${i}`),
        );
        assert.equal(r.data.encodeVectors[0][0]?.feature.id, `sae-${arch}:${r.data.encodeVectors[0][0]?.index}`);
      }
    });

    test('encode: per-token features, top features and reconstruction equal the reference chain', async (a) => {
      for (const arch of ARCHS) {
        const fx = saes.get(arch)!;
        const r = await a.gql(`{ encode(dictionary: "sae-${arch}", text: "${TEXT}", topK: 4) {
          dictionary { id } tokens { position tokenId text isBos features { index activation } }
          topFeatures { index activation } reconstruction { mse normalizedMse explainedVariance cosine l0 } } }`);
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        const enc = r.data.encode;
        const acts = await a.gql(
          `{ hookActivations(model: "gpt2-tiny", text: "${TEXT}", hooks: ["${HOOK}"]) { hooks { values } } }`,
        );
        const rows: number[][] = acts.data.hookActivations.hooks[0].values;
        assert.equal(enc.tokens.length, rows.length);
        let sq = 0,
          l0 = 0;
        const best = new Map<number, number>();
        assert.equal(enc.tokens[0].isBos, true);
        assertSameFeatures(enc.tokens[0].features, refActive(fx, rows[0], 4), `${arch} BOS`);
        // BOS is encoded like any token but left out of top features and reconstruction quality.
        const kept = rows.slice(1);
        kept.forEach((x, i) => {
          const p = i + 1;
          assert.equal(enc.tokens[p].isBos, false);
          assertSameFeatures(enc.tokens[p].features, refActive(fx, x, 4), `${arch} token ${p}`);
          const { codes, xHat } = refForwardOne(fx.config, fx.params, x);
          x.forEach((v, i) => {
            sq += (v - xHat[i]) ** 2;
          });
          l0 += codes.filter((c) => c > 0).length;
          for (const f of refActive(fx, x, 4)) best.set(f.index, Math.max(best.get(f.index) ?? 0, f.activation));
        });
        const top = [...best]
          .map(([index, activation]) => ({ index, activation }))
          .sort((p, q) => q.activation - p.activation || p.index - q.index)
          .slice(0, 4);
        assertSameFeatures(enc.topFeatures, top, `${arch} top features`);
        const mse = sq / (kept.length * 32);
        assert.ok(Math.abs(enc.reconstruction.mse - mse) <= 1e-5 * Math.max(1, mse), `${arch} mse`);
        assert.ok(Math.abs(enc.reconstruction.l0 - l0 / kept.length) < 1e-9, `${arch} l0`);
        assert.ok(Math.abs(enc.reconstruction.explainedVariance - (1 - enc.reconstruction.normalizedMse)) < 1e-9);
      }
    });

    test('encode: the packed featureIndices / featureActivations equal the reference chain', async (a) => {
      const acts = await a.gql(
        `{ hookActivations(model: "gpt2-tiny", text: "${TEXT}", hooks: ["${HOOK}"]) { hooks { values } } }`,
      );
      const rows: number[][] = acts.data.hookActivations.hooks[0].values;
      for (const arch of ARCHS) {
        const r = await a.gql(`{ encode(dictionary: "sae-${arch}", text: "${TEXT}", topK: 4) {
          tokens { featureIndices featureActivations } } }`);
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        assert.equal(r.data.encode.tokens.length, rows.length);
        r.data.encode.tokens.forEach((t: { featureIndices: number[]; featureActivations: number[] }, p: number) => {
          assert.equal(t.featureIndices.length, t.featureActivations.length);
          assertSameFeatures(
            t.featureIndices.map((index, j) => ({ index, activation: t.featureActivations[j] })),
            refActive(saes.get(arch)!, rows[p], 4),
            `${arch} token ${p}`,
          );
        });
      }
    });

    test('encode: a reconstruction (and top features) asked for inside fragments is computed', async (a) => {
      const fx = saes.get('standard')!;
      const acts = await a.gql(
        `{ hookActivations(model: "gpt2-tiny", text: "${TEXT}", hooks: ["${HOOK}"]) { hooks { values } } }`,
      );
      const kept: number[][] = acts.data.hookActivations.hooks[0].values.slice(1);
      let sq = 0;
      for (const x of kept) refForwardOne(fx.config, fx.params, x).xHat.forEach((v, i) => (sq += (x[i] - v) ** 2));
      const mse = sq / (kept.length * 32);
      for (const query of [
        `{ encode(dictionary: "sae-standard", text: "${TEXT}") { ...E } } ` +
          'fragment E on Encoding { reconstruction { mse } topFeatures { index } }',
        `{ encodeMany(dictionaries: ["sae-standard"], text: "${TEXT}") { ` +
          '... on Encoding { reconstruction { mse } } } }',
      ]) {
        const r = await a.gql(query);
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        const got = (r.data.encode ?? r.data.encodeMany[0]).reconstruction.mse;
        assert.ok(Math.abs(got - mse) <= 1e-5 * Math.max(1, mse), `${query}: mse ${got} vs ${mse}`);
      }
    });

    test('encodeMany shares one model run and equals encode per dictionary', async (a) => {
      const many = await a.gql(
        `{ encodeMany(dictionaries: ["sae-topk", "sae-standard"], text: "${TEXT}") { dictionary { id } topFeatures ` +
          `{ index activation } } }`,
      );
      assert.equal(many.errors, undefined);
      for (const e of many.data.encodeMany) {
        const one = await a.gql(
          `{ encode(dictionary: "${e.dictionary.id}", text: "${TEXT}") { topFeatures { index activation } } }`,
        );
        assert.deepEqual(e.topFeatures, one.data.encode.topFeatures);
      }
    });

    test('bad input is refused with codes: width, topK, too long, unknown hook, empty text', async (a) => {
      const long = 'word '.repeat(100);
      const cases: [string, string][] = [
        ['{ encodeVectors(dictionary: "sae-topk", vectors: [[1, 2, 3]]) { index } }', 'DIMENSION_MISMATCH'],
        ['{ encodeVectors(dictionary: "sae-topk", vectors: [], topK: 0) { index } }', 'BAD_USER_INPUT'],
        [`{ encode(dictionary: "sae-topk", text: "${long}") { topFeatures { index } } }`, 'INPUT_TOO_LONG'],
        [
          '{ hookActivations(model: "gpt2-tiny", text: "hi", hooks: ["blocks.7.hook_resid_post"]) ' +
            '{ tokens { tokenId } } }',
          'BAD_USER_INPUT',
        ],
        ['{ encode(dictionary: "sae-topk", text: "") { topFeatures { index } } }', 'BAD_USER_INPUT'],
        ['{ encode(dictionary: "nope", text: "hi") { topFeatures { index } } }', 'NOT_FOUND'],
      ];
      for (const [q, code] of cases) {
        const r = await a.gql(q);
        assert.equal(r.errors?.[0]?.extensions?.code, code, `${q}: ${JSON.stringify(r.errors)}`);
      }
      const truncated = await a.gql(
        `{ encode(dictionary: "sae-topk", text: "${long}", truncate: true) { tokens { position } } }`,
      );
      assert.equal(truncated.errors, undefined);
      assert.equal(truncated.data.encode.tokens.length, 32);
    });

    test(
      'BOS follows each dictionary: a model registered without BOS serves dictionaries trained with and without ' +
        'it',
      async (a) => {
        await registerModel(a.database, { id: 'gpt2-nobos', path: model.dir, name: 'tiny gpt2 without BOS' });
        const policies = { 'bos-yes': true, 'bos-no': false, 'bos-unsaid': null } as const;
        const fxs = bosFixtures;
        for (const [id, prependBos] of Object.entries(policies)) {
          const fx = writeSaeFixture(join(files.dir, id), {
            format: 'saelens',
            architecture: 'topk',
            dIn: 32,
            dSae: 128,
            k: 6,
            hookName: HOOK,
            seed: 11,
            prependBos,
          });
          fxs.set(id, fx);
          await importDictionary(a.database, { path: fx.path, modelId: 'gpt2-nobos', id, dataDir: files.dir });
        }
        const listed = await a.gql('{ model(id: "gpt2-nobos") { prependBos dictionaries { id prependBos } } }');
        assert.equal(listed.errors, undefined, JSON.stringify(listed.errors));
        assert.equal(listed.data.model.prependBos, false);
        // A file that does not say takes the model's default.
        assert.deepEqual(Object.fromEntries(listed.data.model.dictionaries.map((d: any) => [d.id, d.prependBos])), {
          'bos-no': false,
          'bos-unsaid': false,
          'bos-yes': true,
        });

        const tokenizer = loadTokenizer(model.dir);
        const q = (ids: string) => `{ encodeMany(dictionaries: ${ids}, text: "${TEXT}", topK: 4) {
        dictionary { id } tokens { tokenId isBos features { index activation } } reconstruction { mse } } }`;
        const many = await a.gql(q('["bos-yes", "bos-no", "bos-unsaid"]'));
        assert.equal(many.errors, undefined, JSON.stringify(many.errors));
        assert.deepEqual(
          many.data.encodeMany.map((e: any) => e.dictionary.id),
          ['bos-yes', 'bos-no', 'bos-unsaid'],
        );
        for (const e of many.data.encodeMany) {
          const bos = e.dictionary.id === 'bos-yes';
          const ids = tokenizer.encode(TEXT, { bos });
          assert.equal(ids[0] === tokenizer.bosId, bos, `${e.dictionary.id}: BOS first exactly when trained so`);
          assert.deepEqual(
            e.tokens.map((t: any) => t.tokenId),
            ids,
            e.dictionary.id,
          );
          assert.deepEqual(
            e.tokens.map((t: any) => t.isBos),
            ids.map((_, p) => bos && p === 0),
            e.dictionary.id,
          );
          // The float64 reference run of the model with (or without) BOS, then the SAE formula.
          const ref = gpt2Forward(model.weights, ids).hooks.get(HOOK)!;
          let sq = 0;
          ids.forEach((_, p) => {
            const x = Array.from(ref.slice(p * 32, (p + 1) * 32));
            assertSameFeatures(
              e.tokens[p].features,
              refActive(fxs.get(e.dictionary.id)!, x, 4),
              `${e.dictionary.id} token ${p}`,
              1e-4,
            );
            if (bos && p === 0) return;
            const { xHat } = refForwardOne(fxs.get(e.dictionary.id)!.config, fxs.get(e.dictionary.id)!.params, x);
            x.forEach((v, i) => {
              sq += (v - xHat[i]) ** 2;
            });
          });
          const mse = sq / ((ids.length - (bos ? 1 : 0)) * 32);
          assert.ok(
            Math.abs(e.reconstruction.mse - mse) <= 1e-4 * Math.max(1, mse),
            `${e.dictionary.id} mse ${e.reconstruction.mse} vs ${mse}`,
          );
          const one = await a.gql(q(`["${e.dictionary.id}"]`));
          assert.deepEqual(one.data.encodeMany[0], e, `${e.dictionary.id}: encodeMany equals encode alone`);
        }
        // The same weights with and without BOS see different activations at every position.
        const [yes, no] = many.data.encodeMany;
        assert.notDeepEqual(yes.tokens[1].features, no.tokens[0].features);
      },
    );

    test(
      "atlas build takes one corpus pass per BOS policy; each dictionary's explained variance equals the " +
        'reference run its way',
      async (a) => {
        const docs = ['the cat sat on the mat', 'a dog ran in the park', 'the moon and the stars'];
        const corpus = join(files.dir, 'bos-corpus.jsonl');
        writeFileSync(corpus, docs.map((text) => JSON.stringify({ text })).join('\n') + '\n');
        // Every document fits one context of 32, so each is one reference sequence.
        const result = await buildDashboards(a.database, a.services.registry, {
          dictionaryIds: ['bos-yes', 'bos-no'],
          corpus,
          context: 32,
        });
        const tokenizer = loadTokenizer(model.dir);
        for (const { id, stats } of result.dictionaries) {
          const bos = id === 'bos-yes';
          const fx = bosFixtures.get(id)!;
          const xs: number[][] = [];
          const xHats: number[][] = [];
          for (const doc of docs) {
            const ids = tokenizer.encode(doc, { bos });
            const acts = gpt2Forward(model.weights, ids).hooks.get(HOOK)!;
            for (let p = bos ? 1 : 0; p < ids.length; p++) {
              const x = Array.from(acts.subarray(p * 32, (p + 1) * 32));
              xs.push(x);
              xHats.push(refForwardOne(fx.config, fx.params, x).xHat);
            }
          }
          const mean = Array.from({ length: 32 }, (_, i) => xs.reduce((s, x) => s + x[i], 0) / xs.length);
          let resid = 0,
            total = 0;
          xs.forEach((x, t) =>
            x.forEach((v, i) => {
              resid += (v - xHats[t][i]) ** 2;
              total += (v - mean[i]) ** 2;
            }),
          );
          assert.equal(stats.tokens, xs.length, id);
          assert.ok(
            Math.abs(stats.explainedVariance - (1 - resid / total)) < 1e-4,
            `${id}: ${stats.explainedVariance} vs ${1 - resid / total}`,
          );
        }
      },
    );

    test('concurrent requests of mixed lengths, batched, equal the same requests run one at a time', async (a) => {
      const texts = ['a', 'the cat', 'the cat sat on the mat and slept', 'hello world', 'on the mat', 'sat'];
      const q = (t: string) =>
        `{ encode(dictionary: "sae-standard", text: "${t}", topK: 3) { tokens { features { index activation } } ` +
        `reconstruction { mse } } }`;
      const sequential: any[] = [];
      for (const t of texts) sequential.push((await a.gql(q(t))).data);
      // A request finding the model idle runs at once, and this model runs in well under a millisecond:
      // the first concurrent run is held 300 ms so that the others arrive while it is busy.
      const row = await a.services.encoding.catalog.model(a.database, 'gpt2-tiny');
      const { value: model } = await a.services.registry.model(row);
      const runHooks = model.runHooks;
      let held = false;
      model.runHooks = async (...args) => {
        if (!held) {
          held = true;
          await new Promise((r) => setTimeout(r, 300));
        }
        return runHooks(...args);
      };
      const before = a.services.encoding.queues().model;
      const concurrent = await Promise.all(texts.flatMap((t) => [a.gql(q(t)), a.gql(q(t))])).finally(
        () => (model.runHooks = runHooks),
      );
      const after = a.services.encoding.queues().model;
      assert.equal(after.requests - before.requests, 2 * texts.length);
      assert.ok(after.runs - before.runs < 2 * texts.length, 'concurrent requests must share model runs');
      assert.ok(after.largest > 1);
      concurrent.forEach((r, i) => {
        assert.equal(r.errors, undefined);
        const want = sequential[Math.floor(i / 2)];
        r.data.encode.tokens.forEach((tok: any, p: number) => {
          assert.deepEqual(
            tok.features.map((f: any) => f.index),
            want.encode.tokens[p].features.map((f: any) => f.index),
          );
          tok.features.forEach((f: any, j: number) =>
            assert.ok(Math.abs(f.activation - want.encode.tokens[p].features[j].activation) < 1e-5),
          );
        });
      });
    });
  });
}

describe('encoding service under load', () => {
  const files = tempDir('atlas-load-');
  after(() => files.cleanup());

  async function start(overrides: Record<string, unknown>): Promise<TestAtlas> {
    const dir = join(files.dir, `gpt2-${Object.keys(overrides).join('-')}`);
    mkdirSync(dir);
    const model = writeTinyGpt2(dir);
    const started = await startTestAtlas(
      'pglite',
      async (db, dataDir) => {
        await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
        const fx = writeSaeFixture(join(files.dir, `sae-${Object.keys(overrides).join('-')}`), {
          format: 'saelens',
          architecture: 'topk',
          dIn: 32,
          dSae: 128,
          k: 6,
          hookName: HOOK,
        });
        await importDictionary(db, { path: fx.path, modelId: 'gpt2-tiny', id: 'sae', dataDir });
      },
      overrides,
    );
    assert.ok(!('skip' in started));
    return started as TestAtlas;
  }

  it('a burst beyond the queue bound is refused at once with OVERLOADED and a retry hint', async () => {
    const a = await start({ maxQueue: 2 });
    try {
      const results = await Promise.all(
        Array.from({ length: 30 }, () =>
          a.gql('{ encode(dictionary: "sae", text: "the cat sat") { topFeatures { index } } }'),
        ),
      );
      const overloaded = results.filter((r) => r.errors?.[0]?.extensions?.code === 'OVERLOADED');
      const ok = results.filter((r) => !r.errors);
      assert.ok(overloaded.length > 0, 'some requests must be refused');
      assert.ok(ok.length > 0, 'some requests must be served');
      assert.equal(overloaded.length + ok.length, 30);
      assert.ok(Number((overloaded[0].errors![0].extensions as any).retryAfterMs) > 0);
    } finally {
      await a.close();
    }
  });

  it('a request past its deadline fails with DEADLINE_EXCEEDED', async () => {
    const a = await start({ requestTimeoutMs: 1 });
    try {
      const r = await a.gql('{ encode(dictionary: "sae", text: "the cat sat") { topFeatures { index } } }');
      assert.equal(r.errors?.[0]?.extensions?.code, 'DEADLINE_EXCEEDED');
    } finally {
      await a.close();
    }
  });
});
