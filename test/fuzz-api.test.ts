/**
 * API fuzz suite (issue 16): random and adversarial values for every argument of every root field —
 * numbers at the float and Int limits, NaN/Infinity spelled as strings, NUL and lone surrogates, huge
 * strings and lists, forged cursors, unknown and malformed ids — on both backends. Property: every
 * answer is data or errors that all carry a code other than INTERNAL_SERVER_ERROR, never a 5xx, and
 * /healthz answers within 1 s all along. Seeded (FUZZ_SEED to vary) and bounded in time
 * (FUZZ_MS per backend, default 15 s); the case count and time are printed.
 */
import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import fc from 'fast-check';
import { BACKENDS, startTestAtlas, useTestAtlas, type TestAtlas } from './helpers/atlas-server.js';
import { seedCatalog, FIXTURE } from './helpers/catalog-fixture.js';
import { writeTinyGpt2 } from './helpers/hf-fixtures.js';
import { writeSaeFixture, tempDir } from './helpers/sae-fixtures.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { insertExplanations } from '../src/db/explanations.js';
import { createApiKey } from '../src/app/keys.js';

const SEED = Number(process.env.FUZZ_SEED ?? 16);
const TIME_MS = Number(process.env.FUZZ_MS ?? 15_000);
const HOOK = 'blocks.1.hook_resid_post';
const DICTS = ['sae-a', FIXTURE.dict, FIXTURE.twin, FIXTURE.wide];

// ---- values ----------------------------------------------------------------------------------

const hostileUnits = fc.constantFrom(
  'a',
  'Z',
  ' ',
  '\u0000',
  '\uD800',
  '\uDC00',
  '\uD83D',
  '\uDE00',
  'é',
  '"',
  "'",
  '\\',
  '&',
  '|',
  '!',
  ':*',
  '<->',
  '-',
  ' or ',
  'whale',
  'the',
  '%',
  '_',
  '\n',
  '\u202E',
  '\uFFFF',
  '🦓',
);
const hugeString = fc
  .tuple(fc.constantFrom('whale ship ', 'x', 'qz ', '\u0000', '\uD800', 'é'), fc.integer({ min: 100, max: 3000 }))
  .map(([s, n]) => s.repeat(n));
const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 3, arbitrary: fc.string({ unit: hostileUnits, maxLength: 60 }) },
  { weight: 1, arbitrary: hugeString },
  {
    weight: 1,
    arbitrary: fc.constantFrom('', ' ', 'NaN', 'Infinity', '-0', '1e308', 'the cat sat on the mat', 'zebra stripes'),
  },
);
// Mostly valid values, so that most cases get past the first check to the code behind it.
const id = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...DICTS, 'gpt2-tiny', FIXTURE.model) },
  { weight: 3, arbitrary: text },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      `${FIXTURE.dict}\u0000`,
      'x'.repeat(257),
      '../../etc/passwd',
      "'; DROP TABLE features; --",
    ),
  },
);
const int = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: -3, max: 320 }) },
  { weight: 2, arbitrary: fc.constantFrom(0, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 2 ** 53, 1e300, 1.5, -0) },
  { weight: 1, arbitrary: fc.constantFrom('NaN', 'Infinity', '1', null) },
);
const float = fc.oneof(
  { weight: 4, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 3, arbitrary: fc.double({ min: -2, max: 2, noNaN: true }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(1e39, -1e39, 1e-50, 5e-324, -0, Number.MAX_VALUE, -Number.MAX_VALUE, 3.4028235e38, 0),
  },
  { weight: 1, arbitrary: fc.constantFrom('NaN', 'Infinity', '-Infinity', null, '1') },
);
const vector = fc.oneof(
  { weight: 4, arbitrary: fc.array(float, { minLength: 32, maxLength: 32 }) },
  { weight: 1, arbitrary: fc.array(float, { maxLength: 50 }) },
  { weight: 1, arbitrary: fc.constantFrom(...[1e39, 1e-50, 0, 1e308].map((v) => Array(32).fill(v))) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20000 }).map((n) => Array(n).fill(0.5)) },
);
const cursorValue = fc.oneof(
  float,
  fc.constant(null),
  fc.constantFrom(1e308, -1e308, 1e-50, 0.1, 3.4028235677973366e38),
);
const cursorIndex = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(1e300, -1, 2 ** 31, 2 ** 53, 0.5, 'x'));
const cursor = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(cursorValue, cursorIndex).map((c) => Buffer.from(JSON.stringify(c)).toString('base64url')),
  },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? '').toString('base64url')) },
  { weight: 1, arbitrary: text },
  { weight: 2, arbitrary: fc.constant(null) },
);
const bool = fc.oneof(
  { weight: 6, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constantFrom(null, 'true', 1) },
);
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 4 });
const list = <T>(a: fc.Arbitrary<T>) =>
  fc.oneof(
    fc.array(a, { maxLength: 6 }),
    fc.integer({ min: 100, max: 3000 }).chain((n) => fc.array(a, { minLength: n, maxLength: n })),
  );
