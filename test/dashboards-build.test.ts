/**
 * `atlas build` against a plain loop: a tiny random GPT-2 (HF fixture), a standard and a TopK
 * dictionary imported through `atlas import`'s code path, and a JSON-lines corpus where each line
 * is one context. The test recomputes every statistic itself: activations from the engine's model
 * run of each context alone, codes from test/reference/sae.ts in float64, the logit lens from the
 * fixture weights; then checks what the build published (PGlite).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { openTestDatabase } from './helpers/atlas-server.js';
import { writeTinyGpt2, type HfFixture } from './helpers/hf-fixtures.js';
import { writeSaeFixture, tempDir, type SaeFixture } from './helpers/sae-fixtures.js';
import { rng } from './helpers/rng.js';
import { refForwardOne } from './reference/sae.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { EngineRegistry } from '../src/app/registry.js';
import { buildDashboards } from '../src/app/build-dashboards.js';
import { getQuantileExamples, getTopActivations, getLogitTokens, publishDashboards } from '../src/db/dashboards.js';
import { getFeatures } from '../src/db/features.js';
import { BANDS, bandRanges } from '../src/engine/dashboards/quantile-examples.js';
import type { Database } from '../src/db/client.js';
import { requireModel } from '../src/db/catalog.js';
import type { LoadedModel } from '../src/engine/model/types.js';

const HOOK = 'blocks.1.hook_resid_post';
const D_SAE = 48;
const WORDS = [
  'the',
  'cat',
  'sat',
  'on',
  'mat',
  'Lily',
  'saw',
  'a',
  'big',
  'red',
  'ball',
  'dog',
  'ran',
  'home',
  'sun',
  'was',
  'hot',
  'and',
  'blue',
  'sky',
  'tree',
  'park',
  'Tom',
  'Max',
];

/** Distinct short sentences, each within the 32-token context. */
function sentences(n: number, seed: number): string[] {
  const rand = rng(seed);
  const out = new Set<string>();
  while (out.size < n) {
    const len = 2 + Math.floor(rand() * 4);
    out.add(Array.from({ length: len }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(' '));
  }
  return [...out];
}

interface Plain {
  tokens: number;
  count: number[];
  max: number[];
  sum: number[];
  values: number[][];
  /** Per feature: [context, max, first argmax, per-token values] for contexts where it fires. */
  contexts: { ctx: number; max: number; pos: number; values: number[] }[][];
  l0: number;
}

async function plainLoop(model: LoadedModel, fx: SaeFixture, docs: number[][]): Promise<Plain> {
  const p: Plain = {
    tokens: 0,
    count: Array(D_SAE).fill(0),
    max: Array(D_SAE).fill(0),
    sum: Array(D_SAE).fill(0),
    values: Array.from({ length: D_SAE }, () => []),
    contexts: Array.from({ length: D_SAE }, () => []),
    l0: 0,
  };
  for (let c = 0; c < docs.length; c++) {
    // The model expects BOS: it leads the run, and its position is left out of everything.
    const acts = (await model.runHooks([[model.tokenizer.bosId!, ...docs[c]]], [HOOK])).get(HOOK)!;
    const d = acts.dims[2];
    const perToken = docs[c].map(
      (_, t) => refForwardOne(fx.config, fx.params, Array.from(acts.data.subarray((t + 1) * d, (t + 2) * d))).codes,
    );
    p.tokens += docs[c].length;
    for (let f = 0; f < D_SAE; f++) {
      const vals = perToken.map((codes) => codes[f]);
      for (const v of vals) {
        if (v > 0) {
          p.count[f]++;
          p.sum[f] += v;
          p.max[f] = Math.max(p.max[f], v);
          p.values[f].push(v);
          p.l0++;
        }
      }
      const m = Math.max(...vals);
      if (m > 0) p.contexts[f].push({ ctx: c, max: m, pos: vals.indexOf(m), values: vals });
    }
  }
  return p;
}

const close = (a: number, b: number, tol = 1e-4) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

describe('atlas build computes dashboards equal to a plain loop', () => {
  const files = tempDir('atlas-build-');
  let database: Database;
  let cleanup: () => Promise<void>;
  let registry: EngineRegistry;
  let model: HfFixture;
  let loaded: LoadedModel;
  const saes = new Map<string, SaeFixture>();
  let docs: number[][] = [];
  let texts: string[] = [];
  const corpus = join(files.dir, 'corpus.jsonl');

  before(async () => {
    mkdirSync(join(files.dir, 'gpt2'));
    model = writeTinyGpt2(join(files.dir, 'gpt2'));
    const opened = await openTestDatabase('pglite');
    assert.ok(!('skip' in opened));
    ({ database, cleanup } = opened);
    const dataDir = join(files.dir, 'data');
    mkdirSync(dataDir);
    await registerModel(database, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
    for (const [id, architecture, seed] of [
      ['sae-standard', 'standard', 3],
      ['sae-topk', 'topk', 4],
    ] as const) {
      const fx = writeSaeFixture(join(files.dir, id), {
        format: 'saelens',
        architecture,
        dIn: 32,
        dSae: D_SAE,
        k: 5,
        hookName: HOOK,
        seed,
      });
      saes.set(id, fx);
      await importDictionary(database, { path: fx.path, modelId: 'gpt2-tiny', id, dataDir });
    }
    registry = new EngineRegistry({ dataDir, device: 'cpu', threads: 1 }, database);
    loaded = (await registry.model(await requireModel(database, 'gpt2-tiny'))).value;
    assert.ok(loaded.tokenizer.bosId !== null);
    texts = sentences(60, 11);
    writeFileSync(corpus, texts.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    docs = texts.map((t) => loaded.tokenizer.encode(t, { bos: false }));
    assert.ok(
      docs.every((d) => d.length <= 31),
      `longest ${Math.max(...docs.map((d) => d.length))}`,
    );
  });
  after(async () => {
    await registry?.close();
    await cleanup?.();
    files.cleanup();
  });

  // The forward pass and encode on the main thread (the default) and in the encode thread: the same oracle.
  for (const forwardWorker of [false, true])
    it(`one build of both dictionaries${forwardWorker ? ' (encode thread)' : ''}: stats, examples, histograms, logit \
lens and labels match`, async () => {
      await database.query(
        "UPDATE features SET label = 'kept by a person', label_source = 'human' WHERE dictionary_id = 'sae-standard' " +
          'AND idx = 1',
      );
      const phases = new Set<string>();
      const result = await buildDashboards(database, registry, {
        modelId: 'gpt2-tiny',
        corpus,
        context: 32,
        batch: 7,
        forwardWorker,
        onProgress: (p) => phases.add(p.phase),
      });
      assert.deepEqual([...phases], ['corpus', 'logits', 'publish']);
      assert.equal(result.contexts, docs.length);
      assert.equal(
        result.tokens,
        docs.reduce((s, d) => s + d.length, 0),
      );

      for (const [id, fx] of saes) {
        const plain = await plainLoop(loaded, fx, docs);
        const keys = Array.from({ length: D_SAE }, (_, index) => ({ dictionaryId: id, index }));
        const rows = await getFeatures(database, keys);
        const tops = await getTopActivations(database, keys);
        const bands = await getQuantileExamples(database, keys);
        const [dict] = await database.query<{ stats: any }>('SELECT stats FROM dictionaries WHERE id = $1', [id]);
        let densitySum = 0;
        let sampledBands = 0;
        let dead = 0;
        for (let f = 0; f < D_SAE; f++) {
          const row = rows.get(`${id}:${f}`)!;
          const what = `${id} feature ${f}`;
          assert.ok(
            close(row.density!, plain.count[f] / plain.tokens, 1e-6),
            `${what} density ${row.density} vs ${plain.count[f] / plain.tokens}`,
          );
          densitySum += plain.count[f] / plain.tokens;
          if (plain.count[f] === 0) {
            dead++;
            assert.equal(row.maxActivation, 0);
            assert.equal(row.meanActivation, null);
            assert.deepEqual(tops.get(`${id}:${f}`) ?? [], []);
            continue;
          }
          assert.ok(close(row.maxActivation!, plain.max[f]), `${what} max`);
          assert.ok(close(row.meanActivation!, plain.sum[f] / plain.count[f]), `${what} mean`);
          // Histogram: the plain count of values per published bin.
          const { edges, counts } = row.histogram!;
          assert.equal(edges.length, counts.length + 1);
          const want = counts.map(() => 0);
          for (const v of plain.values[f]) {
            const i = edges.findIndex(
              (e, j) => j < counts.length && v >= e && (v < edges[j + 1] || j === counts.length - 1),
            );
            assert.ok(i >= 0, `${what}: ${v} outside [${edges[0]}, ${edges.at(-1)}]`);
            want[i]++;
          }
          assert.deepEqual(counts, want, `${what} histogram`);
          for (let j = 1; j < edges.length - 1; j++)
            assert.ok(close(edges[j + 1] / edges[j], 2 ** 0.25, 1e-9), 'log-spaced edges');
          // Top examples: the 20 strongest contexts, ties to the earlier one, with every token's value.
          const wantTop = [...plain.contexts[f]].sort((a, b) => b.max - a.max || a.ctx - b.ctx).slice(0, 20);
          const gotTop = tops.get(`${id}:${f}`)!;
          assert.equal(gotTop.length, wantTop.length, `${what} top count`);
          gotTop.forEach((e, r) => {
            const w = wantTop[r];
            assert.deepEqual(e.tokenIds, docs[w.ctx], `${what} top ${r} context`);
            assert.equal(e.tokens.join(''), texts[w.ctx]);
            assert.equal(e.maxPosition, w.pos);
            assert.ok(close(e.maxValue, w.max));
            e.values.forEach((v, t) =>
              assert.ok(close(v, w.values[t]), `${what} top ${r} token ${t}: ${v} vs ${w.values[t]}`),
            );
          });
          // Quantile bands: right ranges; a band with at most 5 contexts is sampled whole.
          const ranges = bandRanges(row.maxActivation!);
          const got = bands.get(`${id}:${f}`) ?? [];
          for (const r of ranges) {
            const inBand = plain.contexts[f].filter((c) => c.max > r.lower && c.max <= r.upper);
            if (inBand.length > 5) sampledBands++;
            const sample = got.filter((e) => e.band === r.band);
            assert.ok(sample.length <= 5);
            for (const e of sample) assert.ok(e.maxValue > r.lower && e.maxValue <= r.upper, `${what} band ${r.band}`);
            if (inBand.length <= 5) assert.equal(sample.length, inBand.length, `${what} band ${r.band} size`);
            else assert.equal(sample.length, 5);
          }
          assert.equal(ranges.length, BANDS);
          // Automatic label from the top examples' strongest tokens (feature 1 of sae-standard keeps its own).
          if (id === 'sae-standard' && f === 1) {
            assert.equal(row.label, 'kept by a person');
            assert.equal(row.labelSource, 'human');
          } else {
            const tally = new Map<string, { n: number; best: number }>();
            for (const w of wantTop) {
              const t = loaded.tokenizer.tokenText(docs[w.ctx][w.pos]);
              const s = tally.get(t) ?? { n: 0, best: 0 };
              tally.set(t, { n: s.n + 1, best: Math.max(s.best, w.max) });
            }
            const first = [...tally].sort((a, b) => b[1].n - a[1].n || b[1].best - a[1].best)[0][0];
            assert.equal(row.labelSource, 'auto');
            assert.ok(
              row.label!.startsWith(JSON.stringify(first)),
              `${what} label ${row.label} should start with ${JSON.stringify(first)}`,
            );
          }
        }
        // The corpus is large enough that heaps overflow and bands are sampled, not kept whole.
        assert.ok(
          plain.contexts.some((c) => c.length > 20),
          `${id}: no feature fires in more than 20 contexts`,
        );
        assert.ok(sampledBands > 0, `${id}: no band holds more than 5 contexts`);
        // Dictionary statistics: mean L0 is the sum of densities.
        const s = dict.stats;
        assert.equal(s.tokens, plain.tokens);
        assert.ok(close(s.l0, plain.l0 / plain.tokens, 1e-9));
        assert.ok(close(s.l0, densitySum, 1e-9));
        assert.ok(close(s.deadFraction, dead / D_SAE, 1e-12));
        assert.ok(close(s.explainedVariance, 1 - s.normalizedMse, 1e-12));
        assert.ok(s.normalizedMse > 0);
        if (id === 'sae-topk') assert.ok(s.l0 <= 5 + 1e-9);
      }
    });

  it('the logit lens ranks tokens as a plain product of decoder, final LayerNorm weight and W_U', async () => {
    const fx = saes.get('sae-standard')!;
    const keys = [0, 7, 30].map((index) => ({ dictionaryId: 'sae-standard', index }));
    const got = await getLogitTokens(database, keys);
    const g = model.weights.tensor('ln_final.w');
    const WU = model.weights.tensor('unembed.W_U');
    const vocab = WU.length / 32;
    for (const { index } of keys) {
      const w = Array.from({ length: vocab }, (_, v) => {
        let s = 0;
        for (let i = 0; i < 32; i++) s += fx.params.W_dec[index * 32 + i] * g[i] * WU[i * vocab + v];
        return { v, s };
      });
      const pos = [...w].sort((a, b) => b.s - a.s).slice(0, 10);
      const neg = [...w].sort((a, b) => a.s - b.s).slice(0, 10);
      const l = got.get(`sae-standard:${index}`)!;
      assert.deepEqual(
        l.positive.map((t) => t.tokenId),
        pos.map((t) => t.v),
      );
      assert.deepEqual(
        l.negative.map((t) => t.tokenId),
        neg.map((t) => t.v),
      );
      l.positive.forEach((t, i) => assert.ok(close(t.weight, pos[i].s)));
      assert.equal(l.positive[0].token, loaded.tokenizer.tokenText(pos[0].v));
    }
  });

  it('an aborted build and a publish that fails midway leave the previous dashboards intact', async () => {
    const snapshot = async () => ({
      stats: await database.query('SELECT id, stats FROM dictionaries ORDER BY id'),
      features: await database.query(
        'SELECT dictionary_id, idx, density, max_activation, histogram, label FROM features ORDER BY dictionary_id, ' +
          'idx',
      ),
      examples: await database.query(
        'SELECT count(*)::int AS n, sum(m)::float8 AS s FROM feature_examples, unnest(max_values) AS m',
      ),
      contexts: await database.query(
        'SELECT count(*)::int AS n, sum(length(tokens::text) + cardinality(token_ids))::int AS s FROM example_contexts',
      ),
      logits: await database.query(
        'SELECT count(*)::int AS n, sum(w)::float8 AS s, sum(i)::float8 AS ids FROM feature_logits, ' +
          'unnest(positive_weights || negative_weights, positive_token_ids || negative_token_ids) AS u(w, i)',
      ),
    });
    // A published build to protect, whichever tests ran before this one.
    await buildDashboards(database, registry, { dictionaryIds: ['sae-standard'], corpus, context: 8, batch: 4 });
    const before = await snapshot();
    assert.ok((before.examples[0] as any).n > 0);
    const abort = new AbortController();
    await assert.rejects(
      buildDashboards(database, registry, {
        dictionaryIds: ['sae-standard'],
        corpus,
        context: 8,
        batch: 2,
        signal: abort.signal,
        onProgress: () => abort.abort(),
      }),
      (e: Error) => e.name === 'AbortError',
    );
    assert.deepEqual(await snapshot(), before);

    let n = 0;
    function* failing() {
      for (let i = 0; i < 5000; i++) {
        if (++n > 2500) throw new Error('disk full (injected)');
        yield {
          featureIdx: i,
          kind: 'top' as const,
          examples: [{ context: 0, band: null, positions: [0], values: [1], maxValue: 1, maxPosition: 0 }],
        };
      }
    }
    await assert.rejects(
      publishDashboards(database, [
        {
          dictionaryId: 'sae-standard',
          stats: {
            tokens: 1,
            l0: 1,
            deadFraction: 0,
            normalizedMse: 1,
            explainedVariance: 0,
            corpus: 'x',
            builtAt: 'now',
          },
          features: Array.from({ length: D_SAE }, (_, idx) => ({
            idx,
            density: 1,
            maxActivation: 9,
            meanActivation: 9,
            histogram: { edges: [1, 2], counts: [1] },
            label: 'broken',
          })),
          contexts: [{ id: 0, tokens: ['x'], tokenIds: [1] }],
          examples: failing(),
          logits: [],
        },
      ]),
      /disk full/,
    );
    assert.deepEqual(await snapshot(), before);
  });

  it('refuses bad options with coded errors', async () => {
    const cases: [Parameters<typeof buildDashboards>[2], string][] = [
      [{ dictionaryIds: ['nope'], corpus }, 'NOT_FOUND'],
      [{ dictionaryIds: ['sae-topk'], corpus, context: 33 }, 'BAD_USER_INPUT'],
      [{ dictionaryIds: ['sae-topk'], corpus, tokens: 0 }, 'BAD_USER_INPUT'],
      [{ dictionaryIds: ['sae-topk'], corpus: join(files.dir, 'missing.txt') }, 'BAD_FILE'],
    ];
    for (const [opts, code] of cases)
      await assert.rejects(
        buildDashboards(database, registry, opts),
        (e: any) => e.code === code,
        JSON.stringify(opts),
      );
    const bad = join(files.dir, 'bad.jsonl');
    writeFileSync(bad, '{"text": "fine"}\n{not json\n');
    await assert.rejects(
      buildDashboards(database, registry, { dictionaryIds: ['sae-topk'], corpus: bad }),
      (e: any) => e.code === 'BAD_FILE' && /line 2/.test(e.message),
    );
  });
});
