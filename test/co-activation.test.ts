/**
 * Co-activation of feature families. The counter (src/engine/dashboards/co-activation.ts) against
 * planted codes: a parent firing on known tokens, children overlapping it on known numbers of them,
 * spread over batches of different widths. Then `atlas build` of a narrow and a wide dictionary at
 * one hook of a tiny GPT-2: the build compares them (no comparison stored yet), counts, publishes,
 * and Feature.family reports coActivation equal to a plain float64 loop — codes from
 * test/reference/sae.ts per token, each child's parent by float64 decoder cosine.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { CoActivation, type TokenCodes } from '../src/engine/dashboards/co-activation.js';
import { startTestAtlas, useTestAtlas } from './helpers/atlas-server.js';
import { writeTinyGpt2 } from './helpers/hf-fixtures.js';
import { writeSaeFixture, tempDir, type SaeFixture } from './helpers/sae-fixtures.js';
import { rng } from './helpers/rng.js';
import { refForwardOne } from './reference/sae.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { EngineRegistry } from '../src/app/registry.js';
import { buildDashboards } from '../src/app/build-dashboards.js';
import { requireModel } from '../src/db/catalog.js';

/** Codes of tokens given as lists of active features (values descending, 0-padded to k). */
function codes(tokens: number[][], k: number): TokenCodes {
  const indices = new Int32Array(tokens.length * k);
  const values = new Float32Array(tokens.length * k);
  tokens.forEach((fs, r) =>
    fs.forEach((f, j) => {
      indices[r * k + j] = f;
      values[r * k + j] = 10 - j;
    }),
  );
  return { n: tokens.length, k, indices, values };
}

describe('co-activation counter', () => {
  it('counts planted overlaps across batches', () => {
    // Parent 2 fires on tokens 0..29; child 5 on 0..11 (12 shared), child 7 on 25..39 (5 shared),
    // child 9 never with it; parent 0 fires on tokens 30..39 and shares 10 with child 7.
    const T = 40;
    const parentTok: number[][] = [];
    const childTok: number[][] = [];
    for (let t = 0; t < T; t++) {
      parentTok.push(t < 30 ? [2, 1] : [0]);
      const c: number[] = [3];
      if (t < 12) c.push(5);
      if (t >= 25) c.push(7);
      if (t >= 30) c.push(9);
      childTok.push(c);
    }
    // Pairs: (2,5) (2,7) (2,9) (0,7) (1,3) (3,3): parent 3 never fires.
    const pairs = { parents: Int32Array.from([2, 2, 2, 0, 1, 3]), children: Int32Array.from([5, 7, 9, 7, 3, 3]) };
    const co = new CoActivation(pairs, 4, 10);
    // Batches of 7 and 33 tokens with different slot widths.
    co.add(codes(parentTok.slice(0, 7), 3), codes(childTok.slice(0, 7), 4));
    co.add(codes(parentTok.slice(7), 2), codes(childTok.slice(7), 6));
    const { both, parent } = co.counts();
    assert.deepEqual(Array.from(both), [12, 5, 0, 10, 30, 0]);
    assert.deepEqual(Array.from(parent), [30, 30, 30, 10, 30, 0]);
  });

  it('equals a naive set count on random codes', () => {
    const rand = rng(5);
    const P = 12;
    const C = 30;
    const draw = (width: number, max: number) => {
      const s = new Set<number>();
      const m = Math.floor(rand() * (max + 1));
      while (s.size < m) s.add(Math.floor(rand() * width));
      return [...s];
    };
    const tokens = Array.from({ length: 500 }, () => ({ p: draw(P, 4), c: draw(C, 6) }));
    const parents = Int32Array.from({ length: C }, () => Math.floor(rand() * P));
    const children = Int32Array.from({ length: C }, (_, i) => i);
    const co = new CoActivation({ parents, children }, P, C);
    for (let from = 0; from < tokens.length; from += 64) {
      const b = tokens.slice(from, from + 64);
      co.add(
        codes(
          b.map((t) => t.p),
          4,
        ),
        codes(
          b.map((t) => t.c),
          6,
        ),
      );
    }
    const { both, parent } = co.counts();
    for (let i = 0; i < C; i++) {
      const wantBoth = tokens.filter((t) => t.p.includes(parents[i]) && t.c.includes(children[i])).length;
      const wantParent = tokens.filter((t) => t.p.includes(parents[i])).length;
      assert.equal(both[i], wantBoth, `pair ${i}`);
      assert.equal(parent[i], wantParent, `pair ${i}`);
    }
  });
});

const HOOK = 'blocks.1.hook_resid_post';
const NARROW = 12;
const WIDE = 36;
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
  'hot',
  'blue',
  'sky',
];

