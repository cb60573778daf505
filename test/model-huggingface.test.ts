/**
 * Hugging Face checkpoints: the reader's mapping to TransformerLens names, and the gpt2 and llama
 * ONNX graphs built from what it reads against the pure-TypeScript references (every hook and the
 * logits within 1e-4 relative), single sequences and padded batches of mixed lengths.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHfCheckpoint, readHfModelInfo } from '../src/engine/checkpoints/huggingface.js';
import { buildGpt2Graph } from '../src/engine/onnx/gpt2-graph.js';
import { buildLlamaGraph } from '../src/engine/onnx/llama-graph.js';
import type { TransformerWeights } from '../src/engine/model/types.js';
import { hookLayout } from '../src/engine/model/hooks.js';
import { writeTinyGpt2, writeTinyLlama, type HfFixtureOptions } from './helpers/hf-fixtures.js';
import { runGraph, relError } from './helpers/graph-runner.js';
import { gpt2Forward } from './reference/gpt2.js';
import { ReferenceLlama, type ReferenceOutput } from './reference/llama.js';

function withDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-hf-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function withDirAsync(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-hf-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ARCHS = {
  gpt2: {
    write: writeTinyGpt2,
    build: buildGpt2Graph,
    reference: (w: TransformerWeights, t: number[]): ReferenceOutput => gpt2Forward(w, t),
  },
  llama: {
    write: writeTinyLlama,
    build: buildLlamaGraph,
    reference: (w: TransformerWeights, t: number[]): ReferenceOutput => new ReferenceLlama(w).run(t),
  },
} as const;

function assertSameWeights(loaded: TransformerWeights, written: TransformerWeights, tol: number): void {
  assert.deepEqual({ ...loaded.config }, { ...written.config });
  for (const name of [
    'embed.W_E',
    'blocks.1.attn.W_Q',
    'blocks.1.attn.W_K',
    'blocks.1.attn.W_V',
    'blocks.0.attn.W_O',
    'blocks.0.mlp.W_in',
    'blocks.0.mlp.W_out',
    'unembed.W_U',
    'ln_final.w',
  ]) {
    const a = loaded.tensor(name);
    const b = written.tensor(name);
    assert.equal(a.length, b.length, name);
    assert.ok(relError(a, b) <= tol, `${name}: relative error ${relError(a, b)} > ${tol}`);
  }
}

for (const arch of ['gpt2', 'llama'] as const) {
  const A = ARCHS[arch];

  for (const variant of [
    { label: 'f32, tied', opts: { tied: true } },
    { label: 'f32, untied, no prefix', opts: { tied: false, prefix: false } },
    { label: 'f16, sharded', opts: { dtype: 'F16', shards: 3 } },
    { label: 'bf16', opts: { dtype: 'BF16' } },
  ] satisfies { label: string; opts: HfFixtureOptions }[]) {
    test(`${arch} ${variant.label}: the reader maps every tensor to its TransformerLens name`, () =>
      withDir((dir) => {
        const fx = A.write(dir, variant.opts);
        const loaded = loadHfCheckpoint(dir);
        // f16 keeps 11 significant bits, bf16 8: the loaded values are the rounded originals.
        const tol = { F32: 0, F16: 1e-3, BF16: 8e-3 }[variant.opts.dtype ?? 'F32'];
        assertSameWeights(loaded, fx.weights, tol);
        if (arch === 'gpt2')
          assert.ok(relError(loaded.tensor('blocks.0.attn.b_K'), fx.weights.tensor('blocks.0.attn.b_K')) <= tol);
      }));
  }

  test(`${arch}: every hook and the logits of the ONNX graph match the reference`, () =>
    withDirAsync(async (dir) => {
      A.write(dir, { dtype: 'BF16', tied: arch === 'gpt2' });
      const w = loadHfCheckpoint(dir);
      const tokens = [5, 17, 260, 3, 99, 42, 1, 7, 250, 11];
      const ref = A.reference(w, tokens);
      const [out] = await runGraph(A.build(w), [tokens]);
      assert.equal(out.hooks.size, hookLayout(w.config).length, 'every hook point is a graph output');
      for (const [name, want] of ref.hooks) {
        const got = out.hooks.get(name);
        assert.ok(got, `graph has no output ${name}`);
        assert.ok(relError(got, want) <= 1e-4, `${name}: relative error ${relError(got, want)}`);
      }
      assert.ok(relError(out.logits, ref.logits) <= 1e-4, `logits: relative error ${relError(out.logits, ref.logits)}`);
    }));

  test(`${arch}: a padded batch of mixed lengths equals each sequence run alone`, () =>
    withDirAsync(async (dir) => {
      A.write(dir, { seed: 7 });
      const w = loadHfCheckpoint(dir);
      const graph = A.build(w);
      const batch = [
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
        [200, 4],
        [33, 34, 35, 36, 37],
      ];
      const together = await runGraph(graph, batch);
      for (let i = 0; i < batch.length; i++) {
        const [alone] = await runGraph(graph, [batch[i]]);
        for (const [name, a] of alone.hooks) {
          const b = together[i].hooks.get(name)!;
          assert.ok(relError(b, a) <= 1e-5, `sequence ${i} ${name}: relative error ${relError(b, a)}`);
        }
        assert.ok(relError(together[i].logits, alone.logits) <= 1e-5);
      }
    }));
}

test('readHfModelInfo: catalog facts and BOS policy from config.json', () =>
  withDir((dir) => {
    writeTinyGpt2(join(dir), {});
    const g = readHfModelInfo(dir);
    assert.deepEqual(
      { ...g, hookPoints: g.hookPoints.length, hookWidths: g.hookWidths['blocks.1.mlp.hook_post'] },
      {
        architecture: 'gpt2',
        format: 'huggingface',
        dModel: 32,
        nLayers: 2,
        vocabSize: 384,
        contextLength: 32,
        prependBos: false,
        hookPoints: 2 + 2 * 13 + 1,
        hookWidths: 128,
      },
    );
    assert.ok(g.hookPoints.includes('blocks.1.hook_resid_mid'));
    rmSync(join(dir, 'model.safetensors'));
    writeTinyLlama(dir, {});
    const l = readHfModelInfo(dir);
    assert.equal(l.architecture, 'llama');
    assert.equal(l.prependBos, true);
    assert.equal(l.contextLength, 32);
  }));
