/**
 * The llama graph on tiny seeded random weights (no checkpoint needed): both RoPE styles, grouped,
 * multi-head and multi-query attention, tied and untied embeddings against the reference; the
 * external-data path; KV-cached decoding in chunks against a full forward pass; the on-disk cache
 * under concurrent builds; run.c's RNG and sampler.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sampler, XorShiftRng } from '../src/engine/generate.js';
import type { ModelInfo, TransformerConfig } from '../src/engine/model/types.js';
import { hookInfo } from '../src/engine/model/hooks.js';
import { buildLlamaGraph } from '../src/engine/onnx/llama-graph.js';
import { writeOnnxModel } from '../src/engine/onnx/write-model.js';
import { KvDecoder } from '../src/engine/runtime/decoder.js';
import { HookRunner } from '../src/engine/runtime/forward.js';
import { cachedEntry, MODEL_FILE } from '../src/engine/runtime/onnx-cache.js';
import { relError } from './helpers/graph-runner.js';
import { llamaConfig, randomLlamaWeights, seededRandom } from './helpers/random-weights.js';
import { ReferenceLlama } from './reference/llama.js';

function infoOf(c: TransformerConfig): ModelInfo {
  return {
    architecture: 'llama',
    format: 'llama2c',
    dModel: c.dModel,
    nLayers: c.nLayers,
    vocabSize: c.vocabSize,
    contextLength: c.contextLength,
    prependBos: true,
    ...hookInfo(c),
  };
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-llama-graph-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function randomTokens(n: number, vocab: number, seed: number): number[] {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => Math.floor(r() * vocab));
}

const VARIANTS: Array<[string, Partial<TransformerConfig>]> = [
  ['interleaved RoPE, grouped-query attention, untied', {}],
  ['half RoPE (Hugging Face layout), tied embeddings', { ropeStyle: 'half', tiedEmbeddings: true, ropeTheta: 500000 }],
  ['multi-head attention (n_kv_heads = n_heads)', { nKvHeads: 4 }],
  ['multi-query attention (one KV head)', { nKvHeads: 1, nLayers: 3 }],
];

for (const [name, overrides] of VARIANTS) {
  test(`random llama, ${name}: every hook of a padded batch matches the reference`, () =>
    withDir(async (dir) => {
      const w = randomLlamaWeights(llamaConfig(overrides), 11);
      writeOnnxModel(buildLlamaGraph(w), join(dir, MODEL_FILE));
      const info = infoOf(w.config);
      const runner = await HookRunner.open({ folder: dir, info, settings: { device: 'cpu', threads: 1 } });
      try {
        const batch = [randomTokens(20, 64, 1), randomTokens(7, 64, 2)];
        const got = await runner.run(batch, info.hookPoints);
        const ref = new ReferenceLlama(w);
        batch.forEach((seq, b) => {
          const want = ref.run(seq);
          for (const hook of info.hookPoints) {
            const { dims, data } = got.get(hook)!;
            const err = relError(
              data.slice(b * dims[1] * dims[2], (b * dims[1] + seq.length) * dims[2]),
              want.hooks.get(hook)!,
            );
            assert.ok(err < 1e-4, `sequence ${b}, ${hook}: relative error ${err}`);
          }
        });
      } finally {
        await runner.close();
      }
    }));
}

test('above the threshold the weights go to external data, with the same results', () =>
  withDir(async (dir) => {
    const w = randomLlamaWeights(llamaConfig(), 5);
    const info = infoOf(w.config);
    const inline = join(dir, 'inline');
    const external = join(dir, 'external');
    for (const d of [inline, external]) rmSync(d, { recursive: true, force: true });
    await cachedEntry(inline, 'k', (f) => void writeOnnxModel(buildLlamaGraph(w), join(f, MODEL_FILE)));
    let flagged = false;
    await cachedEntry(
      external,
      'k',
      (f) =>
        void (flagged = writeOnnxModel(buildLlamaGraph(w), join(f, MODEL_FILE), {
          externalDataThresholdBytes: 0,
        }).externalData),
    );
    assert.ok(flagged);
    const extFolder = join(external, 'onnx', 'k');
    assert.ok(existsSync(join(extFolder, 'model.onnx.data')));
    assert.ok(
      statSync(join(extFolder, 'model.onnx')).size < 20_000,
      'the model file keeps only small constants inline',
    );

    const tokens = randomTokens(12, 64, 3);
    const out: Float32Array[] = [];
    for (const folder of [join(inline, 'onnx', 'k'), extFolder]) {
      const runner = await HookRunner.open({ folder, info, settings: { device: 'cpu', threads: 1 } });
      try {
        out.push((await runner.run([tokens], ['blocks.1.hook_resid_post'])).get('blocks.1.hook_resid_post')!.data);
        // A pruned variant of an external-data model is written beside it and still finds its data.
        const early = (await runner.run([tokens], ['blocks.0.hook_mlp_out'])).get('blocks.0.hook_mlp_out')!.data;
        assert.ok(relError(early, new ReferenceLlama(w).run(tokens).hooks.get('blocks.0.hook_mlp_out')!) < 1e-4);
      } finally {
        await runner.close();
      }
    }
    assert.deepEqual(out[0], out[1]);
  }));

test('KV-cached decoding in chunks gives the logits of a full forward pass', () =>
  withDir(async (dir) => {
    const w = randomLlamaWeights(llamaConfig({ ropeStyle: 'half' }), 9);
    writeOnnxModel(buildLlamaGraph(w), join(dir, MODEL_FILE));
    const runner = await HookRunner.open({
      folder: dir,
      info: infoOf(w.config),
      settings: { device: 'cpu', threads: 1 },
    });
    try {
      const tokens = randomTokens(10, 64, 4);
      const want = new ReferenceLlama(w).run(tokens).logits;
      const decoder = new KvDecoder(runner, 32, 64);
      let end = 0;
      for (const size of [4, 1, 3, 2]) {
        const logits = await decoder.feed(tokens.slice(end, end + size));
        end += size;
        assert.equal(decoder.length, end);
        const err = relError(logits, want.slice((end - 1) * 64, end * 64));
        assert.ok(err < 1e-4, `after ${end} tokens: relative error ${err}`);
      }
      await assert.rejects(
        decoder.feed(randomTokens(23, 64, 5)),
        (e: { code?: string }) => e.code === 'INPUT_TOO_LONG',
      );
    } finally {
      await runner.close();
    }
  }));

test('concurrent builds of one cache entry leave one complete copy and no temporary folders', () =>
  withDir(async (dir) => {
    const w = randomLlamaWeights(llamaConfig(), 2);
    let builds = 0;
    const build = async (f: string) => {
      builds++;
      await new Promise((r) => setTimeout(r, 10));
      writeOnnxModel(buildLlamaGraph(w), join(f, MODEL_FILE));
    };
    const [a, b] = await Promise.all([cachedEntry(dir, 'same', build), cachedEntry(dir, 'same', build)]);
    assert.equal(a, b);
    assert.equal(builds, 2, 'both raced to build');
    assert.deepEqual(readdirSync(join(dir, 'onnx')), ['same']);
    assert.deepEqual(readdirSync(a), [MODEL_FILE]);
    await cachedEntry(dir, 'same', build);
    assert.equal(builds, 2, 'a complete entry is reused');
  }));

/** run.c's random_u32 from state 42, computed with 64-bit unsigned C arithmetic (gcc). */
const RUNC_U32_SEED42 = [1456360119, 3359763283, 3393612768];

