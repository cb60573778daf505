/**
 * SAE encode: SaeEncoder.encode (what encodeVectors runs) against torch topk(relu(x W_enc + b_enc), k),
 * for n = 1 … 1024 vectors, codes only and with the reconstruction Σ v W_dec[i] + b_dec. TopK
 * --dsae × --din (default 24576 × 768, GPT-2 small's width), k = --k, random weights.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SaeEncoder } from '../../src/engine/sae/encoder.js';
import type { SaeParams } from '../../src/engine/sae/types.js';
import { arg, benchSaeConfig, uniform } from '../util.js';
import { checkTopIndices, relDiff, type Case, type Path } from './common.js';

const dIn = Number(arg('din', '768'));
const dSae = Number(arg('dsae', '24576'));
const k = Number(arg('k', '32'));
const SIZES = [1, 16, 64, 256, 1024];

export const saePath: Path = {
  name: 'sae',
  describe: `SAE encode: TopK ${dSae} x ${dIn}, k = ${k}, random weights; SaeEncoder.encode vs torch`,
  async setup({ torch, dir, threads, iters }) {
    const w = 1 / Math.sqrt(dIn);
    const params: SaeParams = {
      W_enc: uniform(dIn * dSae, w, 1),
      b_enc: uniform(dSae, 0.1, 2),
      W_dec: uniform(dSae * dIn, w, 3),
      b_dec: uniform(dIn, 0.1, 4),
    };
    for (const name of ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const)
      writeFileSync(join(dir, `${name}.bin`), params[name]!);
    await torch.call({ op: 'sae_load', dir, dIn, dSae, k });
    // torch's formula exactly: no normalization, no b_dec subtracted from the input.
    const cfg = benchSaeConfig('topk', dIn, dSae, k, false);
    const encoder = await SaeEncoder.create(cfg, params, { session: { device: 'cpu', threads } });
    const cases: Case[] = [];
    for (const reconstruct of [false, true]) {
      for (const n of SIZES) {
        const x = uniform(n * dIn, 1, 100 + n);
        const xPath = join(dir, `x${n}.bin`);
        writeFileSync(xPath, x);
        const run = () => encoder.encode(x, n, k, { reconstruct });
        const cmd = { op: 'sae_encode', x: xPath, n, reconstruct };
        cases.push({
          path: reconstruct ? 'SAE encode + reconstruction' : 'SAE encode (codes)',
          size: `${n} vectors`,
          atlas: run,
          torch: () => torch.times({ ...cmd, iters }),
          check: async () => {
            const read = await torch.outputs(dir, cmd);
            const e = await run();
            const values = new Float32Array(read('values'));
            const what = `${reconstruct ? 'encode+decode' : 'encode'} n=${n}`;
            let worst = relDiff(e.values, values, `${what} values`);
            checkTopIndices(e.indices, new Int32Array(read('indices')), values, e.width, what);
            if (reconstruct)
              worst = Math.max(worst, relDiff(e.xHat!, new Float32Array(read('x_hat')), `${what} x_hat`));
            return worst;
          },
        });
      }
    }
    return { cases, close: () => encoder.close() };
  },
};