const enumOf = (...values: string[]) =>
  fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...values) }, { weight: 1, arbitrary: text });

// ---- operations: every root field, every argument ----------------------------------------------

interface Op {
  name: string;
  query: string;
  variables: Record<string, unknown>;
}
const op = (name: string, query: string, vars: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Op> =>
  fc.record(vars).map((variables) => ({ name, query, variables }));

const FEATURE_FIELDS = 'id index label density decoderNorm';
const ops = fc.oneof(
  op('serverInfo', '{ serverInfo { version database } }', {}),
  op('models', '{ models { id hookPoints dictionaries { id } } }', {}),
  op('model', 'query($id: ID!) { model(id: $id) { id } }', { id }),
  op('dictionaries', 'query($m: ID) { dictionaries(model: $m) { id dSae } }', { m: maybe(id) }),
  op(
    'dictionary',
    `query($id: ID!, $first: Int, $after: String, $o: FeatureOrder, $d: OrderDirection) {
    dictionary(id: $id) { id stats { l0 } features(first: $first, after: $after, orderBy: $o, direction: $d) {
      totalCount edges { cursor node { ${FEATURE_FIELDS} } } pageInfo { endCursor hasNextPage } } } }`,
    {
      id,
      first: maybe(int),
      after: cursor,
      o: maybe(enumOf('INDEX', 'DENSITY', 'MAX_ACTIVATION')),
      d: maybe(enumOf('ASC', 'DESC')),
    },
  ),
  op(
    'feature',
    `query($d: ID!, $i: Int!, $top: Int) { feature(dictionary: $d, index: $i) {
    ${FEATURE_FIELDS} decoder histogram { counts } topActivations(first: $top) { activation } quantileExamples { band }
    logits { positive { token } } explanations { text } } }`,
    { d: id, i: int, top: maybe(int) },
  ),
  op(
    'nearestFeatures',
    `query($d: ID!, $i: Int, $v: [Float!], $k: Int, $in: [ID!], $s: NeighborScope, $x: Boolean) {
    nearestFeatures(dictionary: $d, index: $i, vector: $v, k: $k, in: $in, scope: $s, exact: $x) { cosine feature {
    id } } }`,
    {
      d: id,
      i: maybe(int),
      v: maybe(vector),
      k: maybe(int),
      in: maybe(list(id)),
      s: maybe(enumOf('DICTIONARY', 'MODEL')),
      x: maybe(bool),
    },
  ),
  op(
    'searchFeatures',
    `query($q: String!, $m: ID, $d: ID, $f: Int) {
    searchFeatures(query: $q, model: $m, dictionary: $d, first: $f) { score feature { id } reasons { signal value
    detail } } }`,
    { q: text, m: maybe(id), d: maybe(id), f: maybe(int) },
  ),
  op(
    'searchExplanations',
    `query($q: String!, $m: ID, $d: ID, $f: Int) {
    searchExplanations(query: $q, model: $m, dictionary: $d, first: $f) { score explanation { text } } }`,
    { q: text, m: maybe(id), d: maybe(id), f: maybe(int) },
  ),
  op(
    'hookActivations',
    `query($m: ID!, $t: String!, $h: [String!]!, $tr: Boolean) {
    hookActivations(model: $m, text: $t, hooks: $h, truncate: $tr) { tokens { tokenId text } hooks { hook } } }`,
    { m: id, t: text, h: fc.oneof(fc.constant([HOOK]), list(fc.oneof(fc.constant(HOOK), text))), tr: maybe(bool) },
  ),
  op(
    'encodeVectors',
    `query($d: ID!, $v: [[Float!]!]!, $k: Int) { encodeVectors(dictionary: $d, vectors: $v, topK: $k) { index ` +
      `activation } }`,
    { d: id, v: fc.oneof(fc.array(vector, { maxLength: 4 }), list(fc.constant(Array(32).fill(0.1)))), k: maybe(int) },
  ),
  op(
    'encode',
    `query($d: ID!, $t: String!, $k: Int, $tr: Boolean) {
    encode(dictionary: $d, text: $t, topK: $k, truncate: $tr) { topFeatures { index activation } reconstruction { mse
    } tokens { text } } }`,
    { d: id, t: text, k: maybe(int), tr: maybe(bool) },
  ),
  op(
    'encodeMany',
    `query($d: [ID!]!, $t: String!, $k: Int, $tr: Boolean) {
    encodeMany(dictionaries: $d, text: $t, topK: $k, truncate: $tr) { dictionary { id } topFeatures { index } } }`,
    { d: list(id), t: text, k: maybe(int), tr: maybe(bool) },
  ),
  op(
    'addExplanation',
    `mutation($d: ID!, $i: Int!, $t: String!) {
    addExplanation(dictionary: $d, index: $i, text: $t) { explanation { id } userErrors { code message } } }`,
    { d: id, i: int, t: text },
  ),
);

// ---- the property ------------------------------------------------------------------------------

for (const backend of BACKENDS) {
  describe(`API fuzz on ${backend}`, () => {
    const files = tempDir('atlas-fuzz-');
    let key = '';
    const test = useTestAtlas(
      `API fuzz on ${backend}`,
      () => {
        mkdirSync(join(files.dir, 'gpt2'));
        const model = writeTinyGpt2(join(files.dir, 'gpt2'));
        const sae = writeSaeFixture(join(files.dir, 'sae'), {
          format: 'saelens',
          architecture: 'standard',
          dIn: 32,
          dSae: 64,
          hookName: HOOK,
          seed: 1,
        });
        return startTestAtlas(backend, async (db, dataDir) => {
          await seedCatalog(db);
          await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
          await importDictionary(db, { path: sae.path, modelId: 'gpt2-tiny', id: 'sae-a', dataDir });
          await insertExplanations(db, [
            { dictionaryId: FIXTURE.dict, index: 4, text: 'zebra stripes', source: 'test', author: null },
          ]);
          key = (await createApiKey(db, 'fuzz')).key;
        });
      },
      () => files.cleanup(),
    );

    test(
      `every root field answers data or coded errors, never a 5xx, and /healthz stays under 1 s (seed ` + `${SEED})`,
      async (a: TestAtlas) => {
        let healthFailures: string[] = [];
        let polling = true;
        const poller = (async () => {
          while (polling) {
            const t = performance.now();
            try {
              const res = await fetch(new URL('/healthz', a.url), { signal: AbortSignal.timeout(1000) });
              if (res.status !== 200) healthFailures.push(`status ${res.status}`);
              await res.arrayBuffer();
            } catch (e) {
              healthFailures.push(`${(e as Error).name} after ${Math.round(performance.now() - t)} ms`);
            }
            await new Promise((r) => setTimeout(r, 100));
          }
        })();
        let cases = 0;
        const byField = new Map<string, number>();
        const outcomes = new Map<string, number>();
        const started = performance.now();
        try {
          await fc.assert(
            fc.asyncProperty(ops, async ({ name, query, variables }) => {
              cases++;
              byField.set(name, (byField.get(name) ?? 0) + 1);
              const res = await fetch(a.url, {
                method: 'POST',
                headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
                body: JSON.stringify({ query, variables }),
              });
              const raw = await res.text();
              const where = `${name} ${JSON.stringify(variables).slice(0, 300)} → ${res.status} ${raw.slice(0, 300)}`;
              assert.ok(res.status < 500, where);
              const body = JSON.parse(raw) as { data?: unknown; errors?: { extensions?: { code?: string } }[] };
              assert.ok(body.data !== undefined || body.errors?.length, `neither data nor errors: ${where}`);
              const outcome = body.errors?.length ? (body.errors[0].extensions?.code ?? 'none') : 'data';
              outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
              for (const e of body.errors ?? []) {
                assert.ok(typeof e.extensions?.code === 'string', `an error without a code: ${where}`);
                assert.notEqual(e.extensions.code, 'INTERNAL_SERVER_ERROR', where);
              }
              assert.deepEqual(healthFailures, [], `/healthz during ${where}`);
            }),
            { seed: SEED, numRuns: 100_000, endOnFailure: true, plugins: [fc.interruptAfterTimeLimit(TIME_MS)] },
          );
        } finally {
          polling = false;
          await poller;
        }
        assert.deepEqual(healthFailures, []);
        healthFailures = [];
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        console.log(
          `# fuzz ${backend}: ${cases} cases in ${seconds} s (seed ${SEED}); per field ` +
            `${JSON.stringify(Object.fromEntries(byField))}; ` +
            `answers ${JSON.stringify(Object.fromEntries(outcomes))}`,
        );
        assert.ok(byField.size === 14, `every root field was exercised: ${[...byField.keys()]}`);
      },
    );
  });
}
