/**
 * Gemma 2 and Gemma 3 (text) Hugging Face checkpoints: every hook of the ONNX graph and the logits
 * against the float64 reference written from transformers' modelling code (test/reference/gemma.ts),
 * with the features that matter shown to bite (sliding windows shorter than the input, soft-caps,
 * linear rope scaling on global layers); loadModel end to end (BOS, streamed external data, padded
 * batches, KV-cached decoding across sliding windows); and refusals by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHfCheckpoint, readHfModelInfo } from '../src/engine/checkpoints/huggingface.js';
import { gemmaEmbedScale } from '../src/engine/checkpoints/gemma.js';
import { loadModel } from '../src/engine/model/load.js';
import { buildGemmaGraph } from '../src/engine/onnx/gemma-graph.js';
import { GEMMA_HOOK_KINDS } from '../src/engine/model/hooks.js';
import { onnx } from '../src/engine/onnx/proto.js';
import { HOOKS_ONLY_FILE, HookRunner, sliceBatch } from '../src/engine/runtime/forward.js';
import { AtlasError } from '../src/errors.js';
import { writeTinyGemma, type GemmaFixtureOptions } from './helpers/gemma-fixtures.js';
import { relError, runGraph } from './helpers/graph-runner.js';
import { gemmaReference, type GemmaReferenceInput } from './reference/gemma.js';

const TOKENS = [5, 17, 260, 3, 99, 42, 1, 7, 250, 11];
const TOL = 2e-4;

async function withDir(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-gemma-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function withConfig(ref: GemmaReferenceInput, changes: Record<string, unknown>): GemmaReferenceInput {
  return { ...ref, config: { ...ref.config, ...changes } };
}

/** The change must move the reference's output: otherwise a graph ignoring it would pass too. */
function assertBites(ref: GemmaReferenceInput, changes: Record<string, unknown>, what: string): void {
  const a = gemmaReference(ref, TOKENS);
  const b = gemmaReference(withConfig(ref, changes), TOKENS);
  const e = Math.max(
    relError(b.logits, a.logits),
    relError(b.hooks.get('blocks.1.hook_resid_post')!, a.hooks.get('blocks.1.hook_resid_post')!),
  );
  assert.ok(e > 0.02, `${what} changes the result by only ${e}`);
}

const CASES: { label: string; opts: GemmaFixtureOptions; bites: [Record<string, unknown>, string][] }[] = [
  {
    label: 'gemma2 bf16, sharded',
    opts: { family: 'gemma2', dtype: 'BF16', shards: 3 },
    bites: [
      [{ sliding_window: 100 }, 'the sliding window'],
      [{ attn_logit_softcapping: null }, 'the attention soft-cap'],
      [{ final_logit_softcapping: null }, 'the final soft-cap'],
    ],
  },
  {
    label: 'gemma3_text f32, 5:1-style pattern, local/global rope, linear scaling',
    opts: { family: 'gemma3_text' },
    bites: [
      [{ rope_scaling: null }, 'the linear rope scaling'],
      [{ rope_local_base_freq: 1000 }, 'the local rope base'],
      [{ sliding_window: 100 }, 'the sliding window'],
    ],
  },
  {
    label: 'gemma3 multimodal f16 (text_config, language_model prefix), layer_types and soft-caps',
    opts: {
      family: 'gemma3',
      dtype: 'F16',
      text: {
        layer_types: ['full_attention', 'sliding_attention', 'sliding_attention', 'full_attention'],
        attn_logit_softcapping: 1.0,
        final_logit_softcapping: 3.0,
      },
    },
    bites: [[{ attn_logit_softcapping: null }, 'the attention soft-cap']],
  },
];

for (const c of CASES) {
  test(`${c.label}: every hook and the logits match the float64 reference`, () =>
    withDir(async (dir) => {
      const fx = writeTinyGemma(dir, c.opts);
      for (const [changes, what] of c.bites) assertBites(fx.reference, changes, what);
      const w = loadHfCheckpoint(dir);
      const ref = gemmaReference(fx.reference, TOKENS);
      const [out] = await runGraph(buildGemmaGraph(w), [TOKENS]);
      assert.equal(out.hooks.size, GEMMA_HOOK_KINDS.length * w.config.nLayers);
      for (const [name, want] of ref.hooks) {
        const got = out.hooks.get(name);
        assert.ok(got, `graph has no output ${name}`);
        assert.ok(relError(got, want) <= TOL, `${name}: relative error ${relError(got, want)}`);
      }
      assert.ok(relError(out.logits, ref.logits) <= TOL, `logits: relative error ${relError(out.logits, ref.logits)}`);
    }));
}

