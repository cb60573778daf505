/**
 * Dashboard fields over HTTP on both backends: null/empty before a build, filled after, consistent
 * with each other, and a page of features with all of them costs a constant number of queries.
 */
import { describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { BACKENDS, startTestAtlas, useTestAtlas } from './helpers/atlas-server.js';
import { writeTinyGpt2 } from './helpers/hf-fixtures.js';
import { writeSaeFixture, tempDir } from './helpers/sae-fixtures.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { EngineRegistry } from '../src/app/registry.js';
import { buildDashboards } from '../src/app/build-dashboards.js';

const HOOK = 'blocks.0.hook_resid_post';
const TEXT = `Once upon a time the little dog ran to the park.
The sun was hot and the sky was blue, and Lily saw a big red ball under a tree.

Tom threw the ball and Max ran after it; they played all day and went home happy.
`;

const PAGE = `{ dictionary(id: "sae") { stats { l0 deadFraction normalizedMse explainedVariance tokens corpus builtAt }
  features(first: 40, orderBy: DENSITY) { edges { node { index density maxActivation meanActivation label labelSource
    histogram { edges counts }
    topActivations(first: 3) { tokens tokenIds values maxValue maxPosition }
    quantileExamples { band minActivation maxActivation examples { tokens values maxValue maxPosition } }
    logits { positive { token tokenId weight } negative { token tokenId weight } } } } } } }`;

for (const backend of BACKENDS) {
  describe(`dashboard fields on ${backend}`, () => {
    const files = tempDir('atlas-dash-api-');
    let registry: EngineRegistry | undefined;
    after(async () => {
      await registry?.close();
      files.cleanup();
    });
    const test = useTestAtlas(`dashboard fields on ${backend}`, () => {
      mkdirSync(join(files.dir, 'gpt2'));
      const model = writeTinyGpt2(join(files.dir, 'gpt2'));
      writeFileSync(join(files.dir, 'corpus.txt'), TEXT.repeat(3));
      return startTestAtlas(backend, async (db, dataDir) => {
        await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
        const fx = writeSaeFixture(join(files.dir, 'sae'), {
          format: 'saelens',
          architecture: 'jumprelu',
          dIn: 32,
          dSae: 40,
          hookName: HOOK,
          seed: 5,
        });
        await importDictionary(db, { path: fx.path, modelId: 'gpt2-tiny', id: 'sae', dataDir });
        registry = new EngineRegistry({ dataDir, device: 'cpu', threads: 1 }, db);
      });
    });

    test('are empty before a build and filled, consistent and batched after one', async (atlas) => {
      const empty = await atlas.gql(PAGE);
      assert.equal(empty.errors, undefined, JSON.stringify(empty.errors));
      assert.equal(empty.data.dictionary.stats, null);
      const node0 = empty.data.dictionary.features.edges[0].node;
      assert.deepEqual(
        [node0.histogram, node0.topActivations, node0.quantileExamples, node0.logits],
        [null, [], [], null],
      );

      await buildDashboards(atlas.database, registry!, {
        dictionaryIds: ['sae'],
        corpus: join(files.dir, 'corpus.txt'),
        context: 16,
        batch: 4,
      });
      const queriesBefore = atlas.database.queryCount;
      const r = await atlas.gql(PAGE);
      const queries = atlas.database.queryCount - queriesBefore;
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.ok(queries <= 8, `a page of 40 features took ${queries} queries`);
      const { stats, features } = r.data.dictionary;
      const nodes = features.edges.map((e: any) => e.node);
      assert.equal(nodes.length, 40);
      assert.ok(stats.tokens > 0 && stats.corpus.endsWith('corpus.txt'));
      const densitySum = nodes.reduce((s: number, n: any) => s + n.density, 0);
      assert.ok(
        Math.abs(stats.l0 - densitySum) < 1e-5 * Math.max(1, stats.l0),
        `l0 ${stats.l0} vs sum of densities ${densitySum}`,
      );
      assert.ok(Math.abs(stats.explainedVariance - (1 - stats.normalizedMse)) < 1e-9);
      assert.equal(stats.deadFraction, nodes.filter((n: any) => n.density === 0).length / 40);
      const live = nodes.filter((n: any) => n.density > 0);
      assert.ok(live.length > 0);
      for (const n of live) {
        assert.equal(n.labelSource, 'AUTO');
        assert.ok(n.label.length > 0);
        assert.equal(
          n.histogram.counts.reduce((a: number, b: number) => a + b, 0),
          Math.round(n.density * stats.tokens),
        );
        assert.ok(n.topActivations.length >= 1 && n.topActivations.length <= 3);
        assert.equal(n.topActivations[0].maxValue, n.maxActivation);
        n.topActivations.forEach((e: any, i: number) => {
          assert.equal(e.tokens.length, e.values.length);
          assert.equal(e.values[e.maxPosition], e.maxValue);
          assert.equal(Math.max(...e.values), e.maxValue);
          if (i > 0) assert.ok(e.maxValue <= n.topActivations[i - 1].maxValue);
        });
        assert.equal(n.quantileExamples.length, 5);
        for (const b of n.quantileExamples)
          for (const e of b.examples) assert.ok(e.maxValue > b.minActivation && e.maxValue <= b.maxActivation);
        assert.ok(n.quantileExamples[4].examples.length > 0, 'the top band holds the maximum');
        assert.equal(n.logits.positive.length, 10);
        assert.equal(n.logits.negative.length, 10);
        assert.ok(n.logits.positive[0].weight >= n.logits.positive[9].weight);
        assert.ok(n.logits.negative[0].weight <= n.logits.negative[9].weight);
      }
      const bad = await atlas.gql(
        '{ feature(dictionary: "sae", index: 0) { topActivations(first: 101) { maxValue } } }',
      );
      assert.equal(bad.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    });
  });
}
