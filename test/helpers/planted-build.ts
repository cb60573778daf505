/**
 * A DictionaryBuild (src/engine/dashboards/dictionary-build.ts) over planted codes, for oracles that
 * recompute examples from the codes themselves: BATCHES batches of BATCH contexts of a BOS and LEN
 * tokens, context seq's tokens 100 + seq · LEN + position; per position K distinct features of D_SAE
 * with values on a coarse grid (so equal maxima, tied to the earlier context, occur). The accumulator
 * compacts its example buffers after every context (threshold 0), so examples moved by compaction are
 * covered too. The encoder ignores its input and hands out the planted codes in order.
 */
import { mulberry32 } from '../../src/engine/random.js';
import { DictionaryBuild } from '../../src/engine/dashboards/dictionary-build.js';
import type { SaeEncoder, SaeEncoding } from '../../src/engine/sae/encoder.js';
import type { LoadedModel } from '../../src/engine/model/types.js';

export const PLANTED = { D_SAE: 12, D_IN: 4, K: 3, LEN: 6, BATCH: 5, BATCHES: 12 };

/** codes[seq][position]: the planted features, highest value first. */
export type PlantedCodes = { f: number; v: number }[][][];

export async function plantedBuild(seed: number) {
  const { D_SAE, D_IN, K, LEN, BATCH, BATCHES } = PLANTED;
  const rand = mulberry32(seed);
  const codes: PlantedCodes = [];
  for (let s = 0; s < BATCH * BATCHES; s++) {
    codes.push(
      Array.from({ length: LEN }, () => {
        const fs = new Set<number>();
        while (fs.size < K) fs.add(Math.floor(rand() * D_SAE));
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
        codes[next + Math.floor(r / LEN)][r % LEN].forEach((c, j) => {
          indices[r * K + j] = c.f;
          values[r * K + j] = c.v;
        });
      }
      next += n / LEN;
      return { width: K, indices, values, l0: new Int32Array(n).fill(K), xHat: new Float32Array(x.length) };
    },
  } as unknown as SaeEncoder;
  const dict = { id: 'd', dIn: D_IN, dSae: D_SAE, hookPoint: 'h', hookPointOut: null, weightsPath: null };
  const build = new DictionaryBuild({ ...dict, prependBos: true }, encoder, 0);
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
  const dashboard = await build.finish(model, { corpus: 'c', builtAt: 'now', session: { device: 'cpu', threads: 1 } });
  return { codes, dashboard };
}