test("gemma2 with defaults left out, untied lm_head and no prefix: config defaults are transformers'", () =>
  withDir(async (dir) => {
    // Removed entries take Gemma2Config's defaults, which the reference is given explicitly.
    const fx = writeTinyGemma(dir, {
      family: 'gemma2',
      prefix: false,
      text: { attn_logit_softcapping: undefined, query_pre_attn_scalar: undefined, tie_word_embeddings: false },
    });
    const ref = withConfig(fx.reference, {
      attn_logit_softcapping: 50.0,
      query_pre_attn_scalar: 256,
      tie_word_embeddings: false,
    });
    const w = loadHfCheckpoint(dir);
    const want = gemmaReference(ref, TOKENS);
    const [out] = await runGraph(buildGemmaGraph(w), [TOKENS]);
    assert.ok(relError(out.hooks.get('blocks.2.attn.hook_z')!, want.hooks.get('blocks.2.attn.hook_z')!) <= TOL);
    assert.ok(relError(out.logits, want.logits) <= TOL, `logits: ${relError(out.logits, want.logits)}`);
  }));

test(
  'gemma3 rope_parameters (transformers 5) per layer type mean what rope_theta, rope_local_base_freq and ' +
    'rope_scaling do',
  () =>
    withDir(async (dir) => {
      const fx = writeTinyGemma(dir, {
        family: 'gemma3_text',
        text: {
          rope_theta: undefined,
          rope_local_base_freq: undefined,
          rope_scaling: undefined,
          rope_parameters: {
            full_attention: { rope_type: 'linear', factor: 4, rope_theta: 1000 },
            sliding_attention: { rope_type: 'default', rope_theta: 50 },
          },
        },
      });
      const want = gemmaReference(
        withConfig(fx.reference, {
          rope_theta: 1000,
          rope_local_base_freq: 50,
          rope_scaling: { rope_type: 'linear', factor: 4 },
        }),
        TOKENS,
      );
      const [out] = await runGraph(buildGemmaGraph(loadHfCheckpoint(dir)), [TOKENS]);
      assert.ok(relError(out.logits, want.logits) <= TOL, `logits: ${relError(out.logits, want.logits)}`);
    }),
);

test("the embedding normalizer is √d_model rounded to the weights' dtype, as transformers casts it", () => {
  // transformers' Gemma code notes that √3072 = 55.4256 becomes 55.5 in bfloat16.
  assert.equal(gemmaEmbedScale(3072, 'BF16'), 55.5);
  assert.equal(gemmaEmbedScale(2304, 'BF16'), 48);
  assert.equal(gemmaEmbedScale(3072, 'F32'), Math.fround(Math.sqrt(3072)));
});

test(
  'loadModel on a gemma2 folder: <bos> first, every hook kind through runHooks on a padded batch, external ' + 'data',
  () =>
    withDir(async (root) => {
      const dir = join(root, 'model');
      mkdirSync(dir);
      const fx = writeTinyGemma(dir, { family: 'gemma2', dtype: 'BF16', seed: 3 });
      const info = readHfModelInfo(dir);
      assert.equal(info.architecture, 'gemma2');
      assert.equal(info.prependBos, true);
      assert.equal(info.hookPoints.length, 3 * GEMMA_HOOK_KINDS.length);
      const progress: string[] = [];
      const m = await loadModel(dir, {
        dataDir: join(root, 'data'),
        device: 'cpu',
        threads: 1,
        onProgress: (p) => progress.push(p),
      });
      try {
        assert.ok(
          progress.some((p) => p.includes('layer 3/3')),
          progress.join('\n'),
        );
        const texts = ['Once upon a time there was a little girl', 'Lily saw a ball!'];
        const batch = texts.map((t) => m.tokenizer.encode(t));
        assert.equal(m.tokenizer.tokenText(batch[0][0]), '<bos>');
        const hooks = [
          'blocks.0.attn.hook_q',
          'blocks.0.attn.hook_k',
          'blocks.1.attn.hook_z',
          'blocks.2.ln2.hook_normalized',
          'blocks.2.mlp.hook_pre',
          'blocks.2.mlp.hook_post',
          'blocks.2.hook_attn_out',
          'blocks.2.hook_resid_post',
        ];
        const got = await m.runHooks(batch, hooks);
        batch.forEach((seq, b) => {
          const ref = gemmaReference(fx.reference, seq);
          for (const h of hooks) {
            const { dims, data } = got.get(h)!;
            const rows = data.slice(b * dims[1] * dims[2], (b * dims[1] + seq.length) * dims[2]);
            assert.ok(
              relError(rows, ref.hooks.get(h)!) <= TOL,
              `${h} sequence ${b}: ${relError(rows, ref.hooks.get(h)!)}`,
            );
          }
        });
        // A hook early in the network runs on a pruned copy of the graph that shares the data file.
        const early = await m.runHooks([batch[1]], ['blocks.0.attn.hook_v']);
        assert.ok(
          relError(
            early.get('blocks.0.attn.hook_v')!.data,
            gemmaReference(fx.reference, batch[1]).hooks.get('blocks.0.attn.hook_v')!,
          ) <= TOL,
        );
      } finally {
        await m.close();
      }
      const entries = join(root, 'data', 'onnx');
      assert.ok(existsSync(entries));
    }),
);

