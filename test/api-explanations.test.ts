/**
 * Explanations over HTTP on both backends: API keys guarding writes (missing, malformed, unknown,
 * revoked), user errors in the payload, text with SQL metacharacters stored and found verbatim,
 * batched Feature.explanations, searchExplanations, bulk import all-or-nothing, and
 * ATLAS_REQUIRE_KEY=1 guarding reads.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { BACKENDS, startTestAtlas, useTestAtlas, type TestAtlas, type GqlResult } from './helpers/atlas-server.js';
import { seedCatalog, FIXTURE } from './helpers/catalog-fixture.js';
import { tempDir } from './helpers/sae-fixtures.js';
import { createApiKey, revokeApiKey } from '../src/app/keys.js';
import { importExplanations } from '../src/app/import-explanations.js';
import { isAtlasError } from '../src/errors.js';

async function gqlAs(
  a: TestAtlas,
  authorization: string | null,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GqlResult> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (authorization !== null) headers.authorization = authorization;
  const res = await fetch(a.url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  return { ...((await res.json()) as GqlResult), status: res.status };
}

const ADD = `mutation($d: ID!, $i: Int!, $t: String!) { addExplanation(dictionary: $d, index: $i, text: $t) {
  explanation { id text source author feature { id } } userErrors { field message code } } }`;

const NASTY = [
  "'; DROP TABLE features; --",
  'fires on 100% of "quoted" tokens \\ and backslashes \\\\ _under_scores_ %s $1 :* & | !',
  'emoji 🐕 and unicode naïve café',
];

async function countExplanations(a: TestAtlas): Promise<number> {
  return (await a.database.query<{ n: number }>('SELECT count(*)::int AS n FROM explanations'))[0].n;
}

for (const backend of BACKENDS) {
  describe(`explanations on ${backend}`, () => {
    const files = tempDir('atlas-expl-');
    let key = '';
    let revoked = '';

    const test = useTestAtlas(
      `explanations on ${backend}`,
      async () => {
        return startTestAtlas(backend, async (db) => {
          await seedCatalog(db);
          key = (await createApiKey(db, 'test writer')).key;
          const old = await createApiKey(db, 'old writer');
          revoked = old.key;
          await revokeApiKey(db, old.row.prefix);
        });
      },
      () => files.cleanup(),
    );

    test('writes need a key: missing or malformed → UNAUTHENTICATED, unknown or revoked → FORBIDDEN', async (a) => {
      const vars = { d: FIXTURE.dict, i: 3, t: 'should not be stored' };
      const cases: [string | null, string][] = [
        [null, 'UNAUTHENTICATED'],
        ['Token abc', 'UNAUTHENTICATED'],
        ['Bearer atlas_not-a-real-key', 'FORBIDDEN'],
        [`Bearer ${key}x`, 'FORBIDDEN'],
        [`Bearer ${revoked}`, 'FORBIDDEN'],
      ];
      for (const [auth, code] of cases) {
        const r = await gqlAs(a, auth, ADD, vars);
        assert.equal(r.errors?.[0]?.extensions?.code, code, `${auth}: ${JSON.stringify(r.errors)}`);
        assert.equal(r.data?.addExplanation ?? null, null);
      }
      assert.equal(await countExplanations(a), 0);
      const reads = await gqlAs(
        a,
        null,
        `{ feature(dictionary: "${FIXTURE.dict}", index: 3) { explanations { text } } }`,
      );
      assert.equal(reads.errors, undefined, 'reads stay public');
    });

    test('a valid key adds an explanation; bad input comes back as userErrors and stores nothing', async (a) => {
      const ok = await gqlAs(a, `Bearer ${key}`, ADD, { d: FIXTURE.dict, i: 3, t: 'fires on numbers' });
      assert.equal(ok.errors, undefined, JSON.stringify(ok.errors));
      assert.deepEqual(ok.data.addExplanation.userErrors, []);
      const e = ok.data.addExplanation.explanation;
      assert.deepEqual(
        { text: e.text, source: e.source, author: e.author, feature: e.feature.id },
        { text: 'fires on numbers', source: 'api', author: 'test writer', feature: `${FIXTURE.dict}:3` },
      );
      const before = await countExplanations(a);
      const bad: [Record<string, unknown>, string[], string][] = [
        [{ d: 'nope', i: 3, t: 'x' }, ['dictionary'], 'NOT_FOUND'],
        [{ d: FIXTURE.dict, i: FIXTURE.dSae, t: 'x' }, ['index'], 'NOT_FOUND'],
        [{ d: FIXTURE.dict, i: -1, t: 'x' }, ['index'], 'NOT_FOUND'],
        [{ d: FIXTURE.dict, i: 3, t: '  ' }, ['text'], 'BAD_USER_INPUT'],
        [{ d: FIXTURE.dict, i: 3, t: 'y'.repeat(4001) }, ['text'], 'BAD_USER_INPUT'],
      ];
      for (const [vars, field, code] of bad) {
        const r = await gqlAs(a, `Bearer ${key}`, ADD, vars);
        assert.equal(r.errors, undefined);
        assert.equal(r.data.addExplanation.explanation, null);
        assert.deepEqual(
          r.data.addExplanation.userErrors.map((u: any) => [u.field, u.code]),
          [[field, code]],
          JSON.stringify(vars).slice(0, 60),
        );
      }
      assert.equal(await countExplanations(a), before);
    });

    test('text with SQL metacharacters is stored and found verbatim', async (a) => {
      for (const [n, t] of NASTY.entries()) {
        const r = await gqlAs(a, `Bearer ${key}`, ADD, { d: FIXTURE.twin, i: 10 + n, t });
        assert.equal(r.data.addExplanation.explanation.text, t);
      }
      const read = await a.gql(
        `{ dictionary(id: "${FIXTURE.twin}") { features(first: 20) { edges { node { index explanations { text } } } ` +
          `} } }`,
      );
      const stored = read.data.dictionary.features.edges.flatMap((e: any) =>
        e.node.explanations.map((x: any) => x.text),
      );
      assert.deepEqual(stored, NASTY);
      assert.equal(
        (await a.database.query<{ n: number }>('SELECT count(*)::int AS n FROM features'))[0].n,
        3 * FIXTURE.dSae,
        'the features table is intact',
      );
      const search = async (q: string) =>
        await a.gql(
          `query($q: String!) { searchExplanations(query: $q) { explanation { text feature { id } } score } }`,
          { q },
        );
      const drop = await search('DROP TABLE features');
      assert.equal(drop.errors, undefined, JSON.stringify(drop.errors));
      assert.deepEqual(
        drop.data.searchExplanations.map((h: any) => h.explanation.text),
        [NASTY[0]],
      );
      for (const q of [NASTY[0], NASTY[1], '%', '\\', "'", '"unterminated', '-', 'a & b | !c']) {
        const r = await search(q);
        assert.equal(r.errors, undefined, `${q}: ${JSON.stringify(r.errors)}`);
      }
      assert.deepEqual(
        (await search('café')).data.searchExplanations.map((h: any) => h.explanation.text),
        [NASTY[2]],
      );
      assert.deepEqual(
        (await search('backslashes')).data.searchExplanations.map((h: any) => h.explanation.feature.id),
        [`${FIXTURE.twin}:11`],
      );
    });

    test('Feature.explanations is batched: the same number of queries for 5 or 40 features', async (a) => {
      const count = async (first: number) => {
        const n0 = a.database.queryCount;
        const r = await a.gql(
          `{ dictionary(id: "${FIXTURE.twin}") { features(first: ${first}) { edges { node { explanations { id } } } ` +
            `} } }`,
        );
        assert.equal(r.errors, undefined);
        return a.database.queryCount - n0;
      };
      assert.equal(await count(40), await count(5));
    });

    test('searchExplanations: scope by dictionary or model, and ranking', async (a) => {
      await importExplanations(
        a.database,
        writeLines(files.dir, 'scope.jsonl', [
          { dictionary: FIXTURE.dict, index: 50, text: 'negation words such as not and never' },
          { dictionary: FIXTURE.wide, index: 50, text: 'negation in French' },
          { dictionary: FIXTURE.wide, index: 51, text: 'negation negation negation' },
        ]),
      );
      const q =
        `query($q: String!, $d: ID, $m: ID) { searchExplanations(query: $q, dictionary: $d, model: $m) { ` +
        `explanation { feature { id } } score } }`;
      const all = await a.gql(q, { q: 'negation' });
      assert.equal(all.data.searchExplanations.length, 3);
      assert.equal(
        all.data.searchExplanations[0].explanation.feature.id,
        `${FIXTURE.wide}:51`,
        'more matches rank higher',
      );
      const one = await a.gql(q, { q: 'negation', d: FIXTURE.dict });
      assert.deepEqual(
        one.data.searchExplanations.map((h: any) => h.explanation.feature.id),
        [`${FIXTURE.dict}:50`],
      );
      const model = await a.gql(q, { q: 'negation', m: FIXTURE.model });
      assert.equal(model.data.searchExplanations.length, 3);
      assert.equal((await a.gql(q, { q: 'negation', m: 'nope' })).errors?.[0]?.extensions?.code, 'NOT_FOUND');
    });

    test(
      'atlas explanations import: Neuronpedia fields, JSON arrays, gzip; one bad line and nothing is ' + 'imported',
      async (a) => {
        const before = await countExplanations(a);
        const neuronpedia = [
          {
            modelId: FIXTURE.model,
            layer: FIXTURE.twin,
            index: '120',
            description: ' numbers in lists',
            typeName: 'oai_token-act-pair',
            explanationModelName: 'gpt-4o-mini',
            embedding: null,
          },
          {
            modelId: FIXTURE.model,
            layer: FIXTURE.twin,
            index: 121,
            description: 'dates',
            typeName: 'oai_token-act-pair',
            explanationModelName: 'gpt-4o-mini',
          },
        ];
        const good = await importExplanations(a.database, writeLines(files.dir, 'np.jsonl', neuronpedia));
        assert.equal(good.inserted, 2);
        const rows = await a.database.query<{ text: string; source: string; author: string; feature_idx: number }>(
          `SELECT text, source, author, feature_idx FROM explanations WHERE dictionary_id = $1 AND feature_idx IN ` +
            `(120, 121) ORDER BY feature_idx`,
          [FIXTURE.twin],
        );
        assert.deepEqual(rows, [
          { text: ' numbers in lists', source: 'oai_token-act-pair', author: 'gpt-4o-mini', feature_idx: 120 },
          { text: 'dates', source: 'oai_token-act-pair', author: 'gpt-4o-mini', feature_idx: 121 },
        ]);
        const arrayFile = join(files.dir, 'export.json.gz');
        writeFileSync(
          arrayFile,
          gzipSync(JSON.stringify([{ featureIndex: 7, explanation: 'gz array', author: 'me', source: 'manual' }])),
        );
        assert.equal((await importExplanations(a.database, arrayFile, { dictionary: FIXTURE.dict })).inserted, 1);

        const mixed = [
          JSON.stringify({ index: 1, text: 'good one' }),
          JSON.stringify({ index: 2, text: 'good two' }),
          JSON.stringify({ index: FIXTURE.dSae + 5, text: 'index out of range' }),
          '{"index": 4, "text": "broken json"',
          '',
          JSON.stringify({ feature: 'x', text: 'bad index' }),
          JSON.stringify({ index: 6 }),
          JSON.stringify({ index: 7, text: 'other dictionary', dictionary: FIXTURE.twin }),
        ];
        const mixedFile = join(files.dir, 'mixed.jsonl');
        writeFileSync(mixedFile, mixed.join('\n'));
        await assert.rejects(importExplanations(a.database, mixedFile, { dictionary: FIXTURE.dict }), (e: unknown) => {
          assert.ok(isAtlasError(e) && e.code === 'BAD_FILE');
          const lines = [...e.message.matchAll(/^ {2}line (\d+):/gm)].map((m) => Number(m[1]));
          assert.deepEqual(lines, [3, 4, 6, 7, 8], e.message);
          assert.match(e.message, /5 of 7 explanations are not valid; nothing was imported/);
          assert.match(e.message, /line 3: Dictionary "tiny-dict" has features 0\.\.299; there is no feature 305/);
          return true;
        });
        const unknownLayer = writeLines(files.dir, 'layer.jsonl', [
          { modelId: FIXTURE.model, layer: '6-res-jb', index: 1, description: 'x' },
        ]);
        await assert.rejects(
          importExplanations(a.database, unknownLayer),
          /line 1: no dictionary of model "tiny-model" has id or name "6-res-jb"; pass --dictionary/,
        );
        assert.equal(await countExplanations(a), before + 3);
      },
    );
  });
}

function writeLines(dir: string, name: string, records: unknown[]): string {
  const path = join(dir, name);
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return path;
}

describe('ATLAS_REQUIRE_KEY=1', () => {
  it('refuses reads without a valid key (401/403 with codes) and serves them with one', async () => {
    let key = '';
    const a = await startTestAtlas(
      'pglite',
      async (db) => {
        await seedCatalog(db);
        key = (await createApiKey(db, 'reader')).key;
      },
      { requireKey: true },
    );
    assert.ok(!('skip' in a));
    try {
      const q = '{ models { id } }';
      const none = await gqlAs(a, null, q);
      assert.equal(none.status, 401);
      assert.equal(none.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
      const wrong = await gqlAs(a, 'Bearer atlas_wrong', q);
      assert.equal(wrong.status, 403);
      assert.equal(wrong.errors?.[0]?.extensions?.code, 'FORBIDDEN');
      const ok = await gqlAs(a, `Bearer ${key}`, q);
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.data.models, [{ id: FIXTURE.model }]);
      assert.equal((await fetch(a.url.replace('/graphql', '/healthz'))).status, 200);
    } finally {
      await a.close();
    }
  });
});
