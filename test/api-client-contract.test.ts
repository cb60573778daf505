/**
 * The schema's contract with caching clients (issue 15): globally unique ids and node(id:), token
 * vocabulary numbers that are not ids, partial results, enums and DateTime, connection arguments,
 * Apollo Client 4's default cache (no warnings, no tokens mixed across models) and relay-runtime's
 * normalization of catalog, feature and encode responses. On PGlite: the schema, not the backend, is
 * under test.
 */
import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { gql } from '@apollo/client';
import { startTestAtlas, useTestAtlas } from './helpers/atlas-server.js';
import { seedCatalog, FIXTURE } from './helpers/catalog-fixture.js';
import { writeTinyGpt2, writeTinyLlama } from './helpers/hf-fixtures.js';
import { writeSaeFixture, tempDir } from './helpers/sae-fixtures.js';
import { apolloClient, relayRoundTrip } from './helpers/graphql-clients.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { insertExplanations } from '../src/db/explanations.js';
import { upsertModel } from '../src/db/catalog.js';

const HOOK = 'blocks.1.hook_resid_post';
const TEXT = 'the cat sat on the mat';
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const STATS = { tokens: 1000, l0: 7.5, deadFraction: 0.1, normalizedMse: 0.2, explainedVariance: 0.8, corpus: 'c.txt' };