test("run.c's xorshift RNG and sampler", () => {
  const rng = new XorShiftRng(42);
  assert.deepEqual([rng.u32(), rng.u32(), rng.u32()], RUNC_U32_SEED42);
  const f = new XorShiftRng(42).f32();
  assert.equal(f, (RUNC_U32_SEED42[0] >>> 8) / 16777216);

  const logits = Float32Array.from([0, 5, 1, 4.9, -3]);
  assert.equal(new Sampler(0, 0.9, 1).sample(logits), 1, 'temperature 0 is argmax');
  // A tiny top-p keeps only the most likely token, whatever the coin.
  for (let seed = 1; seed < 20; seed++) assert.equal(new Sampler(1, 0.01, seed).sample(logits), 1);
  // p = [.0035, .52, .0095, .47, .0002]: the 0.99 nucleus holds 1, 3, 2 and never the tail token 4.
  const seen = new Set<number>();
  const nucleus = new Sampler(1, 0.99, 3);
  for (let i = 0; i < 2000; i++) seen.add(nucleus.sample(logits));
  assert.deepEqual([...seen].sort(), [1, 2, 3]);
  // Without top-p every token can come out.
  const all = new Sampler(1, 1, 3);
  for (let i = 0; i < 20000; i++) seen.add(all.sample(logits));
  assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4]);
});
