/**
 * Seeded random llama weights in the TransformerWeights layout, for tests and benchmarks that need a
 * model of a chosen shape without a checkpoint on disk.
 */
import type { TransformerConfig, TransformerWeights } from '../../src/engine/model/types.js';

import { rng as seededRandom } from './rng.js';

/** The shared seeded PRNG, under the name the model tests use. */
export { seededRandom };

export function llamaConfig(overrides: Partial<TransformerConfig> = {}): TransformerConfig {
  return {
    architecture: 'llama',
    dModel: 32,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    dHead: 8,
    dMlp: 48,
    vocabSize: 64,
    contextLength: 32,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeStyle: 'interleaved',
    activation: 'silu',
    tiedEmbeddings: false,
    ...overrides,
  };
}

/** Uniform weights scaled by 1/sqrt(fan-in) (norm weights around 1), so activations stay O(1). */
export function randomLlamaWeights(config: TransformerConfig, seed = 1): TransformerWeights {
  const rand = seededRandom(seed);
  const { dModel: d, nHeads, nKvHeads, dHead, dMlp, vocabSize } = config;
  const shapes = new Map<string, number[]>([
    ['embed.W_E', [vocabSize, d]],
    ['ln_final.w', [d]],
  ]);
  for (let l = 0; l < config.nLayers; l++) {
    const b = `blocks.${l}`;
    shapes.set(`${b}.ln1.w`, [d]);
    shapes.set(`${b}.attn.W_Q`, [d, nHeads * dHead]);
    shapes.set(`${b}.attn.W_K`, [d, nKvHeads * dHead]);
    shapes.set(`${b}.attn.W_V`, [d, nKvHeads * dHead]);
    shapes.set(`${b}.attn.W_O`, [nHeads * dHead, d]);
    shapes.set(`${b}.ln2.w`, [d]);
    shapes.set(`${b}.mlp.W_gate`, [d, dMlp]);
    shapes.set(`${b}.mlp.W_in`, [d, dMlp]);
    shapes.set(`${b}.mlp.W_out`, [dMlp, d]);
  }
  if (!config.tiedEmbeddings) shapes.set('unembed.W_U', [d, vocabSize]);

  const tensors = new Map<string, Float32Array>();
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (shape.length === 1) for (let i = 0; i < n; i++) data[i] = 0.5 + rand();
    else {
      const s = Math.sqrt(3 / shape[0]);
      for (let i = 0; i < n; i++) data[i] = (2 * rand() - 1) * s;
    }
    tensors.set(name, data);
  }
  if (config.tiedEmbeddings) {
    const W_E = tensors.get('embed.W_E')!;
    const W_U = new Float32Array(W_E.length);
    for (let v = 0; v < vocabSize; v++) for (let i = 0; i < d; i++) W_U[i * vocabSize + v] = W_E[v * d + i];
    tensors.set('unembed.W_U', W_U);
  }
  return {
    config,
    has: (name) => tensors.has(name),
    tensor(name) {
      const t = tensors.get(name);
      if (!t) throw new Error(`random weights have no tensor ${name}`);
      return t;
    },
  };
}
