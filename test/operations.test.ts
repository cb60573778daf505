/**
 * Operations over HTTP and the resident set:
 * - ResidentSet (src/app/resident.ts): least recently used entries are evicted past the byte bound,
 *   leased ones only once released, and evicted ones load again; retiring spares what a mark postdates.
 * - A server whose bound holds one encoder alternates between two dictionaries and still answers as
 *   the float64 reference does; nearestFeatures plans (EXACT, HNSW, EXACT_SCAN) answer as an exact
 *   float64 ranking and say which they used.
 * - /healthz, /readyz (and 503 with a migration missing), /metrics, CORS preflight on and off.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ResidentSet } from '../src/app/resident.js';
import { startTestAtlas, useTestAtlas, type TestAtlas } from './helpers/atlas-server.js';
import { seedCatalog, cosine, FIXTURE, type SeededCatalog } from './helpers/catalog-fixture.js';
import { startServer } from '../src/server.js';
import { createServices } from '../src/app/services.js';
import { loadConfig } from '../src/config.js';
import { writeSaeFixture, tempDir, randomVectors, type SaeFixture } from './helpers/sae-fixtures.js';
import { refForwardOne, refTopK } from './reference/sae.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { exactSearchBytes } from '../src/engine/nearest.js';

describe('ResidentSet', () => {
  const loader = (log: string[], name: string, bytes: number) => async () => {
    log.push(`load ${name}`);
    return { value: name, bytes, close: async () => void log.push(`close ${name}`) };
  };

  it('evicts the least recently used unleased entry past its bound and loads it again on request', async () => {
    const log: string[] = [];
    const set = new ResidentSet(100);
    assert.equal(await set.use('a', loader(log, 'a', 40), (v) => v), 'a');
    await set.use('b', loader(log, 'b', 40), () => undefined);
    await set.use('a', loader(log, 'a', 40), () => undefined);
    await set.use('c', loader(log, 'c', 40), () => undefined);
    assert.deepEqual(log, ['load a', 'load b', 'load c', 'close b']);
    assert.deepEqual(
      set.list().map((e) => e.key),
      ['c', 'a'],
    );
    assert.equal(set.bytes, 80);
    await set.use('b', loader(log, 'b', 40), () => undefined);
    assert.deepEqual(log.slice(4), ['load b', 'close a']);
    assert.deepEqual(set.counts, { hits: 1, misses: 4, evictions: 2 });
    await set.close();
  });

  it('keeps leased entries past the bound until released, and shares one load among concurrent leases', async () => {
    const log: string[] = [];
    const set = new ResidentSet(50);
    const [a1, a2] = await Promise.all([set.lease('a', loader(log, 'a', 40)), set.lease('a', loader(log, 'a', 40))]);
    const b = await set.lease('b', loader(log, 'b', 40));
    assert.deepEqual(log, ['load a', 'load b']);
    assert.equal(set.bytes, 80, 'both leased: over the bound');
    a1.release();
    a1.release();
    assert.deepEqual(set.list()[1], { key: 'a', bytes: 40, leases: 1 }, 'a second lease still holds a');
    a2.release();
    assert.deepEqual(log, ['load a', 'load b', 'close a']);
    b.release();
    assert.deepEqual(
      set.list().map((e) => e.key),
      ['b'],
    );
    await set.close();
    assert.deepEqual(log.at(-1), 'close b');
  });

  it('retires replaced versions: idle ones close now, leased ones when released; a new lease loads', async () => {
    const log: string[] = [];
    const set = new ResidentSet(1000);
    await set.use('m@1', loader(log, 'm@1', 10), () => undefined);
    const held = await set.lease('e@1', loader(log, 'e@1', 10));
    set.retire((k) => k.endsWith('@1'));
    assert.deepEqual(log, ['load m@1', 'load e@1', 'close m@1'], 'the idle one closes, the leased one stays open');
    assert.deepEqual(set.list(), []);
    held.release();
    assert.deepEqual(log.at(-1), 'close e@1');
    await set.use('m@2', loader(log, 'm@2', 10), () => undefined);
    assert.deepEqual(log.at(-1), 'load m@2');
    await set.close();
  });

  it('spares entries created after a mark, and lists retired entries as live until their lease ends', async () => {
    const log: string[] = [];
    const set = new ResidentSet(1000);
    await set.use('d@1', loader(log, 'd@1', 10), () => undefined);
    const held = await set.lease('e@1', loader(log, 'e@1', 10));
    const mark = set.mark();
    await set.use('d@2', loader(log, 'd@2', 10), () => undefined);
    assert.deepEqual(set.retire(() => true, mark).sort(), ['d@1', 'e@1'], 'what existed at the mark');
    assert.deepEqual(
      set.list().map((e) => e.key),
      ['d@2'],
    );
    assert.deepEqual([...set.liveKeys()].sort(), ['d@2', 'e@1'], 'the leased one is live until released');
    held.release();
    assert.deepEqual([...set.liveKeys()], ['d@2']);
    assert.deepEqual(log, ['load d@1', 'load e@1', 'load d@2', 'close d@1', 'close e@1']);
    await set.close();
  });

  it('does not keep a failed load', async () => {
    const set = new ResidentSet(100);
    await assert.rejects(
      set.use(
        'x',
        async () => {
          throw new Error('missing file');
        },
        () => undefined,
      ),
      /missing file/,
    );
    assert.equal(
      await set.use(
        'x',
        async () => ({ value: 7, bytes: 1, close: async () => {} }),
        (v) => v,
      ),
      7,
    );
    await set.close();
  });
});

describe('a server with a small resident bound and CORS for one origin', () => {
  const files = tempDir('atlas-operations-');
  const saes: SaeFixture[] = [];
  let seeded: SeededCatalog;
  const D_SAE = 128;
  const ORIGIN = 'https://app.example.org';
  // One encoder: W_enc and W_dec, biases (src/app/registry.ts); the bound fits one and a half, and no
  // decoder matrix of the catalog fits its exact-search share.
  const ENCODER_BYTES = 4 * (2 * FIXTURE.dIn * D_SAE + D_SAE + 2 * FIXTURE.dIn);
  const test = useTestAtlas(
    'operations',
    () =>
      startTestAtlas(
        'pglite',
        async (db, dataDir) => {
          seeded = await seedCatalog(db);
          for (const seed of [1, 2]) {
            const fx = writeSaeFixture(join(files.dir, `sae-${seed}`), {
              format: 'saelens',
              dIn: FIXTURE.dIn,
              dSae: D_SAE,
              hookName: 'blocks.1.hook_resid_post',
              seed,
            });
            saes.push(fx);
            await importDictionary(db, { path: fx.path, modelId: FIXTURE.model, id: `sae-${seed}`, dataDir });
          }
        },
        { maxResidentBytes: Math.floor(ENCODER_BYTES * 1.5), corsOrigins: [ORIGIN] },
      ),
    () => files.cleanup(),
  );

  test('evicts and reloads encoders and answers as the reference does every time', async (a) => {
    const flat = randomVectors(3, FIXTURE.dIn, 5);
    const vectors = [0, 1, 2].map((n) => Array.from(flat.subarray(n * FIXTURE.dIn, (n + 1) * FIXTURE.dIn)));
    const q =
      'query($d: ID!, $v: [[Float!]!]!) { encodeVectors(dictionary: $d, vectors: $v, topK: 4) { index activation } }';
    for (let round = 0; round < 3; round++) {
      for (const [i, fx] of saes.entries()) {
        const r = await a.gql(q, { d: `sae-${i + 1}`, v: vectors });
        assert.equal(r.errors, undefined);
        vectors.forEach((x, n) => {
          const { indices, values } = refTopK(refForwardOne(fx.config, fx.params, x).codes, 4);
          const want = indices.map((index, j) => ({ index, activation: values[j] })).filter((f) => f.activation > 0);
          const got = r.data.encodeVectors[n];
          assert.deepEqual(
            got.map((f: any) => f.index),
            want.map((f) => f.index),
          );
          got.forEach((f: any, j: number) => assert.ok(Math.abs(f.activation - want[j].activation) < 1e-4));
        });
      }
    }
    const info = await a.gql(
      '{ serverInfo { resident { bytes maxBytes evictions misses entries { key bytes leases } } } }',
    );
    const resident = info.data.serverInfo.resident;
    assert.ok(resident.evictions >= 5, `alternating dictionaries evicts each time, saw ${resident.evictions}`);
    assert.ok(resident.bytes <= resident.maxBytes);
    // Keys name the artifact version of the row after an @.
    assert.equal(resident.entries.length, 1);
    assert.match(resident.entries[0].key, /^encoder:sae-2@[0-9a-f]{64}$/);
    assert.deepEqual({ ...resident.entries[0], key: null }, { key: null, bytes: ENCODER_BYTES, leases: 0 });
  });

  /** The k nearest features of `dict` to `probe` by float64 cosine, as ids. */
  const exactIds = (dict: string, probe: ArrayLike<number>, k: number, skip = -1) => {
    const rows = seeded.decoders.get(dict)!;
    return Array.from({ length: FIXTURE.dSae }, (_, i) => ({
      i,
      c: cosine(probe, rows.subarray(i * 32, (i + 1) * 32)),
    }))
      .filter((e) => e.i !== skip)
      .sort((x, y) => y.c - x.c)
      .slice(0, k)
      .map((e) => `${dict}:${e.i}`);
  };

  const nearest = async (a: TestAtlas | { url: string }, args: string) => {
    const res = await fetch(a.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: `{ nearestFeatures(dictionary: "${FIXTURE.dict}", index: 17, k: 8${args}) { cosine feature { id } } }`,
      }),
    });
    const body = (await res.json()) as any;
    assert.equal(body.errors, undefined);
    return { ids: body.data.nearestFeatures.map((h: any) => h.feature.id), plans: body.extensions?.nearestSearch };
  };

  test('nearestFeatures plans by size and recall, says which, and exact plans equal a float64 ranking', async (a) => {
    const rows = seeded.decoders.get(FIXTURE.dict)!;
    const want = exactIds(FIXTURE.dict, rows.subarray(17 * 32, 18 * 32), 8, 17);
    // The decoder matrix does not fit this server's exact-search share: exactness scans the database.
    const scan = await nearest(a, ', exact: true');
    assert.deepEqual(scan.plans, [{ dictionary: FIXTURE.dict, method: 'EXACT_SCAN' }]);
    assert.deepEqual(scan.ids, want);
    assert.deepEqual((await nearest(a, ', recall: 0.99')).plans, [{ dictionary: FIXTURE.dict, method: 'EXACT_SCAN' }]);
    assert.deepEqual((await nearest(a, '')).plans, [{ dictionary: FIXTURE.dict, method: 'IVFFLAT' }]);
    const bad = await a.gql(`{ nearestFeatures(dictionary: "${FIXTURE.dict}", index: 1, recall: 1.5) { cosine } }`);
    assert.equal(bad.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');

    // The same database and files behind a server with the default bound (half the memory): it fits.
    const services = await createServices({ ...loadConfig({}), device: 'cpu', threads: 1, dataDir: files.dir });
    const roomy = await startServer(
      { database: a.database, services, maxBodyBytes: 64 * 1024, log: () => undefined },
      { port: 0, host: '127.0.0.1' },
    );
    try {
      for (const args of ['', ', exact: true', ', recall: 1']) {
        const exact = await nearest(roomy, args);
        assert.deepEqual(exact.plans, [{ dictionary: FIXTURE.dict, method: 'EXACT' }]);
        assert.deepEqual(exact.ids, want);
      }
      assert.deepEqual((await nearest(roomy, ', recall: 0.8')).plans, [
        { dictionary: FIXTURE.dict, method: 'IVFFLAT' },
      ]);
      const both = await fetch(roomy.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          query:
            `query($v: [Float!]) { nearestFeatures(dictionary: "${FIXTURE.dict}", vector: $v, k: 6, ` +
            `in: ["${FIXTURE.dict}", "${FIXTURE.twin}"]) { feature { id } } }`,
          variables: { v: Array.from(rows.subarray(40 * 32, 41 * 32)) },
        }),
      }).then((r) => r.json() as Promise<any>);
      const merged = [FIXTURE.dict, FIXTURE.twin]
        .flatMap((d) =>
          Array.from({ length: FIXTURE.dSae }, (_, i) => ({
            id: `${d}:${i}`,
            c: cosine(rows.subarray(40 * 32, 41 * 32), seeded.decoders.get(d)!.subarray(i * 32, (i + 1) * 32)),
          })),
        )
        .sort((x, y) => y.c - x.c)
        .slice(0, 6)
        .map((e) => e.id);
      assert.deepEqual(
        both.data.nearestFeatures.map((h: any) => h.feature.id),
        merged,
      );
      const info = await fetch(roomy.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ serverInfo { resident { entries { key bytes } } } }' }),
      }).then((r) => r.json() as Promise<any>);
      assert.deepEqual(
        info.data.serverInfo.resident.entries.map((e: any) => e.bytes),
        [exactSearchBytes(FIXTURE.dSae, 32), exactSearchBytes(FIXTURE.dSae, 32)],
        'the two exact searches (decoder matrix and 8-bit screen) are resident',
      );

      // CORS is off by default: a preflight gets no CORS headers.
      const pre = await fetch(roomy.url, {
        method: 'OPTIONS',
        headers: { origin: ORIGIN, 'access-control-request-method': 'POST' },
      });
      assert.equal(pre.headers.get('access-control-allow-origin'), null);
    } finally {
      await roomy.stop();
      await services.close();
    }
  });

  test('/healthz and /readyz answer, and /readyz refuses while a migration is missing', async (a) => {
    const base = a.url.replace(/\/graphql$/, '');
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { ok: true });
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { ready: true });
    const [last] = await a.database.query<{ id: number; hash: string; created_at: string }>(
      'SELECT id, hash, created_at::text FROM drizzle.__drizzle_migrations ORDER BY created_at DESC LIMIT 1',
    );
    await a.database.query('DELETE FROM drizzle.__drizzle_migrations WHERE id = $1', [last.id]);
    try {
      const notReady = await fetch(`${base}/readyz`);
      assert.equal(notReady.status, 503);
      const body = (await notReady.json()) as any;
      assert.equal(body.ready, false);
      assert.match(body.problem, /1 migration/);
    } finally {
      await a.database.query('INSERT INTO drizzle.__drizzle_migrations (id, hash, created_at) VALUES ($1, $2, $3)', [
        last.id,
        last.hash,
        last.created_at,
      ]);
    }
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
  });

  test('/metrics counts requests by operation and outcome and shows queues and resident memory', async (a) => {
    const base = a.url.replace(/\/graphql$/, '');
    const metric = (text: string, line: string) => {
      const found = text.split('\n').find((l) => l.startsWith(line + ' '));
      return found === undefined ? undefined : Number(found.slice(line.length + 1));
    };
    const before = await (await fetch(`${base}/metrics`)).text();
    await a.gql('{ serverInfo { version } }');
    await a.gql('{ serverInfo { version } }');
    await a.gql('{ nearestFeatures(dictionary: "nope", index: 1) { cosine } }');
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/plain/);
    const text = await res.text();
    const ok = 'atlas_requests_total{operation="serverInfo",outcome="ok"}';
    assert.equal(metric(text, ok)! - (metric(before, ok) ?? 0), 2);
    assert.equal(metric(text, 'atlas_requests_total{operation="nearestFeatures",outcome="NOT_FOUND"}'), 1);
    assert.ok(metric(text, 'atlas_request_duration_seconds_count{operation="serverInfo"}')! >= 2);
    assert.ok(metric(text, 'atlas_request_duration_seconds_bucket{le="+Inf",operation="serverInfo"}')! >= 2);
    for (const queue of ['model', 'encoder', 'nearest']) {
      assert.equal(metric(text, `atlas_queue_depth{queue="${queue}"}`), 0);
      assert.notEqual(metric(text, `atlas_batches_total{queue="${queue}"}`), undefined);
    }
    const info = await a.gql('{ serverInfo { resident { bytes maxBytes hits misses evictions } } }');
    const r = info.data.serverInfo.resident;
    assert.equal(metric(text, 'atlas_resident_bytes'), r.bytes);
    assert.equal(metric(text, 'atlas_resident_max_bytes'), r.maxBytes);
    assert.equal(metric(text, 'atlas_resident_evictions_total'), r.evictions);
    assert.equal(metric(text, 'atlas_resident_lookups_total{result="miss"}'), r.misses);
    assert.ok(metric(text, 'atlas_process_resident_memory_bytes')! > 0);
  });

  test('CORS: a preflight from an allowed origin is answered, other origins get no CORS headers', async (a) => {
    const preflight = (origin: string) =>
      fetch(a.url, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type, authorization',
        },
      });
    const ok = await preflight(ORIGIN);
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), ORIGIN);
    assert.match(ok.headers.get('access-control-allow-methods')!, /POST/);
    assert.match(ok.headers.get('access-control-allow-headers')!, /authorization/);
    assert.match(ok.headers.get('vary')!, /origin/i);
    const other = await preflight('https://evil.example.com');
    assert.equal(other.headers.get('access-control-allow-origin'), null);
    const post = await fetch(a.url, {
      method: 'POST',
      headers: { origin: ORIGIN, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ serverInfo { version } }' }),
    });
    assert.equal(post.status, 200);
    assert.equal(post.headers.get('access-control-allow-origin'), ORIGIN);
  });
});
