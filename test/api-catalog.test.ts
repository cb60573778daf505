/** The foundation's GraphQL contract over HTTP, on PGlite and on PostgreSQL+pgvector. */
import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { BACKENDS, startTestAtlas, useTestAtlas } from './helpers/atlas-server.js';
import { seedCatalog, cosine, FIXTURE, type SeededCatalog } from './helpers/catalog-fixture.js';

for (const backend of BACKENDS) {
  describe(`catalog API on ${backend}`, () => {
    let seeded: SeededCatalog;

    const test = useTestAtlas(`catalog API on ${backend}`, async () => {
      return startTestAtlas(backend, async (db) => {
        seeded = await seedCatalog(db);
      });
    });

    test('serverInfo names the backend, provider and pgvector version', async (a) => {
      const r = await a.gql('{ serverInfo { version database executionProvider pgvectorVersion } }');
      assert.equal(r.errors, undefined);
      assert.match(r.data.serverInfo.version, /^\d+\.\d+\.\d+/);
      assert.ok(r.data.serverInfo.database.startsWith(backend === 'pglite' ? 'pglite' : 'postgres'));
      assert.ok(['CPU', 'CUDA'].includes(r.data.serverInfo.executionProvider));
      assert.match(r.data.serverInfo.pgvectorVersion, /^\d+\.\d+/);
    });

    test('models, model and dictionaries describe the catalog', async (a) => {
      const r = await a.gql(`{ models { id architecture dModel layers vocabSize dictionaries { id } }
        model(id: "${FIXTURE.model}") { id hookPoints }
        dictionaries(model: "${FIXTURE.model}") { id dIn dSae architecture k hookPoint normalization model { id } }
        all: dictionaries { id } }`);
      assert.equal(r.errors, undefined);
      assert.deepEqual(
        r.data.models.map((m: any) => m.id),
        [FIXTURE.model],
      );
      assert.equal(r.data.models[0].layers, 2);
      assert.deepEqual(
        r.data.models[0].dictionaries.map((d: any) => d.id).sort(),
        [FIXTURE.dict, FIXTURE.twin, FIXTURE.wide].sort(),
      );
      assert.deepEqual(r.data.model.hookPoints, ['blocks.0.hook_resid_post', 'blocks.1.hook_resid_post']);
      const dict = r.data.dictionaries.find((d: any) => d.id === FIXTURE.dict);
      assert.deepEqual(dict, {
        id: FIXTURE.dict,
        dIn: 32,
        dSae: 300,
        architecture: 'TOPK',
        k: 8,
        hookPoint: 'blocks.1.hook_resid_post',
        normalization: 'NONE',
        model: { id: FIXTURE.model },
      });
      assert.equal(r.data.all.length, 3);
    });

    test('feature returns the stored decoder, its norm, and null for statistics not computed', async (a) => {
      const r = await a.gql(`{ a: feature(dictionary: "${FIXTURE.dict}", index: 5) { id index decoderNorm density
        maxActivation meanActivation label decoder dictionary { id } }
        b: feature(dictionary: "${FIXTURE.dict}", index: 2) { density maxActivation label } }`);
      assert.equal(r.errors, undefined);
      const f = r.data.a;
      assert.equal(f.id, `${FIXTURE.dict}:5`);
      const want = seeded.decoders.get(FIXTURE.dict)!.subarray(5 * 32, 6 * 32);
      // pgvector stores float32, and prints each in its shortest form.
      assert.deepEqual(f.decoder.map(Math.fround), Array.from(want));
      assert.ok(Math.abs(f.decoderNorm - 1) < 1e-5);
      assert.ok(Math.abs(f.density - seeded.density[5]!) < 1e-6);
      assert.equal(f.meanActivation, null);
      assert.equal(f.label, 'feature 5');
      assert.deepEqual(r.data.b, { density: null, maxActivation: null, label: 'feature 2' });
    });

    test('unknown ids give null with NOT_FOUND', async (a) => {
      const r = await a.gql(
        `{ dictionary(id: "nope") { id } model(id: "nope") { id } feature(dictionary: "${FIXTURE.dict}", index: ` +
          `300) { id } }`,
      );
      assert.deepEqual(r.data, { dictionary: null, model: null, feature: null });
      assert.deepEqual(
        r.errors!.map((e) => e.extensions?.code),
        ['NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND'],
      );
      const featureError = r.errors!.find((e: any) => e.path?.[0] === 'feature');
      assert.match(featureError!.message, /0\.\.299/);
    });

    test('INDEX pagination visits every feature once, with correct page info', async (a) => {
      const seen: number[] = [];
      let after: string | null = null;
      let pages = 0;
      for (;;) {
        const r: any = await a.gql(
          `query($after: String) { dictionary(id: "${FIXTURE.dict}") { features(first: 100, after: $after) {
          totalCount edges { cursor node { index } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } }
          } }`,
          { after },
        );
        assert.equal(r.errors, undefined);
        const conn = r.data.dictionary.features;
        assert.equal(conn.totalCount, 300);
        assert.equal(conn.pageInfo.hasPreviousPage, after !== null);
        assert.equal(conn.pageInfo.endCursor, conn.edges.at(-1)?.cursor ?? null);
        seen.push(...conn.edges.map((e: any) => e.node.index));
        pages++;
        if (!conn.pageInfo.hasNextPage) break;
        after = conn.pageInfo.endCursor;
      }
      assert.equal(pages, 3);
      assert.deepEqual(
        seen,
        Array.from({ length: 300 }, (_, i) => i),
      );
    });

    test('DENSITY and MAX_ACTIVATION orders match a sort, ties by index, missing values last', async (a) => {
      for (const [orderBy, values, direction] of [
        ['DENSITY', seeded.density, 'DESC'],
        ['MAX_ACTIVATION', seeded.maxActivation, 'ASC'],
      ] as const) {
        const expected = values
          .map((v, i) => ({ v, i }))
          .sort((x, y) => {
            if (x.v === null || y.v === null) return x.v === null ? (y.v === null ? x.i - y.i : 1) : -1;
            const c = direction === 'DESC' ? y.v - x.v : x.v - y.v;
            return c || x.i - y.i;
          })
          .map((e) => e.i);
        const got: number[] = [];
        let after: string | null = null;
        for (;;) {
          const r: any = await a.gql(
            `query($after: String) { dictionary(id: "${FIXTURE.dict}") { features(first: 37, after: $after, orderBy:
              ${orderBy}, direction: ${direction}) {
            edges { node { index } } pageInfo { hasNextPage endCursor } } } }`,
            { after },
          );
          assert.equal(r.errors, undefined);
          got.push(...r.data.dictionary.features.edges.map((e: any) => e.node.index));
          if (!r.data.dictionary.features.pageInfo.hasNextPage) break;
          after = r.data.dictionary.features.pageInfo.endCursor;
        }
        assert.deepEqual(got, expected, `${orderBy} ${direction}`);
      }
    });

    test('page edges: first 0, first over 100, and a forged cursor are handled', async (a) => {
      const zero = await a.gql(
        `{ dictionary(id: "${FIXTURE.dict}") { features(first: 0) { edges { cursor } pageInfo { hasNextPage ` +
          `endCursor } } } }`,
      );
      assert.deepEqual(zero.data.dictionary.features, { edges: [], pageInfo: { hasNextPage: true, endCursor: null } });
      const big = await a.gql(`{ dictionary(id: "${FIXTURE.dict}") { features(first: 101) { totalCount } } }`);
      assert.equal(big.errors![0].extensions!.code, 'BAD_USER_INPUT');
      const forged = await a.gql(`{ dictionary(id: "${FIXTURE.dict}") { features(after: "bm9wZQ") { totalCount } } }`);
      assert.equal(forged.errors![0].extensions!.code, 'BAD_USER_INPUT');
    });

    test('a page of 100 features with their dictionaries and models costs a constant number of queries', async (a) => {
      const q = (n: number) =>
        `{ dictionary(id: "${FIXTURE.dict}") { features(first: ${n}) { totalCount edges { node { id label ` +
        `dictionary { id model { id } } } } } } }`;
      const count = async (n: number) => {
        const before = a.database.queryCount;
        const r = await a.gql(q(n));
        assert.equal(r.errors, undefined);
        return a.database.queryCount - before;
      };
      const small = await count(5);
      const large = await count(100);
      assert.equal(large, small);
      assert.ok(large <= 5, `expected at most 5 queries, saw ${large}`);
    });

    test('nearestFeatures by index equals an exact cosine ranking', async (a) => {
      const rows = seeded.decoders.get(FIXTURE.dict)!;
      const row = (i: number) => rows.subarray(i * 32, (i + 1) * 32);
      for (const index of [0, 17, 123, 299]) {
        const r = await a.gql(
          `{ nearestFeatures(dictionary: "${FIXTURE.dict}", index: ${index}, k: 10) { cosine feature { index ` +
            `dictionary { id } } } }`,
        );
        assert.equal(r.errors, undefined);
        const exact = Array.from({ length: 300 }, (_, i) => ({ i, c: cosine(row(index), row(i)) }))
          .filter((e) => e.i !== index)
          .sort((x, y) => y.c - x.c)
          .slice(0, 10);
        assert.deepEqual(
          r.data.nearestFeatures.map((h: any) => h.feature.index),
          exact.map((e) => e.i),
        );
        r.data.nearestFeatures.forEach((h: any, j: number) => assert.ok(Math.abs(h.cosine - exact[j].c) < 1e-5));
      }
    });

    test('nearestFeatures by vector and across dictionaries of the same width', async (a) => {
      const probe = Array.from(seeded.decoders.get(FIXTURE.twin)!.subarray(40 * 32, 41 * 32));
      const r = await a.gql(
        `query($v: [Float!]) { nearestFeatures(dictionary: "${FIXTURE.dict}", vector: $v, k: 5, in: ` +
          `["${FIXTURE.dict}", "${FIXTURE.twin}"]) { cosine feature { id } } }`,
        { v: probe },
      );
      assert.equal(r.errors, undefined);
      assert.equal(r.data.nearestFeatures[0].feature.id, `${FIXTURE.twin}:40`);
      assert.ok(Math.abs(r.data.nearestFeatures[0].cosine - 1) < 1e-5);
      const all = [FIXTURE.dict, FIXTURE.twin]
        .flatMap((d) =>
          Array.from({ length: 300 }, (_, i) => ({
            id: `${d}:${i}`,
            c: cosine(probe, seeded.decoders.get(d)!.subarray(i * 32, (i + 1) * 32)),
          })),
        )
        .sort((x, y) => y.c - x.c)
        .slice(0, 5);
      assert.deepEqual(
        r.data.nearestFeatures.map((h: any) => h.feature.id),
        all.map((e) => e.id),
      );
      const exact = await a.gql(
        `query($v: [Float!]) { nearestFeatures(dictionary: "${FIXTURE.dict}", vector: $v, k: 5, in: ` +
          `["${FIXTURE.dict}", "${FIXTURE.twin}"], exact: true) { feature { id } } }`,
        { v: probe },
      );
      assert.deepEqual(
        exact.data.nearestFeatures.map((h: any) => h.feature.id),
        all.map((e) => e.id),
      );
    });

    test('nearestFeatures refuses mismatched widths and malformed requests with codes', async (a) => {
      const cases: [string, string][] = [
        [`{ nearestFeatures(dictionary: "${FIXTURE.dict}", vector: [1, 2, 3]) { cosine } }`, 'DIMENSION_MISMATCH'],
        [
          `{ nearestFeatures(dictionary: "${FIXTURE.dict}", index: 1, in: ["${FIXTURE.wide}"]) { cosine } }`,
          'DIMENSION_MISMATCH',
        ],
        [`{ nearestFeatures(dictionary: "${FIXTURE.dict}") { cosine } }`, 'BAD_USER_INPUT'],
        [`{ nearestFeatures(dictionary: "${FIXTURE.dict}", index: 1, k: 0) { cosine } }`, 'BAD_USER_INPUT'],
        [`{ nearestFeatures(dictionary: "${FIXTURE.dict}", index: 1, k: 101) { cosine } }`, 'BAD_USER_INPUT'],
        [`{ nearestFeatures(dictionary: "nope", index: 1) { cosine } }`, 'NOT_FOUND'],
        [`{ nearestFeatures(dictionary: "${FIXTURE.dict}", index: 999) { cosine } }`, 'NOT_FOUND'],
        [`{ nearestFeatures(dictionary: "${FIXTURE.dict}", index: 1, in: ["nope"]) { cosine } }`, 'NOT_FOUND'],
      ];
      for (const [q, code] of cases) {
        const r = await a.gql(q);
        assert.equal(r.errors?.[0]?.extensions?.code, code, q);
        assert.ok(r.errors![0].message.length > 10);
      }
      const mismatch = await a.gql(
        `{ nearestFeatures(dictionary: "${FIXTURE.dict}", index: 1, in: ["${FIXTURE.wide}"]) { cosine } }`,
      );
      assert.match(mismatch.errors![0].message, /48.*32|32.*48/);
    });

    test('limits: depth, aliases and body size are refused with codes, internals do not leak', async (a) => {
      let deep = 'id';
      for (let i = 0; i < 8; i++) deep = `dictionaries { model { ${deep} } }`;
      const d = await a.gql(`{ models { ${deep} } }`);
      assert.equal(d.errors?.[0]?.extensions?.code, 'QUERY_TOO_COMPLEX');
      const aliases = Array.from({ length: 40 }, (_, i) => `a${i}: serverInfo { version }`).join(' ');
      const al = await a.gql(`{ ${aliases} }`);
      assert.equal(al.errors?.[0]?.extensions?.code, 'QUERY_TOO_COMPLEX');
      const res = await fetch(a.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: `{ serverInfo { version } }`, pad: 'x'.repeat(200_000) }),
      });
      assert.equal(res.status, 413);
      const body = (await res.json()) as any;
      assert.equal(body.errors[0].extensions.code, 'PAYLOAD_TOO_LARGE');
      const bad = await a.gql(`{ dictionary(id: "${FIXTURE.dict}") { nonexistentField } }`);
      assert.equal(bad.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
      assert.doesNotMatch(JSON.stringify(bad), /Did you mean|stack|SELECT/);
    });
  });
}