describe('atlas build publishes the co-activation of feature families', () => {
  const files = tempDir('atlas-coact-');
  const saes = new Map<string, SaeFixture>();
  const docs: number[][] = [];
  const acts: number[][][] = [];
  const phases = new Set<string>();
  const test = useTestAtlas(
    'co-activation build',
    () =>
      startTestAtlas('pglite', async (database, dataDir) => {
        mkdirSync(join(files.dir, 'gpt2'));
        const model = writeTinyGpt2(join(files.dir, 'gpt2'));
        await registerModel(database, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
        for (const [id, dSae, seed] of [
          ['narrow', NARROW, 3],
          ['wide', WIDE, 4],
        ] as const) {
          const fx = writeSaeFixture(join(files.dir, id), {
            format: 'saelens',
            architecture: 'topk',
            dIn: 32,
            dSae,
            k: 4,
            hookName: HOOK,
            seed,
          });
          saes.set(id, fx);
          await importDictionary(database, { path: fx.path, modelId: 'gpt2-tiny', id, dataDir });
        }
        const registry = new EngineRegistry({ dataDir, device: 'cpu', threads: 1 }, database);
        try {
          const loaded = (await registry.model(await requireModel(database, 'gpt2-tiny'))).value;
          const rand = rng(9);
          const texts = Array.from({ length: 30 }, () =>
            Array.from({ length: 3 + Math.floor(rand() * 5) }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(
              ' ',
            ),
          );
          const corpus = join(files.dir, 'corpus.jsonl');
          writeFileSync(corpus, texts.map((text) => JSON.stringify({ text })).join('\n') + '\n');
          for (const t of texts) {
            const ids = loaded.tokenizer.encode(t, { bos: false });
            assert.ok(ids.length <= 31, 'each line is one context');
            docs.push(ids);
            const a = (await loaded.runHooks([[loaded.tokenizer.bosId!, ...ids]], [HOOK])).get(HOOK)!;
            acts.push(ids.map((_, p) => Array.from(a.data.subarray((p + 1) * 32, (p + 2) * 32))));
          }
          await buildDashboards(database, registry, {
            dictionaryIds: ['narrow', 'wide'],
            corpus,
            context: 32,
            batch: 4,
            onProgress: (p) => phases.add(p.phase),
          });
        } finally {
          await registry.close();
        }
      }),
    () => files.cleanup(),
  );

  test('family entries carry both-fire / parent-fire counts of the build', async (a) => {
    assert.ok(phases.has('compare'), 'the build compared the two dictionaries first');
    const narrow = saes.get('narrow')!;
    const wide = saes.get('wide')!;
    const d = 32;
    // Each child's parent: the narrow feature of highest float64 decoder cosine.
    const row = (w: Float32Array, i: number) => Array.from(w.subarray(i * d, (i + 1) * d));
    const cos = (x: number[], y: number[]) => {
      let xy = 0,
        xx = 0,
        yy = 0;
      for (let j = 0; j < d; j++) {
        xy += x[j] * y[j];
        xx += x[j] * x[j];
        yy += y[j] * y[j];
      }
      return xy / Math.sqrt(xx * yy);
    };
    const parentOf = Array.from({ length: WIDE }, (_, c) => {
      let best = 0;
      for (let p = 1; p < NARROW; p++)
        if (
          cos(row(wide.params.W_dec, c), row(narrow.params.W_dec, p)) >
          cos(row(wide.params.W_dec, c), row(narrow.params.W_dec, best))
        )
          best = p;
      return best;
    });
    const fires = (fx: SaeFixture) =>
      acts.flat().map((x) => refForwardOne(fx.config, fx.params, x).codes.map((v) => v > 0));
    const fp = fires(narrow);
    const fc = fires(wide);
    const q =
      `query($i: Int!) { feature(dictionary: "narrow", index: $i) { family(dictionary: "wide") { feature { ` +
      `index } match { index } coActivation coFiringTokens } } }`;
    let checked = 0;
    for (let p = 0; p < NARROW; p++) {
      const r = await a.gql(q, { i: p });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      const family = r.data.feature.family as {
        feature: { index: number };
        coActivation: number | null;
        coFiringTokens: number | null;
      }[];
      const want = parentOf.flatMap((pp, c) => (pp === p ? [c] : []));
      assert.deepEqual(
        family.map((m) => m.feature.index).sort((x, y) => x - y),
        want,
        `children of ${p}`,
      );
      const parentTokens = fp.filter((t) => t[p]).length;
      for (const m of family) {
        const bothTokens = fp.filter((t, i) => t[p] && fc[i][m.feature.index]).length;
        assert.equal(m.coFiringTokens, bothTokens, `parent ${p} child ${m.feature.index}`);
        if (parentTokens === 0) assert.equal(m.coActivation, null);
        else assert.ok(Math.abs(m.coActivation! - bothTokens / parentTokens) < 1e-12);
        if (bothTokens > 0) checked++;
      }
    }
    assert.ok(checked >= 5, `only ${checked} pairs co-fire`);
  });

  test('related entries and pairs never built together have no co-activation', async (a) => {
    const r = await a.gql(
      `{ feature(dictionary: "wide", index: 0) { related { coActivation } family(dictionary: "narrow") { ` +
        `coActivation } } }`,
    );
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    assert.ok(r.data.feature.related.length > 0);
    for (const m of [...r.data.feature.related, ...r.data.feature.family]) assert.equal(m.coActivation, null);
  });
});