test('gemma3 KV-cached decoding equals the full forward pass, across sliding windows', () =>
  withDir(async (root) => {
    const dir = join(root, 'model');
    mkdirSync(dir);
    const fx = writeTinyGemma(dir, { family: 'gemma3_text', seed: 4 });
    const m = await loadModel(dir, { dataDir: join(root, 'data'), device: 'cpu', threads: 1 });
    try {
      const ref = gemmaReference(fx.reference, TOKENS);
      const V = 384;
      const dec = m.decoder!();
      const first = await dec.feed(TOKENS.slice(0, 2));
      assert.ok(relError(first, ref.logits.subarray(V, 2 * V)) <= TOL);
      for (let p = 2; p < TOKENS.length; p++) {
        const logits = await dec.feed([TOKENS[p]]);
        assert.ok(
          relError(logits, ref.logits.subarray(p * V, (p + 1) * V)) <= TOL,
          `position ${p}: ${relError(logits, ref.logits.subarray(p * V, (p + 1) * V))}`,
        );
      }
    } finally {
      await m.close();
    }
  }));

test('a model over the hooks-only size runs every hook from one graph without logits, and does not decode', () =>
  withDir(async (root) => {
    const dir = join(root, 'model');
    mkdirSync(dir);
    const fx = writeTinyGemma(dir, { family: 'gemma2', seed: 6 });
    const m = await loadModel(dir, { dataDir: join(root, 'data'), device: 'cpu', threads: 1, hooksOnlyAboveBytes: 0 });
    try {
      assert.equal(m.decoder, undefined);
      const seq = [1, 40, 41, 42, 43, 44, 45];
      for (const h of ['blocks.0.attn.hook_k', 'blocks.2.hook_resid_post']) {
        const got = await m.runHooks([seq], [h]);
        assert.ok(relError(got.get(h)!.data, gemmaReference(fx.reference, seq).hooks.get(h)!) <= TOL, h);
      }
      const [entry] = readdirSync(join(root, 'data', 'onnx'));
      const folder = join(root, 'data', 'onnx', entry);
      const graph = onnx.ModelProto.decode(readFileSync(join(folder, HOOKS_ONLY_FILE)));
      const info = readHfModelInfo(dir);
      assert.deepEqual(
        graph.graph!.output!.map((o) => o.name),
        info.hookPoints,
      );
      // Runs of hooks neither steer nor continue a cache: the graph has no such inputs.
      assert.deepEqual(
        graph.graph!.input!.map((i) => i.name),
        ['input_ids', 'attention_mask'],
      );
      // Hook outputs of 3 tokens' worth per run: the batch below runs in slices and is put back together.
      const bytesPerToken = 4 * 3 * (6 * 24 + 40 + 20 + 20 + 40 + 2 * 40);
      const runner = await HookRunner.open({
        folder,
        info,
        settings: { device: 'cpu', threads: 1 },
        hooksOnly: true,
        hooksOnlyRunBytes: 3 * bytesPerToken,
      });
      try {
        const batch = [
          [1, 5, 6],
          [1, 7],
          [1, 8, 9, 10, 11],
          [1, 12],
        ];
        assert.deepEqual(
          sliceBatch(
            batch.map((q) => q.length),
            3,
          ),
          [
            [0, 1],
            [1, 2],
            [2, 3],
            [3, 4],
          ],
        );
        const session = runner.full.session;
        const run = session.run.bind(session);
        let runs = 0;
        session.run = ((...args: Parameters<typeof run>) => (runs++, run(...args))) as typeof session.run;
        const got = (await runner.run(batch, ['blocks.1.mlp.hook_post'])).get('blocks.1.mlp.hook_post')!;
        assert.equal(runs, 4, 'one run per slice');
        assert.deepEqual(got.dims, [4, 5, 40]);
        batch.forEach((seq, b) => {
          const rows = got.data.slice(b * 5 * 40, (b * 5 + seq.length) * 40);
          assert.ok(
            relError(rows, gemmaReference(fx.reference, seq).hooks.get('blocks.1.mlp.hook_post')!) <= TOL,
            `sequence ${b}`,
          );
        });
      } finally {
        await runner.close();
      }
    } finally {
      await m.close();
    }
  }));

