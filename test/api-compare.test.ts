/**
 * compareDictionaries, feature families, related features and the feature map over HTTP on both
 * backends, on planted structure: "twin" is a permuted, noised copy of "narrow"; "wide" splits three
 * features of "narrow" into three children each. Oracles are float64 cosines of the written decoders.
 */
import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { BACKENDS, startTestAtlas, useTestAtlas } from './helpers/atlas-server.js';
import { randomRows, permutedCopy, splitDictionary, cosine64 } from './helpers/planted-dictionaries.js';
import { upsertModel } from '../src/db/catalog.js';
import { writeDictionary } from '../src/db/dictionary-write.js';
import { buildFeatureMap } from '../src/app/feature-map.js';
import type { Database } from '../src/db/client.js';

const D = 32;
const N = 60;
const SPLIT = [3, 17, 42];

const narrow = randomRows(21, N, D);
const twin = permutedCopy(narrow, D, 22, 0.25);
const wide = splitDictionary(narrow, D, 23, new Set(SPLIT), 3, 0.85);

async function seed(database: Database): Promise<void> {
  await upsertModel(database, {
    id: 'm',
    name: 'm',
    architecture: 'llama',
    dModel: D,
    nLayers: 1,
    vocabSize: 16,
    contextLength: 16,
    prependBos: true,
    hookPoints: ['blocks.0.hook_resid_post'],
    sourcePath: '/nonexistent',
    sourceFormat: 'llama2c',
    tokenizerPath: null,
  });
  const dicts: [string, Float32Array, number][] = [
    ['narrow', narrow, D],
    ['twin', twin.rows, D],
    ['wide', wide.rows, D],
    ['other', randomRows(24, 10, 48), 48],
  ];
  for (const [id, rows, dIn] of dicts) {
    await writeDictionary(
      database,
      {
        id,
        modelId: 'm',
        name: id,
        hookPoint: 'blocks.0.hook_resid_post',
        dIn,
        dSae: rows.length / dIn,
        architecture: 'topk',
        k: 4,
        params: {},
        sourceFormat: 'saelens',
        prependBos: true,
      },
      [rows],
    );
  }
  await buildFeatureMap(database, { dictionaryId: 'narrow', session: { device: 'cpu', threads: 1 }, epochs: 60 });
}

const COMPARE = `query($a: ID!, $b: ID!, $order: MatchOrder, $first: Int) { compareDictionaries(a: $a, b: $b) {
  a { id } b { id } meanMaxCosineAB meanMaxCosineBA computedAt
  histogram { edges counts } oneToOne { score leftover }
  matches(first: $first, order: $order) { edges { node { feature { index } match { index } cosine paired { index }
  pairedCosine } } pageInfo { hasNextPage endCursor } }
} }`;

