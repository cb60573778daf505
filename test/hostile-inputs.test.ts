/**
 * Regression tests for the hostile-input findings of issue 16, on both backends: full-text search
 * bounded to its first MAX_SEARCH_TERMS distinct terms (a huge query no longer holds the database),
 * text caps checked before any SQL, NUL and lone surrogates refused with BAD_USER_INPUT.
 */
import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { BACKENDS, startTestAtlas, useTestAtlas, type TestAtlas } from './helpers/atlas-server.js';
import { seedCatalog, FIXTURE } from './helpers/catalog-fixture.js';
import { insertExplanations } from '../src/db/explanations.js';
import { MAX_SEARCH_TERMS } from '../src/config.js';

const SEARCH = `query($q: String!, $d: ID, $m: ID) { searchFeatures(query: $q, dictionary: $d, model: $m, first: 5) { feature { id } } }`;
const EXPLAIN = `query($q: String!, $d: ID, $m: ID) { searchExplanations(query: $q, dictionary: $d, model: $m) { explanation { feature { id } } } }`;
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
    const test = useTestAtlas(`hostile inputs on ${backend}`, () =>
      startTestAtlas(backend, async (db) => {
        await seedCatalog(db);
        await db.query(`UPDATE features SET label = 'zebra crossing' WHERE dictionary_id = $1 AND idx = 3`, [FIXTURE.dict]);
        await insertExplanations(db, [{ dictionaryId: FIXTURE.dict, index: 4, text: 'zebra stripes', source: 'test', author: null }]);
      }, { maxInputChars: MAX_CHARS }));

    test(`full-text search keeps the first ${MAX_SEARCH_TERMS} distinct terms of a query`, async (a) => {
      const ids = async (q: string, query = SEARCH) => {
        const r = await a.gql(query, { q, d: FIXTURE.dict });
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        return (query === SEARCH ? r.data.searchFeatures.map((h: any) => h.feature.id) : r.data.searchExplanations.map((h: any) => h.explanation.feature.id));
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

    test('texts over ATLAS_MAX_INPUT_CHARS and ids over 256 characters get INPUT_TOO_LONG before any SQL', async (a) => {
      const q = 'whale ship '.repeat(4700);
      for (const query of [SEARCH, EXPLAIN]) {
        const before = a.database.queryCount;
        const r = await a.gql(query, { q });
        assert.equal(r.errors?.[0]?.extensions?.code, 'INPUT_TOO_LONG', JSON.stringify(r.errors));
        assert.equal(a.database.queryCount, before, 'no statement was sent');
      }
      const long = await a.gql(`query($id: ID!) { dictionary(id: $id) { id } }`, { id: 'd'.repeat(257) });
      assert.equal(long.errors?.[0]?.extensions?.code, 'INPUT_TOO_LONG');
      await healthz(a);
    });

    test('NUL bytes and lone surrogates in ids and texts are BAD_USER_INPUT', async (a) => {
      const probes: [string, Record<string, unknown>][] = [
        [`query($id: ID!) { dictionary(id: $id) { id } }`, { id: 'tiny\u0000dict' }],
        [`query($id: ID!) { model(id: $id) { id } }`, { id: '\uD800' }],
        [`query($id: ID!) { feature(dictionary: $id, index: 1) { id } }`, { id: `${FIXTURE.dict}\u0000` }],
        [`query($id: ID!) { dictionaries(model: $id) { id } }`, { id: '\u0000' }],
        [`query($id: ID!) { nearestFeatures(dictionary: "${FIXTURE.dict}", index: 1, in: [$id]) { cosine } }`, { id: '\uDC00x' }],
        [SEARCH, { q: 'zebra\u0000' }],
        [SEARCH, { q: 'zebra', d: '\u0000' }],
        [EXPLAIN, { q: 'ze\uD83Dbra' }],
        [`query($t: String!) { encode(dictionary: "${FIXTURE.dict}", text: $t) { topFeatures { index } } }`, { t: 'a\u0000b' }],
        [`mutation($id: ID!) { addExplanation(dictionary: $id, index: 1, text: "x") { userErrors { message } } }`, { id: '\u0000' }],
      ];
      for (const [query, variables] of probes) {
        const r = await a.gql(query, variables);
        const code = r.errors?.[0]?.extensions?.code;
        // The mutation needs a key first; either way, never an internal error.
        assert.ok(code === 'BAD_USER_INPUT' || (query.startsWith('mutation') && code === 'UNAUTHENTICATED'), `${query} ${JSON.stringify(variables)}: ${JSON.stringify(r.errors)}`);
        assert.equal(r.status, 200);
      }
      // A well-formed astral character (a surrogate pair) is fine.
      const emoji = await a.gql(SEARCH, { q: 'zebra \uD83E\uDD93' });
      assert.equal(emoji.errors, undefined, JSON.stringify(emoji.errors));
    });
  });
}
