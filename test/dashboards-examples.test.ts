/**
 * The top examples of `atlas build`'s accumulator against a brute-force oracle over the same codes:
 * per feature, the TOP_EXAMPLES contexts with the largest activation (ties to the earlier context)
 * and each one's per-token values, over planted codes (test/helpers/planted-build.ts), whose build
 * compacts its example buffers after every context, so the check covers examples moved by compaction too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TOP_EXAMPLES } from '../src/engine/dashboards/top-examples.js';
import { PLANTED, plantedBuild } from './helpers/planted-build.js';

const { D_SAE, LEN } = PLANTED;

test('top examples equal the brute-force top contexts per feature, through compactions', async () => {
  const { codes, dashboard: dash } = await plantedBuild(5);
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
