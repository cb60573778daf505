/**
 * Regression tests for the hostile-input findings of issue 16, on both backends: full-text search
 * bounded to its first MAX_SEARCH_TERMS distinct terms (a huge query no longer holds the database),
 * text caps checked before any SQL, NUL and lone surrogates refused with BAD_USER_INPUT, nearestFeatures
 * vectors at the float limits answered by scale-free cosine, forged cursors refused, server paths kept
 * out of messages, and a dictionary whose weights are gone skipped (and reported) by searchFeatures.
 */
import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, rmSync } from 'node:fs';
import { BACKENDS, startTestAtlas, useTestAtlas, type TestAtlas } from './helpers/atlas-server.js';
import { seedCatalog, cosine, FIXTURE, type SeededCatalog } from './helpers/catalog-fixture.js';
import { writeTinyGpt2 } from './helpers/hf-fixtures.js';
import { writeSaeFixture, tempDir } from './helpers/sae-fixtures.js';
import { insertExplanations } from '../src/db/explanations.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { MAX_SEARCH_TERMS } from '../src/config.js';

const HOOK = 'blocks.1.hook_resid_post';

const SEARCH =
  `query($q: String!, $d: ID, $m: ID) { searchFeatures(query: $q, dictionary: $d, model: $m, first: 5) ` +
  `{ feature { id } } }`;
const EXPLAIN =
  `query($q: String!, $d: ID, $m: ID) { searchExplanations(query: $q, dictionary: $d, model: $m) { ` +
  `explanation { feature { id } } } }`;
const MAX_CHARS = 20000;

/** `n` distinct filler words that no label or explanation holds (english stems them to themselves). */
const fillers = (n: number) => Array.from({ length: n }, (_, i) => `qx${i}z`);

async function healthz(a: TestAtlas): Promise<number> {
  const t = performance.now();
  const res = await fetch(new URL('/healthz', a.url), { signal: AbortSignal.timeout(1000) });
  assert.equal(res.status, 200);
  return performance.now() - t;
}

