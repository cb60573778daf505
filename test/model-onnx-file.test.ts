/**
 * Ready ONNX files: a gpt2 graph exported to disk with hook-named outputs, and variants that expose
 * Hugging Face style `hidden_states` (stacked, or one output per layer), loaded through onnx-file.ts
 * and compared with the reference forward pass; catalog facts and refusals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHfCheckpoint } from '../src/engine/checkpoints/huggingface.js';
import { hookLayout, loadOnnxFile } from '../src/engine/runtime/onnx-file.js';
import { buildGpt2Graph } from '../src/engine/onnx/gpt2-graph.js';
import { node, valueInfo, int64Tensor, type GraphSpec } from '../src/engine/onnx/proto.js';
import { writeOnnxModel } from '../src/engine/onnx/write-model.js';
import type { LoadedModel, TransformerWeights } from '../src/engine/model/types.js';
import { AtlasError } from '../src/errors.js';
import { writeTinyGpt2 } from './helpers/hf-fixtures.js';
import { relError } from './helpers/graph-runner.js';
import { gpt2Forward } from './reference/gpt2.js';

const CPU = { device: 'cpu' as const, threads: 1 };
const BATCH = [
  [5, 17, 260, 3, 99, 42],
  [383, 8],
  [1, 2, 3, 4],
];

async function withModel(fn: (dir: string, w: TransformerWeights, spec: GraphSpec) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-onnx-file-'));
  try {
    writeTinyGpt2(dir, { seed: 3 });
    const w = loadHfCheckpoint(dir);
    await fn(dir, w, buildGpt2Graph(w));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Rows of sequence b from a [batch, seq, d] hook batch. */
function rows(
  m: LoadedModel,
  got: Awaited<ReturnType<LoadedModel['runHooks']>>,
  hook: string,
  b: number,
  len: number,
): Float32Array {
  const h = got.get(hook)!;
  const [, S, d] = h.dims;
  assert.equal(d, m.info.dModel);
  return h.data.slice(b * S * d, (b * S + len) * d);
}

function layerNorm(rowsIn: Float32Array, w: Float32Array, bias: Float32Array, eps: number): Float32Array {
  const d = w.length;
  const out = new Float32Array(rowsIn.length);
  for (let r = 0; r < rowsIn.length / d; r++) {
    const x = rowsIn.subarray(r * d, (r + 1) * d);
    const mean = x.reduce((a, b) => a + b, 0) / d;
    const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / d;
    for (let i = 0; i < d; i++) out[r * d + i] = ((x[i] - mean) / Math.sqrt(variance + eps)) * w[i] + bias[i];
  }
  return out;
}

/** The gpt2 graph with its hook outputs replaced by HF-style hidden states. */
function withHiddenStates(spec: GraphSpec, nLayers: number, d: number, stacked: boolean): GraphSpec {
  const finalNorm = spec.nodes.find((n) => n.output?.includes('logits'))!.input![0];
  const states = [...Array.from({ length: nLayers }, (_, l) => `blocks.${l}.hook_resid_pre`), finalNorm];
  const nodes = [...spec.nodes];
  const initializers = [...spec.initializers];
  let outputs;
  if (stacked) {
    initializers.push(int64Tensor('test.axis0', [1], [0]));
    states.forEach((s, i) => nodes.push(node('Unsqueeze', [s, 'test.axis0'], [`test.state${i}`])));
    nodes.push(
      node(
        'Concat',
        states.map((_, i) => `test.state${i}`),
        ['hidden_states'],
        { axis: 0 },
      ),
    );
    outputs = [valueInfo('hidden_states', 'float', [nLayers + 1, 'batch', 'seq', d])];
  } else {
    states.forEach((s, i) => nodes.push(node('Identity', [s], [`hidden_states.${i}`])));
    outputs = states.map((_, i) => valueInfo(`hidden_states.${i}`, 'float', ['batch', 'seq', d]));
  }
  return { ...spec, nodes, initializers, outputs: [valueInfo('logits', 'float', ['batch', 'seq', 384]), ...outputs] };
}