for (const backend of BACKENDS) {
  describe(`comparisons and maps on ${backend}`, () => {
    const test = useTestAtlas(`comparisons and maps on ${backend}`, () => startTestAtlas(backend, seed));

    test('a permuted, noised copy is matched one-to-one with the planted permutation, and stored', async (a) => {
      const r = await a.gql(COMPARE, { a: 'narrow', b: 'twin', first: 100, order: 'INDEX' });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      const c = r.data.compareDictionaries;
      // Row i of twin is row perm[i] of narrow.
      const partner = new Map(twin.perm.map((p, i) => [p, i]));
      const edges = c.matches.edges.map((e: any) => e.node);
      assert.equal(edges.length, N);
      for (const m of edges) {
        assert.equal(m.paired.index, partner.get(m.feature.index));
        assert.equal(m.match.index, partner.get(m.feature.index));
        assert.ok(Math.abs(m.cosine - cosine64(narrow, m.feature.index, twin.rows, m.match.index, D)) < 1e-5);
      }
      const pwmcc = twin.perm.reduce((s, p, i) => s + cosine64(narrow, p, twin.rows, i, D), 0) / N;
      assert.ok(Math.abs(c.oneToOne.score - pwmcc) < 1e-5);
      assert.ok(Math.abs(c.meanMaxCosineAB - pwmcc) < 1e-5);
      assert.equal(
        c.histogram.counts.reduce((s: number, x: number) => s + x, 0),
        N,
      );

      // Asking again in the other order reads the stored comparison, seen from the other side.
      const again = await a.gql(COMPARE, { a: 'twin', b: 'narrow', first: 3, order: 'WORST' });
      const d = again.data.compareDictionaries;
      assert.equal(d.computedAt, c.computedAt);
      assert.deepEqual([d.a.id, d.b.id], ['twin', 'narrow']);
      assert.equal(d.meanMaxCosineAB, c.meanMaxCosineBA);
      const worst = d.matches.edges.map((e: any) => e.node.cosine);
      const allWorst = twin.perm
        .map((p, i) => cosine64(narrow, p, twin.rows, i, D))
        .sort((x, y) => x - y)
        .slice(0, 3);
      worst.forEach((w: number, i: number) => assert.ok(Math.abs(w - allWorst[i]) < 1e-5));
      assert.equal(d.matches.pageInfo.hasNextPage, true);
    });

    test('a feature of the narrow dictionary finds what it splits into in the wide one', async (a) => {
      const r = await a.gql(COMPARE, { a: 'narrow', b: 'wide', first: 1, order: 'BEST' });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.equal(r.data.compareDictionaries.oneToOne, null);
      const q = SPLIT.map(
        (p) =>
          `f${p}: feature(dictionary: "narrow", index: ${p}) { family(dictionary: "wide", minCosine: 0.5) { match { ` +
          `index } feature { index } cosine } }`,
      ).join('\n');
      const before = a.database.queryCount;
      const fam = await a.gql(`{ ${q} }`);
      assert.equal(fam.errors, undefined, JSON.stringify(fam.errors));
      // Batched: dictionaries, features, families and their features, whatever the number of aliases.
      assert.ok(a.database.queryCount - before <= 6, `${a.database.queryCount - before} queries`);
      for (const p of SPLIT) {
        const got = fam.data[`f${p}`].family;
        const children = wide.parent.flatMap((q2, j) => (q2 === p ? [j] : []));
        assert.deepEqual(
          got.map((m: any) => m.feature.index).sort((x: number, y: number) => x - y),
          children,
        );
        for (const m of got) {
          assert.equal(m.match.index, p);
          assert.ok(Math.abs(m.cosine - cosine64(narrow, p, wide.rows, m.feature.index, D)) < 1e-5);
        }
      }
      const child = wide.parent.indexOf(SPLIT[0]);
      const rel = await a.gql(`{ feature(dictionary: "wide", index: ${child}) { related { match { id } cosine } } }`);
      assert.deepEqual(
        rel.data.feature.related.map((m: any) => m.match.id),
        [`narrow:${SPLIT[0]}`],
      );
      const relNarrow = await a.gql(
        `{ feature(dictionary: "narrow", index: 0) { related { match { dictionary { id } } } } }`,
      );
      assert.deepEqual(relNarrow.data.feature.related.map((m: any) => m.match.dictionary.id).sort(), ['twin', 'wide']);
    });

    test('refusals carry codes', async (a) => {
      const r = await a.gql('{ x: compareDictionaries(a: "narrow", b: "other") { meanMaxCosineAB } }');
      assert.equal(r.errors?.[0].extensions?.code, 'DIMENSION_MISMATCH');
      const s = await a.gql('{ x: compareDictionaries(a: "narrow", b: "narrow") { meanMaxCosineAB } }');
      assert.equal(s.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
      const n = await a.gql('{ x: compareDictionaries(a: "narrow", b: "nope") { meanMaxCosineAB } }');
      assert.equal(n.errors?.[0].extensions?.code, 'NOT_FOUND');
    });

    test('the map pages through every feature inside its bounds', async (a) => {
      const seen: number[] = [];
      let after: string | null = null;
      let bounds: any;
      for (;;) {
        const r: any = await a.gql(
          `query($after: String) { dictionary(id: "narrow") { map { bounds { minX maxX minY maxY } neighbours
          points(first: 25, after: $after) { nodes { index x y feature { id } } pageInfo { hasNextPage endCursor }
          totalCount } } } }`,
          { after },
        );
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        const map = r.data.dictionary.map;
        bounds = map.bounds;
        assert.equal(map.points.totalCount, N);
        for (const p of map.points.nodes) {
          seen.push(p.index);
          assert.equal(p.feature.id, `narrow:${p.index}`);
          assert.ok(p.x >= bounds.minX && p.x <= bounds.maxX && p.y >= bounds.minY && p.y <= bounds.maxY);
        }
        if (!map.points.pageInfo.hasNextPage) break;
        after = map.points.pageInfo.endCursor;
      }
      assert.deepEqual(
        seen,
        Array.from({ length: N }, (_, i) => i),
      );
      assert.ok(bounds.maxX > bounds.minX && bounds.maxY > bounds.minY);
      const r = await a.gql(
        '{ feature(dictionary: "narrow", index: 7) { mapPoint { index x y } } dictionary(id: "twin") { map { ' +
          'neighbours } } }',
      );
      assert.equal(r.data.feature.mapPoint.index, 7);
      assert.equal(r.data.dictionary.map, null);
    });
  });
}
