/**
 * The top examples of `atlas build`'s accumulator against a brute-force oracle over the same codes:
 * per feature, the TOP_EXAMPLES contexts with the largest activation (ties to the earlier context)
 * and each one's per-token values. The accumulator compacts its example buffers after every context
 * here, so the check covers examples moved by compaction too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../src/engine/random.js';
import { DictionaryBuild } from '../src/engine/dashboards/dictionary-build.js';
import { TOP_EXAMPLES } from '../src/engine/dashboards/top-examples.js';
import type { SaeEncoder, SaeEncoding } from '../src/engine/sae/encoder.js';
import type { LoadedModel } from '../src/engine/model/types.js';

const D_SAE = 12;
const D_IN = 4;
const K = 3;
const LEN = 6; // tokens per context after BOS
const BATCH = 5;
const BATCHES = 12;

test('top examples equal the brute-force top contexts per feature, through compactions', async () => {
  const rand = mulberry32(5);
  // codes[seq][p]: K distinct features with positive values, sorted highest first.
  const codes: { f: number; v: number }[][][] = [];
  for (let s = 0; s < BATCH * BATCHES; s++) {
    codes.push(
      Array.from({ length: LEN }, () => {
        const fs = new Set<number>();
        while (fs.size < K) fs.add(Math.floor(rand() * D_SAE));
        // Values on a coarse grid, so equal maxima (ties to the earlier context) occur.
        return [...fs].map((f) => ({ f, v: Math.ceil(rand() * 8) / 4 })).sort((a, b) => b.v - a.v);
      }),
    );
  }
  let next = 0;
  const encoder = {
    config: { architecture: 'topk', k: K, dSae: D_SAE, dIn: D_IN },
    encode: async (x: Float32Array, n: number): Promise<SaeEncoding> => {
      const indices = new Int32Array(n * K);
      const values = new Float32Array(n * K);
      for (let r = 0; r < n; r++) {
        const row = codes[next + Math.floor(r / LEN)][r % LEN];
        row.forEach((c, j) => {
          indices[r * K + j] = c.f;
          values[r * K + j] = c.v;
        });
      }
      next += n / LEN;
      return { width: K, indices, values, l0: new Int32Array(n).fill(K), xHat: new Float32Array(x.length) };
    },
  } as unknown as SaeEncoder;
  const dict = {
    id: 'd',
    dIn: D_IN,
    dSae: D_SAE,
    hookPoint: 'h',
    hookPointOut: null,
    weightsPath: null,
    prependBos: true,
  };
  const build = new DictionaryBuild(dict, encoder, 0);
  for (let b = 0; b < BATCHES; b++) {
    const contexts = Array.from({ length: BATCH }, (_, i) => {
      const seq = b * BATCH + i;
      return { ids: [0, ...Array.from({ length: LEN }, (_, p) => 100 + seq * LEN + p)], bos: true, seq };
    });
    const data = Float32Array.from({ length: BATCH * (LEN + 1) * D_IN }, () => rand());
    await build.consume(contexts, { dims: [BATCH, LEN + 1, D_IN], data });
  }
  const model = {
    unembedding: () => null,
    tokenizer: { tokenText: (id: number) => `t${id}` },
  } as unknown as LoadedModel;
  const dash = await build.finish(model, { corpus: 'c', builtAt: 'now', session: { device: 'cpu', threads: 1 } });
  // Stored sparse, against contexts listed once: densified here as the catalog's readers do.
  const contexts = new Map([...dash.contexts].map((c) => [c.id, Array.from(c.tokenIds)]));
  const got = [...dash.examples]
    .filter((fe) => fe.kind === 'top')
    .flatMap((fe) =>
      fe.examples.map((e, rank) => {
        const tokenIds = contexts.get(e.context)!;
        const values = new Array<number>(tokenIds.length).fill(0);
        Array.from(e.positions).forEach((p, j) => (values[p] = e.values[j]));
        return { featureIdx: fe.featureIdx, rank, tokenIds, values, maxValue: e.maxValue, maxPosition: e.maxPosition };
      }),
    );

  const want: { f: number; seq: number; values: number[]; max: number; at: number }[] = [];
  for (let f = 0; f < D_SAE; f++) {
    const ctx = codes
      .map((c, seq) => {
        const values = c.map((row) => row.find((x) => x.f === f)?.v ?? 0);
        const max = Math.max(...values);
        return { f, seq, values, max, at: values.indexOf(max) };
      })
      .filter((c) => c.max > 0)
      .sort((a, b) => b.max - a.max || a.seq - b.seq);
    want.push(...ctx.slice(0, TOP_EXAMPLES));
  }
  assert.equal(got.length, want.length);
  got.forEach((g, i) => {
    const w = want[i];
    const what = `feature ${w.f} rank ${g.rank}`;
    assert.equal(g.featureIdx, w.f, what);
    assert.deepEqual(
      g.tokenIds,
      Array.from({ length: LEN }, (_, p) => 100 + w.seq * LEN + p),
      `${what} tokens`,
    );
    assert.deepEqual(g.values, w.values, `${what} values`);
    assert.equal(g.maxValue, w.max, `${what} max`);
    assert.equal(g.maxPosition, w.at, `${what} max position`);
  });
});