test('an exported gpt2 graph with hook-named outputs loads and matches the reference', () =>
  withModel(async (dir, w, spec) => {
    const file = join(dir, 'model.onnx');
    writeOnnxModel(spec, file);
    const m = await loadOnnxFile(file, CPU);
    try {
      assert.deepEqual(
        { ...m.info, hookPoints: m.info.hookPoints.length, hookWidths: m.info.hookWidths['blocks.1.mlp.hook_post'] },
        {
          architecture: 'onnx',
          format: 'onnx',
          dModel: 32,
          nLayers: 2,
          vocabSize: 384,
          contextLength: 32,
          prependBos: false,
          hookPoints: 2 + 2 * 13 + 1,
          hookWidths: 128,
        },
      );
      assert.equal(m.executionProvider, 'cpu');
      assert.equal(m.unembedding(), null);
      const hooks = ['blocks.0.hook_resid_pre', 'blocks.1.hook_attn_out', 'blocks.1.hook_resid_post'];
      const got = await m.runHooks(BATCH, hooks);
      BATCH.forEach((seq, b) => {
        const ref = gpt2Forward(w, seq);
        for (const h of hooks)
          assert.ok(relError(rows(m, got, h, b, seq.length), ref.hooks.get(h)!) <= 1e-4, `${h} sequence ${b}`);
      });
      await assert.rejects(
        m.runHooks([[1]], ['blocks.9.hook_resid_pre']),
        (e: AtlasError) => e.code === 'BAD_USER_INPUT' && e.message.includes('blocks.9.hook_resid_pre'),
      );
      const long = Array.from({ length: 40 }, (_, i) => i);
      await assert.rejects(
        m.runHooks([long], hooks),
        (e: AtlasError) => e.code === 'INPUT_TOO_LONG' && e.message.includes('32'),
      );
      const cut = await m.runHooks([long], ['blocks.0.hook_resid_pre'], { truncate: true });
      assert.deepEqual(cut.get('blocks.0.hook_resid_pre')!.dims, [1, 32, 32]);
    } finally {
      await m.close();
    }
  }));

for (const stacked of [true, false]) {
  test(
    `hidden_states (${stacked ? 'stacked rank 4' : 'one output per layer'}) map to resid_pre/resid_post and ` +
      `ln_final.hook_normalized`,
    () =>
      withModel(async (dir, w, spec) => {
        const file = join(dir, 'hidden.onnx');
        writeOnnxModel(withHiddenStates(spec, 2, 32, stacked), file);
        const m = await loadOnnxFile(file, CPU);
        try {
          assert.deepEqual([...m.info.hookPoints].sort(), [
            'blocks.0.hook_resid_post',
            'blocks.0.hook_resid_pre',
            'blocks.1.hook_resid_pre',
            'ln_final.hook_normalized',
          ]);
          assert.equal(m.info.nLayers, 2);
          const got = await m.runHooks(BATCH, m.info.hookPoints);
          BATCH.forEach((seq, b) => {
            const ref = gpt2Forward(w, seq);
            for (const h of ['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_post', 'blocks.1.hook_resid_pre']) {
              assert.ok(relError(rows(m, got, h, b, seq.length), ref.hooks.get(h)!) <= 1e-4, `${h} sequence ${b}`);
            }
            const normed = layerNorm(
              ref.hooks.get('blocks.1.hook_resid_post')!,
              w.tensor('ln_final.w'),
              w.tensor('ln_final.b'),
              w.config.normEps,
            );
            assert.ok(relError(rows(m, got, 'ln_final.hook_normalized', b, seq.length), normed) <= 1e-4);
          });
        } finally {
          await m.close();
        }
      }),
  );
}

test('hookLayout ignores per-head hooks and refuses an unusable hidden_states', () => {
  const layout = hookLayout([
    { name: 'blocks.3.hook_resid_post', shape: ['b', 's', 64] },
    { name: 'blocks.3.attn.hook_z', shape: ['b', 's', 4, 16] },
    { name: 'logits', shape: ['b', 's', 100] },
  ]);
  assert.deepEqual([...layout.sources.keys()], ['blocks.3.hook_resid_post']);
  assert.deepEqual({ n: layout.nLayers, d: layout.dModel, v: layout.vocabSize }, { n: 4, d: 64, v: 100 });
  assert.throws(
    () => hookLayout([{ name: 'hidden_states', shape: ['layers', 'b', 's', 64] }]),
    (e: AtlasError) => e.code === 'UNSUPPORTED',
  );
});

test('a file without a tokenizer or without hook outputs is refused with a coded error', () =>
  withModel(async (dir, _w, spec) => {
    const file = join(dir, 'logits-only.onnx');
    writeOnnxModel({ ...spec, outputs: spec.outputs.filter((o) => o.name === 'logits') }, file);
    await assert.rejects(
      loadOnnxFile(file, CPU),
      (e: AtlasError) => e.code === 'UNSUPPORTED' && e.message.includes('logits'),
    );
    await assert.rejects(
      loadOnnxFile(file, CPU, { tokenizer: join(dir, 'nope.json') }),
      (e: AtlasError) => e.code === 'BAD_FILE' && e.message.includes('nope.json'),
    );
  }));