describe('client contract', () => {
  const files = tempDir('atlas-contract-');
  let explanationId = 0;
  const test = useTestAtlas(
    'client contract',
    async () => {
      mkdirSync(join(files.dir, 'gpt2'));
      mkdirSync(join(files.dir, 'llama'));
      const gpt2 = writeTinyGpt2(join(files.dir, 'gpt2'));
      const llama = writeTinyLlama(join(files.dir, 'llama'));
      return startTestAtlas('pglite', async (db, dataDir) => {
        await seedCatalog(db);
        await registerModel(db, { id: 'gpt2-tiny', path: gpt2.dir, name: 'tiny gpt2', prependBos: false });
        await registerModel(db, { id: 'llama-tiny', path: llama.dir, name: 'tiny llama', prependBos: false });
        const fx = writeSaeFixture(join(files.dir, 'sae'), {
          format: 'saelens',
          architecture: 'topk',
          dIn: 32,
          dSae: 64,
          k: 4,
          hookName: HOOK,
          seed: 1,
          normalization: 'none',
        });
        await importDictionary(db, { path: fx.path, modelId: 'gpt2-tiny', id: 'sae-gpt2', dataDir });
        // Dashboards as `atlas build` leaves them, so the cache sees histograms, logit lenses and stats.
        await db.query(`UPDATE dictionaries SET stats = $1 WHERE id = $2`, [
          { ...STATS, builtAt: '2026-01-02T03:04:05.000Z' },
          FIXTURE.dict,
        ]);
        await db.query(`UPDATE features SET histogram = $1 WHERE dictionary_id = $2`, [
          { edges: [0, 1, 2], counts: [3, 4] },
          FIXTURE.dict,
        ]);
        await db.query(
          `INSERT INTO feature_logits (dictionary_id, feature_idx, positive_token_ids, positive_tokens,
             positive_weights, negative_token_ids, negative_tokens, negative_weights)
           SELECT $1, i, '{5}', '["positive"]', '{1}', '{5}', '["negative"]', '{1}' FROM generate_series(0, 2) i`,
          [FIXTURE.dict],
        );
        const [e] = await insertExplanations(db, [
          { dictionaryId: FIXTURE.dict, index: 1, text: 'x', source: 'api', author: null },
        ]);
        explanationId = e.id;
      });
    },
    () => files.cleanup(),
  );

  test('node(id:) fetches every kind of node by its globally unique id', async (a) => {
    const ids = [FIXTURE.model, FIXTURE.dict, `${FIXTURE.dict}:7`, `explanation/${explanationId}`];
    const r = await a.gql(
      `query($ids: [ID!]!) { ${ids.map((_, i) => `n${i}: node(id: $ids_${i}) { __typename id }`).join(' ')} }`.replace(
        '$ids: [ID!]!',
        ids.map((_, i) => `$ids_${i}: ID!`).join(', '),
      ),
      Object.fromEntries(ids.map((id, i) => [`ids_${i}`, id])),
    );
    assert.equal(r.errors, undefined);
    assert.deepEqual(Object.values(r.data), [
      { __typename: 'Model', id: ids[0] },
      { __typename: 'Dictionary', id: ids[1] },
      { __typename: 'Feature', id: ids[2] },
      { __typename: 'Explanation', id: ids[3] },
    ]);
    const none = await a.gql(`{ a: node(id: "nope") { id } b: node(id: "${FIXTURE.dict}:99999") { id } }`);
    assert.deepEqual(none.data, { a: null, b: null });
  });

  test('a model may not take a dictionary id: ids stay unique across types', async (a) => {
    await assert.rejects(
      upsertModel(a.database, {
        id: FIXTURE.dict,
        name: 'clash',
        architecture: 'llama',
        dModel: 32,
        nLayers: 1,
        vocabSize: 8,
        contextLength: 8,
        prependBos: true,
        hookPoints: [],
        sourcePath: '/nonexistent',
        sourceFormat: 'llama2c',
        tokenizerPath: null,
      }),
      (e: any) => e.code === 'CONFLICT',
    );
  });

  test('one failing root field leaves the others in the response', async (a) => {
    const r = await a.gql(
      `{ models { id } h: hookActivations(model: "no-such-model", text: "x", hooks: []) { tokens { tokenId } } }`,
    );
    assert.equal(r.data.h, null);
    assert.equal(r.errors?.[0].extensions?.code, 'NOT_FOUND');
    assert.ok(r.data.models.some((m: any) => m.id === FIXTURE.model));
  });

  test('fixed sets are enums and instants DateTime', async (a) => {
    const r = await a.gql(
      `{ model(id: "gpt2-tiny") { architecture sourceFormat } dictionary(id: "${FIXTURE.dict}") { architecture ` +
        `normalization sourceFormat createdAt stats { builtAt } ` +
        `features(first: 1) { edges { node { labelSource } } } } }`,
    );
    assert.equal(r.errors, undefined);
    assert.deepEqual(r.data.model, { architecture: 'GPT2', sourceFormat: 'HUGGINGFACE' });
    const d = r.data.dictionary;
    assert.deepEqual([d.architecture, d.normalization, d.sourceFormat], ['TOPK', 'NONE', 'SAELENS']);
    assert.match(d.createdAt, ISO);
    assert.equal(d.stats.builtAt, '2026-01-02T03:04:05.000Z');
    // The fixture's labels were set by hand (label_source NULL): curated, never rebuilt.
    assert.equal(d.features.edges[0].node.labelSource, 'CURATED');
  });

  test('first: null means the default; after: "" is refused; a cursor of another ordering is refused', async (a) => {
    const page = (args: string) =>
      a.gql(
        `{ dictionary(id: "${FIXTURE.dict}") { features(${args}) { edges { node { index } } ` +
          `pageInfo { endCursor } } } }`,
      );
    const nullFirst = await page('first: null');
    assert.equal(nullFirst.errors, undefined);
    assert.equal(nullFirst.data.dictionary.features.edges.length, 20);
    const empty = await page('after: ""');
    assert.equal(empty.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.equal(empty.data.dictionary.features, null);
    const byDensity = await page('first: 3, orderBy: DENSITY');
    const cursor = byDensity.data.dictionary.features.pageInfo.endCursor;
    const mismatch = await page(`after: "${cursor}", orderBy: INDEX`);
    assert.equal(mismatch.errors?.[0].extensions?.code, 'CURSOR_MISMATCH');
    const ascending = await page(`after: "${cursor}", orderBy: DENSITY, direction: ASC`);
    assert.equal(ascending.errors?.[0].extensions?.code, 'CURSOR_MISMATCH');
    const same = await page(`first: 3, after: "${cursor}", orderBy: DENSITY, direction: DESC`);
    assert.equal(same.errors, undefined);
  });

  test('Apollo Client: no cache warnings, and tokens of two models stay apart', async (a) => {
    const { client, warnings, restore } = apolloClient(a.url);
    try {
      const feature = (fields: string) =>
        gql(`query F($d: ID!, $i: Int!) { feature(dictionary: $d, index: $i) { id ${fields} } }`);
      const catalog = (fields: string) => gql(`{ dictionaries { id dSae stats { ${fields} } } }`);
      // Different pages ask for different parts of the same objects.
      await client.query({ query: catalog('id l0 deadFraction') });
      await client.query({ query: catalog('id explainedVariance tokens builtAt') });
      for (const fields of [
        'histogram { id edges } logits { id positive { token } }',
        'histogram { id counts } logits { id negative { weight } }',
      ])
        await client.query({ query: feature(fields), variables: { d: FIXTURE.dict, i: 1 } });
      const hooks = gql(
        `query H($m: ID!, $t: String!) { hookActivations(model: $m, text: $t, hooks: ["hook_embed"]) ` +
          `{ tokens { tokenId text } } }`,
      );
      // Token 373 reads "um" in the tiny GPT-2's vocabulary and "ash" in the tiny Llama's.
      const gpt2 = await client.query({ query: hooks, variables: { m: 'gpt2-tiny', t: 'um' } });
      const llama = await client.query({ query: hooks, variables: { m: 'llama-tiny', t: 'ash' } });
      const texts = (d: any) => new Map(d.hookActivations.tokens.map((t: any) => [t.tokenId, t.text]));
      const [g, l] = [texts(gpt2.data), texts(llama.data)];
      // The clash the old Token.id caused: one vocabulary number, two texts.
      assert.ok(
        [...g].some(([id, text]) => l.has(id) && l.get(id) !== text),
        'the models share a token id with different texts',
      );
      const again = await client.query({
        query: hooks,
        variables: { m: 'gpt2-tiny', t: 'um' },
        fetchPolicy: 'cache-only',
      });
      assert.deepEqual(again.data, gpt2.data);
      const direct = await a.gql(
        `{ hookActivations(model: "gpt2-tiny", text: "um", hooks: ["hook_embed"]) { tokens { tokenId text } } }`,
      );
      assert.deepEqual(
        (again.data as any).hookActivations.tokens.map((t: any) => [t.tokenId, t.text]),
        direct.data.hookActivations.tokens.map((t: any) => [t.tokenId, t.text]),
      );
    } finally {
      restore();
    }
    assert.deepEqual(warnings, []);
  });

  test('relay-runtime normalizes catalog, feature and encode responses', async (a) => {
    const queries: [string, Record<string, unknown>][] = [
      [`query C { models { id name architecture dictionaries { id dSae stats { id l0 } model { id } } } }`, {}],
      [
        `query F($d: ID!) { feature(dictionary: $d, index: 2) { id index label histogram { id counts } ` +
          `logits { id positive { tokenId token } } explanations { id text } dictionary { id model { id } } ` +
          `topActivations { tokens tokenIds } } }`,
        { d: FIXTURE.dict },
      ],
      [
        `query E($t: String!) { encode(dictionary: "sae-gpt2", text: $t, topK: 3) { dictionary { id } ` +
          `tokens { position tokenId text features { index activation feature { id index } } } ` +
          `topFeatures { index feature { id } } } ` +
          `hookActivations(model: "llama-tiny", text: $t, hooks: ["hook_embed"]) { tokens { tokenId text } } }`,
        { t: TEXT },
      ],
    ];
    for (const [query, variables] of queries) {
      const r = await a.gql(query, variables);
      assert.equal(r.errors, undefined);
      assert.deepEqual(relayRoundTrip(query, variables, r.data), r.data);
    }
  });
});
