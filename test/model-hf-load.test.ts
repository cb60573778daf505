/**
 * Hugging Face folders and ready .onnx files through loadModel: catalog facts, tokenizer beside
 * the weights, hook activations of a padded batch against the references, KV-cached decoding of the
 * gpt2 graph against a full forward pass, and inspectModel for .onnx files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHfCheckpoint } from '../src/engine/checkpoints/huggingface.js';
import { inspectModel, loadModel } from '../src/engine/model/load.js';
import { buildLlamaGraph } from '../src/engine/onnx/llama-graph.js';
import { writeOnnxModel } from '../src/engine/onnx/write-model.js';
import type { TransformerWeights } from '../src/engine/model/types.js';
import { writeTinyGpt2, writeTinyLlama } from './helpers/hf-fixtures.js';
import { relError } from './helpers/graph-runner.js';
import { gpt2Forward } from './reference/gpt2.js';
import { ReferenceLlama, type ReferenceOutput } from './reference/llama.js';

async function withDirs(fn: (model: string, data: string) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'atlas-hf-load-'));
  try {
    await fn(join(root, 'model'), join(root, 'data'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const CASES = [
  {
    arch: 'gpt2',
    write: writeTinyGpt2,
    ref: (w: TransformerWeights, t: number[]): ReferenceOutput => gpt2Forward(w, t),
    bos: false,
  },
  {
    arch: 'llama',
    write: writeTinyLlama,
    ref: (w: TransformerWeights, t: number[]): ReferenceOutput => new ReferenceLlama(w).run(t),
    bos: true,
  },
] as const;

for (const c of CASES) {
  test(`loadModel on a Hugging Face ${c.arch} folder: tokenizer, BOS policy and hooks of a padded batch`, () =>
    withDirs(async (dir, dataDir) => {
      mkdirSync(dir);
      c.write(dir, { dtype: 'F16', shards: 2 });
      const w = loadHfCheckpoint(dir);
      const m = await loadModel(dir, { dataDir, device: 'cpu', threads: 1 });
      try {
        assert.equal(m.info.format, 'huggingface');
        assert.equal(m.info.prependBos, c.bos);
        const texts = ['Once upon a time', 'Lily saw a ball!'];
        const batch = texts.map((t) => m.tokenizer.encode(t));
        assert.equal(batch[0][0] === m.tokenizer.bosId, c.bos, 'BOS first exactly when the model expects it');
        const hooks = ['blocks.0.hook_resid_pre', 'blocks.1.hook_mlp_out', 'blocks.1.hook_resid_post'];
        const got = await m.runHooks(batch, hooks);
        batch.forEach((seq, b) => {
          const ref = c.ref(w, seq);
          for (const h of hooks) {
            const { dims, data } = got.get(h)!;
            const rows = data.slice(b * dims[1] * dims[2], (b * dims[1] + seq.length) * dims[2]);
            assert.ok(
              relError(rows, ref.hooks.get(h)!) <= 1e-4,
              `${h} sequence ${b}: ${relError(rows, ref.hooks.get(h)!)}`,
            );
          }
        });
      } finally {
        await m.close();
      }
    }));
}

test('the gpt2 graph decodes incrementally with its KV cache: logits equal the full forward pass', () =>
  withDirs(async (dir, dataDir) => {
    mkdirSync(dir);
    writeTinyGpt2(dir, { seed: 5 });
    const w = loadHfCheckpoint(dir);
    const m = await loadModel(dir, { dataDir, device: 'cpu', threads: 1 });
    try {
      const tokens = [10, 20, 30, 40, 50, 60, 70];
      const ref = gpt2Forward(w, tokens);
      const dec = m.decoder!();
      const V = w.config.vocabSize;
      const first = await dec.feed(tokens.slice(0, 4));
      assert.ok(relError(first, ref.logits.subarray(3 * V, 4 * V)) <= 1e-4);
      for (let p = 4; p < tokens.length; p++) {
        const logits = await dec.feed([tokens[p]]);
        assert.ok(relError(logits, ref.logits.subarray(p * V, (p + 1) * V)) <= 1e-4, `position ${p}`);
      }
      assert.equal(dec.length, tokens.length);
    } finally {
      await m.close();
    }
  }));

test('loadModel and inspectModel accept a ready .onnx file with the tokenizer beside it', () =>
  withDirs(async (dir, dataDir) => {
    mkdirSync(dir);
    writeTinyLlama(dir, { seed: 2 });
    const w = loadHfCheckpoint(dir);
    const file = join(dir, 'exported.onnx');
    writeOnnxModel(buildLlamaGraph(w), file);
    const info = inspectModel(file);
    assert.deepEqual(
      { ...info, hookPoints: info.hookPoints.length, hookWidths: info.hookWidths['blocks.0.attn.hook_k'] },
      {
        architecture: 'onnx',
        format: 'onnx',
        dModel: 32,
        nLayers: 2,
        vocabSize: 384,
        contextLength: 32,
        prependBos: true,
        hookPoints: 1 + 2 * 16 + 1,
        hookWidths: 16,
      },
    );
    const m = await loadModel(file, { dataDir, device: 'cpu', threads: 1 });
    try {
      assert.deepEqual(m.info, info);
      const seq = m.tokenizer.encode('the moon and the stars');
      const got = await m.runHooks([seq], ['blocks.1.hook_resid_mid']);
      assert.ok(
        relError(
          got.get('blocks.1.hook_resid_mid')!.data,
          new ReferenceLlama(w).run(seq).hooks.get('blocks.1.hook_resid_mid')!,
        ) <= 1e-4,
      );
    } finally {
      await m.close();
    }
  }));