for (const backend of BACKENDS) {
  describe(`hostile inputs on ${backend}`, () => {
    const files = tempDir('atlas-hostile-');
    let catalog: SeededCatalog;
    let dataDir = '';
    const test = useTestAtlas(
      `hostile inputs on ${backend}`,
      () => {
        mkdirSync(join(files.dir, 'gpt2'));
        const model = writeTinyGpt2(join(files.dir, 'gpt2'));
        return startTestAtlas(
          backend,
          async (db, dir) => {
            dataDir = dir;
            catalog = await seedCatalog(db);
            await db.query(`UPDATE features SET label = 'zebra crossing' WHERE dictionary_id = $1 AND idx = 3`, [
              FIXTURE.dict,
            ]);
            await insertExplanations(db, [
              { dictionaryId: FIXTURE.dict, index: 4, text: 'zebra stripes', source: 'test', author: null },
            ]);
            await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
            for (const [id, seed] of [
              ['sae-a', 1],
              ['sae-gone', 2],
            ] as const) {
              const sae = writeSaeFixture(join(files.dir, id), {
                format: 'saelens',
                architecture: 'standard',
                dIn: 32,
                dSae: 64,
                hookName: HOOK,
                seed,
              });
              const row = await importDictionary(db, { path: sae.path, modelId: 'gpt2-tiny', id, dataDir: dir });
              if (id !== 'sae-gone') continue;
              // sae-gone's stored weights disappear (a wiped disk, a partial restore).
              const { sha256 } = row.artifacts!.files.find((f) => f.name.endsWith('.safetensors'))!;
              if (db.kind === 'postgres') await db.query('DELETE FROM artifact_blobs WHERE sha256 = $1', [sha256]);
              else rmSync(join(dir, 'artifacts', sha256));
            }
          },
          { maxInputChars: MAX_CHARS },
        );
      },
      () => files.cleanup(),
    );

    test(`full-text search keeps the first ${MAX_SEARCH_TERMS} distinct terms of a query`, async (a) => {
      const ids = async (q: string, query = SEARCH) => {
        const r = await a.gql(query, { q, d: FIXTURE.dict });
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        return query === SEARCH
          ? r.data.searchFeatures.map((h: any) => h.feature.id)
          : r.data.searchExplanations.map((h: any) => h.explanation.feature.id);
      };
      const zebra = [`${FIXTURE.dict}:3`, `${FIXTURE.dict}:4`];
      // Label and explanation both match (OR of the terms); the 32nd distinct term still counts, the 33rd not.
      assert.deepEqual((await ids([...fillers(MAX_SEARCH_TERMS - 1), 'zebra'].join(' '))).sort(), zebra);
      assert.deepEqual(await ids([...fillers(MAX_SEARCH_TERMS), 'zebra'].join(' ')), []);
      // Repeats are one term: 1,500 copies of two words leave "zebra" third.
      assert.deepEqual((await ids(`${'whale ship '.repeat(1500)}zebra`)).sort(), zebra);
      // searchExplanations: web search syntax (AND) up to the cap, the first distinct lexemes (AND) past it.
      assert.deepEqual(await ids('zebra stripes', EXPLAIN), [`${FIXTURE.dict}:4`]);
      assert.deepEqual(await ids(`${'zebra stripes '.repeat(1000)}`, EXPLAIN), [`${FIXTURE.dict}:4`]);
      assert.deepEqual(await ids(`${'zebra stripes '.repeat(1000)} ${fillers(1).join(' ')}`, EXPLAIN), []);
    });

    test('a query at the size cap answers and the server keeps answering /healthz', async (a) => {
      const q = 'whale ship '.repeat(Math.floor(MAX_CHARS / 11));
      assert.ok(q.length <= MAX_CHARS);
      const distinct = fillers(3000).join(' ').slice(0, MAX_CHARS);
      const pending = [SEARCH, EXPLAIN].flatMap((query) => [q, distinct].map((text) => a.gql(query, { q: text })));
      await healthz(a);
      for (const r of await Promise.all(pending)) assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      await healthz(a);
    });

    test(
      'texts over ATLAS_MAX_INPUT_CHARS and ids over 256 characters get INPUT_TOO_LONG before any ' + 'SQL',
      async (a) => {
        const q = 'whale ship '.repeat(4700);
        // The replica sweep (src/app/freshness.ts) sends statements of its own on a timer.
        await a.services.freshness?.stop();
        for (const query of [SEARCH, EXPLAIN]) {
          const before = a.database.queryCount;
          const r = await a.gql(query, { q });
          assert.equal(r.errors?.[0]?.extensions?.code, 'INPUT_TOO_LONG', JSON.stringify(r.errors));
          assert.equal(a.database.queryCount, before, 'no statement was sent');
        }
        const long = await a.gql(`query($id: ID!) { dictionary(id: $id) { id } }`, { id: 'd'.repeat(257) });
        assert.equal(long.errors?.[0]?.extensions?.code, 'INPUT_TOO_LONG');
        await healthz(a);
      },
    );

    test('NUL bytes and lone surrogates in ids and texts are BAD_USER_INPUT', async (a) => {
      const probes: [string, Record<string, unknown>][] = [
        [`query($id: ID!) { dictionary(id: $id) { id } }`, { id: 'tiny\u0000dict' }],
        [`query($id: ID!) { model(id: $id) { id } }`, { id: '\uD800' }],
        [`query($id: ID!) { feature(dictionary: $id, index: 1) { id } }`, { id: `${FIXTURE.dict}\u0000` }],
        [`query($id: ID!) { dictionaries(model: $id) { id } }`, { id: '\u0000' }],
        [
          `query($id: ID!) { nearestFeatures(dictionary: "${FIXTURE.dict}", index: 1, in: [$id]) { cosine } }`,
          { id: '\uDC00x' },
        ],
        [SEARCH, { q: 'zebra\u0000' }],
        [SEARCH, { q: 'zebra', d: '\u0000' }],
        [EXPLAIN, { q: 'ze\uD83Dbra' }],
        [
          `query($t: String!) { encode(dictionary: "${FIXTURE.dict}", text: $t) { topFeatures { index } } }`,
          { t: 'a\u0000b' },
        ],
        [
          `mutation($id: ID!) { addExplanation(dictionary: $id, index: 1, text: "x") { userErrors { message } } }`,
          { id: '\u0000' },
        ],
      ];
      for (const [query, variables] of probes) {
        const r = await a.gql(query, variables);
        const code = r.errors?.[0]?.extensions?.code;
        // The mutation needs a key first; either way, never an internal error.
        assert.ok(
          code === 'BAD_USER_INPUT' || (query.startsWith('mutation') && code === 'UNAUTHENTICATED'),
          `${query} ${JSON.stringify(variables)}: ${JSON.stringify(r.errors)}`,
        );
        assert.equal(r.status, 200);
      }
      // A well-formed astral character (a surrogate pair) is fine.
      const emoji = await a.gql(SEARCH, { q: 'zebra \uD83E\uDD93' });
      assert.equal(emoji.errors, undefined, JSON.stringify(emoji.errors));
    });

    test(
      'nearestFeatures: a vector at the float limits is answered by cosine, which ignores scale; zero is ' +
        'BAD_USER_INPUT',
      async (a) => {
        const rows = catalog.decoders.get(FIXTURE.dict)!;
        const source = Array.from(rows.subarray(5 * FIXTURE.dIn, 6 * FIXTURE.dIn));
        const want = Array.from({ length: FIXTURE.dSae }, (_, i) => ({
          i,
          c: cosine(source, rows.subarray(i * FIXTURE.dIn, (i + 1) * FIXTURE.dIn)),
        }))
          .sort((p, q) => q.c - p.c)
          .slice(0, 5)
          .map((w) => w.i);
        const near =
          `query($v: [Float!]) { nearestFeatures(dictionary: "${FIXTURE.dict}", vector: $v, k: 5, exact: ` +
          `true) { cosine feature { index } } }`;
        for (const scale of [1, 1e39, 1e-50, 1e300]) {
          const r = await a.gql(near, { v: source.map((x) => x * scale) });
          assert.equal(r.errors, undefined, `scale ${scale}: ${JSON.stringify(r.errors)}`);
          assert.deepEqual(
            r.data.nearestFeatures.map((h: any) => h.feature.index),
            want,
            `scale ${scale}`,
          );
          assert.ok(Math.abs(r.data.nearestFeatures[0].cosine - 1) < 1e-5);
        }
        for (const v of [source.map(() => 0), source.map(() => Number('1e-400'))]) {
          const r = await a.gql(near, { v });
          assert.equal(r.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(r.errors));
        }
        const short = await a.gql(near, { v: [1, 2, 3] });
        assert.equal(short.errors?.[0]?.extensions?.code, 'DIMENSION_MISMATCH');
      },
    );

    test('encodeVectors with values past float32 is BAD_USER_INPUT', async (a) => {
      const enc =
        `query($v: [[Float!]!]!) { encodeVectors(dictionary: "sae-a", vectors: $v, topK: 4) { index ` +
        `activation } }`;
      for (const big of [1e39, 1e300, -3e38]) {
        const r = await a.gql(enc, { v: [Array.from({ length: 32 }, (_, i) => (i % 2 ? big : 1))] });
        assert.equal(r.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(r.errors));
      }
      const tiny = await a.gql(enc, { v: [Array.from({ length: 32 }, () => 1e-50)] });
      assert.equal(tiny.errors, undefined, JSON.stringify(tiny.errors));
    });

    test('a cursor carrying an index or value no page could hold is BAD_USER_INPUT', async (a) => {
      const page =
        `query($after: String) { dictionary(id: "${FIXTURE.dict}") { features(first: 3, after: $after, ` +
        `orderBy: DENSITY) { edges { cursor node { index } } } } }`;
      const forged = [
        [1e308, 5],
        [0.5, 1e300],
        [1e-50, 1],
        [0.1, 3],
        [null, -1],
        [null, 2 ** 31],
        [0.5, 1.5],
        ['x', 1],
        { a: 1 },
      ];
      for (const c of forged) {
        const r = await a.gql(page, { after: Buffer.from(JSON.stringify(c)).toString('base64url') });
        assert.equal(
          r.errors?.[0]?.extensions?.code,
          'BAD_USER_INPUT',
          `${JSON.stringify(c)}: ${JSON.stringify(r.errors)}`,
        );
      }
      // An issued cursor still pages on: its value is a float32 exactly.
      const first = await a.gql(page, {});
      const next = await a.gql(page, { after: first.data.dictionary.features.edges[2].cursor });
      assert.equal(next.errors, undefined, JSON.stringify(next.errors));
      assert.equal(next.data.dictionary.features.edges.length, 3);
    });

    test('weights missing from the store: ARTIFACT_MISSING names the dictionary, no server path', async (a) => {
      const r = await a.gql(
        `{ encodeVectors(dictionary: "sae-gone", vectors: [[${Array(32).fill(1).join(',')}]]) { index } }`,
      );
      assert.equal(r.errors?.[0]?.extensions?.code, 'ARTIFACT_MISSING', JSON.stringify(r.errors));
      const text = JSON.stringify(r);
      assert.ok(!text.includes(dataDir) && !/\/tmp\//.test(text), text);
      assert.match(r.errors![0].message, /sae_weights\.safetensors of dictionary "sae-gone"/);
    });

    test('searchFeatures skips a dictionary whose weights are unavailable and reports it in extensions', async (a) => {
      const res = await fetch(a.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          query:
            `{ searchFeatures(query: "the cat sat on the mat", model: "gpt2-tiny", first: 20) { feature { id ` +
            `dictionary { id } } reasons { signal } } }`,
        }),
      });
      const body = (await res.json()) as any;
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      const fromA = body.data.searchFeatures.filter((h: any) => h.feature.dictionary.id === 'sae-a');
      assert.ok(
        fromA.some((h: any) => h.reasons.some((x: any) => x.signal === 'ACTIVATION')),
        'sae-a was encoded',
      );
      assert.deepEqual(
        body.extensions.skippedDictionaries.map((s: any) => [s.dictionary, s.code]),
        [['sae-gone', 'ARTIFACT_MISSING']],
      );
      assert.ok(!body.extensions.skippedDictionaries[0].message.includes(dataDir));
    });
  });
}