test("sliceBatch keeps each slice's padded size within the budget, in order", () => {
  assert.deepEqual(sliceBatch([2, 2, 2, 2], 4), [
    [0, 2],
    [2, 4],
  ]);
  assert.deepEqual(sliceBatch([1, 5, 1], 6), [
    [0, 1],
    [1, 2],
    [2, 3],
  ]);
  assert.deepEqual(sliceBatch([3, 1, 1], 9), [[0, 3]]);
  assert.deepEqual(sliceBatch([10], 4), [[0, 1]]);
});

function assertAtlasError(fn: () => unknown, code: string, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AtlasError, `expected AtlasError, got ${e}`);
    assert.equal(e.code, code, e.message);
    for (const f of fragments) assert.ok(e.message.includes(f), `message "${e.message}" lacks "${f}"`);
    return true;
  });
}

test('gemma configs the graph cannot honour are refused, naming the field', () =>
  withDir((dir) => {
    const cases: [GemmaFixtureOptions, string, string[]][] = [
      [{ family: 'gemma2', text: { use_sliding_window_magic: true } }, 'UNSUPPORTED', ['"use_sliding_window_magic"']],
      [
        { family: 'gemma3_text', text: { rope_scaling: { rope_type: 'yarn', factor: 8 } } },
        'UNSUPPORTED',
        ['rope_scaling.rope_type', 'yarn'],
      ],
      [
        { family: 'gemma3_text', text: { rope_scaling: { rope_type: 'linear', factor: 8, beta_fast: 3 } } },
        'UNSUPPORTED',
        ['rope_scaling.beta_fast'],
      ],
      [{ family: 'gemma2', text: { attention_bias: true } }, 'UNSUPPORTED', ['attention_bias']],
      [{ family: 'gemma2', text: { hidden_activation: 'relu' } }, 'UNSUPPORTED', ['hidden_activation', 'relu']],
      [{ family: 'gemma3_text', text: { hidden_activation: 'gelu' } }, 'UNSUPPORTED', ['hidden_activation', '"gelu"']],
      [
        { family: 'gemma3_text', text: { use_bidirectional_attention: true } },
        'UNSUPPORTED',
        ['use_bidirectional_attention'],
      ],
      [
        { family: 'gemma2', text: { layer_types: ['sliding_attention', 'chunked_attention', 'full_attention'] } },
        'UNSUPPORTED',
        ['layer_types', 'chunked_attention'],
      ],
      [
        { family: 'gemma2', text: { layer_types: ['sliding_attention'] } },
        'BAD_FILE',
        ['layer_types', '3 layer types'],
      ],
      [{ family: 'gemma3', config: { audio_config: {} } }, 'UNSUPPORTED', ['"audio_config"']],
      [
        { family: 'gemma3', text: { quantization_config: { bits: 4 } } },
        'UNSUPPORTED',
        ['text_config.quantization_config'],
      ],
      [{ family: 'gemma2', text: { num_key_value_heads: 3 } }, 'BAD_FILE', ['num_key_value_heads']],
    ];
    for (const [opts, code, fragments] of cases) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir);
      writeTinyGemma(dir, { ...opts, tokenizer: false });
      assertAtlasError(() => readHfModelInfo(dir), code, ...fragments);
    }
  }));

test('a gemma checkpoint missing a tensor is refused naming it', () =>
  withDir((dir) => {
    writeTinyGemma(dir, {
      family: 'gemma3_text',
      tokenizer: false,
      editTensors: (t) => delete t['model.layers.1.self_attn.k_norm.weight'],
    });
    assertAtlasError(() => loadHfCheckpoint(dir), 'BAD_FILE', 'model.layers.1.self_attn.k_norm.weight');
    rmSync(join(dir, 'model.safetensors'));
    writeTinyGemma(dir, {
      family: 'gemma2',
      tokenizer: false,
      editTensors: (t) => delete t['model.layers.2.post_feedforward_layernorm.weight'],
    });
    assertAtlasError(() => loadHfCheckpoint(dir), 'BAD_FILE', 'model.layers.2.post_feedforward_layernorm.weight');
  }));
