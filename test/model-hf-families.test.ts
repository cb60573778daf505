/**
 * The llama family (llama with llama3/linear/yarn/dynamic RoPE scaling, attention and MLP biases;
 * mistral with a sliding window; qwen2 with q/k/v biases and windowed upper layers; qwen3 with q/k
 * norms) and gpt_neox (parallel and sequential residual, partial rotary, fused per-head qkv): tiny
 * random Hugging Face checkpoints read, their config checked against what the test expects, and the
 * ONNX graph's every hook point and logits compared with the float64 references of test/reference
 * (run on the weights as drawn, not as read), alone and in padded batches; refusals by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHfCheckpoint, readHfModelInfo } from '../src/engine/checkpoints/huggingface.js';
import { loadModel } from '../src/engine/model/load.js';
import { AtlasError } from '../src/errors.js';
import { hookLayout } from '../src/engine/model/hooks.js';
import type { TransformerConfig, TransformerWeights } from '../src/engine/model/types.js';
import { buildLlamaGraph } from '../src/engine/onnx/llama-graph.js';
import { buildNeoxGraph } from '../src/engine/onnx/neox-graph.js';
import { runGraph, relError } from './helpers/graph-runner.js';
import {
  writeTinyLlamaFamily,
  writeTinyNeox,
  type FamilyFixtureOptions,
  type LlamaFamily,
} from './helpers/hf-family-fixtures.js';
import type { ReferenceOutput } from './reference/gpt2.js';
import { ReferenceLlama } from './reference/llama.js';
import { neoxForward } from './reference/neox.js';

function withDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-hf-family-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const BASE: TransformerConfig = {
  architecture: 'llama',
  dModel: 32,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  dHead: 12, // ≠ d_model / n_heads
  dMlp: 48,
  vocabSize: 384,
  contextLength: 32,
  normEps: 1e-5,
  ropeTheta: 500,
  ropeStyle: 'half',
  activation: 'silu',
  tiedEmbeddings: false,
};

const bias = (names: string[], shape: (c: TransformerConfig) => Record<string, number>) => (c: TransformerConfig) => {
  const m = new Map<string, number[]>();
  const widths = shape(c);
  for (let l = 0; l < c.nLayers; l++) for (const n of names) m.set(`blocks.${l}.${n}`, [widths[n]]);
  return m;
};
const qkvBias = bias(['attn.b_Q', 'attn.b_K', 'attn.b_V'], (c) => ({
  'attn.b_Q': c.nHeads * c.dHead,
  'attn.b_K': c.nKvHeads * c.dHead,
  'attn.b_V': c.nKvHeads * c.dHead,
}));
const allBias = bias(['attn.b_Q', 'attn.b_K', 'attn.b_V', 'attn.b_O', 'mlp.b_gate', 'mlp.b_in', 'mlp.b_out'], (c) => ({
  'attn.b_Q': c.nHeads * c.dHead,
  'attn.b_K': c.nKvHeads * c.dHead,
  'attn.b_V': c.nKvHeads * c.dHead,
  'attn.b_O': c.dModel,
  'mlp.b_gate': c.dMlp,
  'mlp.b_in': c.dMlp,
  'mlp.b_out': c.dModel,
}));
const qk3 = (c: TransformerConfig) => {
  const m = allBias(c);
  for (const n of ['mlp.b_gate', 'mlp.b_in', 'mlp.b_out'])
    for (let l = 0; l < c.nLayers; l++) m.delete(`blocks.${l}.${n}`);
  for (let l = 0; l < c.nLayers; l++)
    m.set(`blocks.${l}.attn.q_norm.w`, [c.dHead]).set(`blocks.${l}.attn.k_norm.w`, [c.dHead]);
  return m;
};

interface Case {
  label: string;
  family: LlamaFamily | 'gpt_neox';
  opts: FamilyFixtureOptions;
  /** Tokens of the sequence checked alone; a shorter one joins it in a padded batch. */
  length: number;
  /** The same checkpoint without the feature under test must differ by more than this somewhere (the case bites). */
  without?: Partial<TransformerConfig>;
}

const CASES: Case[] = [
  {
    label: 'llama, rope_scaling llama3 (rope_type), GQA',
    family: 'llama',
    opts: {
      expected: {
        ...BASE,
        ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 16 },
      },
      json: {
        rope_scaling: {
          rope_type: 'llama3',
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 16,
        },
      },
    },
    length: 20,
    without: { ropeScaling: undefined },
  },
  {
    label: 'llama, rope_scaling linear (type), attention and MLP biases, tied',
    family: 'llama',
    opts: {
      expected: { ...BASE, tiedEmbeddings: true, ropeScaling: { type: 'linear', factor: 4 } },
      json: { rope_scaling: { type: 'linear', factor: 4 }, attention_bias: true, mlp_bias: true },
      extra: allBias,
    },
    length: 16,
    without: { ropeScaling: undefined },
  },
  {
    label: 'llama, rope_scaling yarn (attention factor from factor)',
    family: 'llama',
    opts: {
      expected: {
        ...BASE,
        ropeScaling: {
          type: 'yarn',
          factor: 4,
          originalMaxPositions: 8,
          attentionFactor: 0.1 * Math.log(4) + 1,
          betaFast: 32,
          betaSlow: 1,
          truncate: true,
        },
      },
      json: { rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 8 } },
    },
    length: 20,
    without: { ropeScaling: undefined },
  },
  {
    label: 'llama, rope_scaling yarn with mscale / mscale_all_dim, beta_fast, no truncation',
    family: 'llama',
    opts: {
      expected: {
        ...BASE,
        contextLength: 48,
        ropeScaling: {
          type: 'yarn',
          factor: 3,
          originalMaxPositions: 16,
          attentionFactor: (0.1 * 0.7 * Math.log(3) + 1) / (0.1 * 1.2 * Math.log(3) + 1),
          betaFast: 8,
          betaSlow: 1,
          truncate: false,
        },
      },
      json: {
        max_position_embeddings: 32,
        rope_scaling: {
          rope_type: 'yarn',
          factor: 3,
          original_max_position_embeddings: 16,
          mscale: 0.7,
          mscale_all_dim: 1.2,
          beta_fast: 8,
          truncate: false,
        },
      },
    },
    length: 20,
    without: { ropeScaling: undefined },
  },
  {
    label: 'llama, rope_scaling dynamic, input longer than max_position_embeddings',
    family: 'llama',
    opts: {
      expected: { ...BASE, contextLength: 32, ropeScaling: { type: 'dynamic', factor: 2, maxPositions: 16 } },
      json: { max_position_embeddings: 16, rope_scaling: { type: 'dynamic', factor: 2 } },
    },
    length: 27,
    without: { ropeScaling: undefined },
  },
  {
    label: 'mistral, sliding window 4 shorter than the input, MQA',
    family: 'mistral',
    opts: {
      expected: { ...BASE, architecture: 'mistral', nKvHeads: 1, dHead: 8, slidingWindows: [4, 4] },
      json: { sliding_window: 4 },
    },
    length: 13,
    without: { slidingWindows: undefined },
  },
  {
    label: 'qwen2, q/k/v biases, window 3 on layers >= max_window_layers',
    family: 'qwen2',
    opts: {
      expected: { ...BASE, architecture: 'qwen2', slidingWindows: [null, 3] },
      json: { use_sliding_window: true, sliding_window: 3, max_window_layers: 1 },
      extra: qkvBias,
    },
    length: 11,
    without: { slidingWindows: undefined },
  },
  {
    label: 'qwen2 without use_sliding_window ignores sliding_window',
    family: 'qwen2',
    opts: {
      expected: { ...BASE, architecture: 'qwen2' },
      json: { use_sliding_window: false, sliding_window: 2, max_window_layers: 0 },
      extra: qkvBias,
    },
    length: 9,
  },
  {
    label: 'qwen3, q/k norm, attention_bias, head_dim 16, layer_types',
    family: 'qwen3',
    opts: {
      expected: { ...BASE, architecture: 'qwen3', dHead: 16, tiedEmbeddings: true, slidingWindows: [5, null] },
      json: {
        attention_bias: true,
        use_sliding_window: true,
        sliding_window: 5,
        layer_types: ['sliding_attention', 'full_attention'],
      },
      extra: qk3,
    },
    length: 12,
  },
  {
    label: 'gpt_neox, parallel residual, rotary_pct 0.25, gelu, untied',
    family: 'gpt_neox',
    opts: {
      expected: {
        ...BASE,
        architecture: 'gpt_neox',
        nKvHeads: 4,
        dHead: 8,
        dMlp: 64,
        activation: 'gelu',
        rotaryDim: 2,
        parallelResidual: true,
        ropeTheta: 300,
      },
    },
    length: 14,
  },
  {
    label: 'gpt_neox, sequential residual, rotary_pct 0.5, no attention bias, tied, gelu_new, linear scaling',
    family: 'gpt_neox',
    opts: {
      expected: {
        ...BASE,
        architecture: 'gpt_neox',
        nKvHeads: 4,
        dHead: 8,
        dMlp: 64,
        activation: 'gelu_new',
        rotaryDim: 4,
        parallelResidual: false,
        tiedEmbeddings: true,
        ropeScaling: { type: 'linear', factor: 2 },
      },
      json: { rope_scaling: { type: 'linear', factor: 2 } },
      attentionBias: false,
    } as FamilyFixtureOptions,
    length: 10,
  },
];

function write(dir: string, c: Case) {
  return c.family === 'gpt_neox' ? writeTinyNeox(dir, c.opts) : writeTinyLlamaFamily(dir, c.family, c.opts);
}

function reference(w: TransformerWeights, tokens: number[]): ReferenceOutput {
  return w.config.architecture === 'gpt_neox' ? neoxForward(w, tokens) : new ReferenceLlama(w).run(tokens);
}

function tokensOf(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 97 + seed * 31 + 5) % 384);
}

for (const c of CASES) {
  test(
    `${c.label}: config read as expected; every hook and the logits match the reference, alone and ` + `batched`,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'atlas-hf-family-'));
      try {
        const fx = write(dir, c);
        const loaded = loadHfCheckpoint(dir);
        assert.deepEqual({ ...loaded.config }, { ...c.opts.expected });
        const graph = (c.family === 'gpt_neox' ? buildNeoxGraph : buildLlamaGraph)(loaded);
        const long = tokensOf(c.length, 1);
        const short = tokensOf(Math.max(3, c.length - 6), 2);
        const [aloneLong] = await runGraph(graph, [long]);
        const batched = await runGraph(graph, [short, long]);
        const layout = hookLayout(loaded.config);
        assert.equal(aloneLong.hooks.size, layout.length);
        for (const [i, seq, outs] of [
          [0, long, [aloneLong, batched[1]]],
          [1, short, [batched[0]]],
        ] as const) {
          const want = reference(fx.weights, [...seq]);
          for (const out of outs) {
            for (const { name, width } of layout) {
              const got = out.hooks.get(name);
              assert.ok(got, `graph has no output ${name}`);
              assert.equal(got.length, seq.length * width, `${name} width`);
              const err = relError(got, want.hooks.get(name)!);
              assert.ok(err <= 1e-4, `sequence ${i} ${name}: relative error ${err}`);
            }
            const err = relError(out.logits, want.logits);
            assert.ok(err <= 1e-4, `sequence ${i} logits: relative error ${err}`);
          }
        }
        if (c.without) {
          // The feature under test changes the result: the reference without it is far from the one with it.
          const plain: TransformerWeights = { ...fx.weights, config: { ...fx.weights.config, ...c.without } };
          const diff = relError(reference(plain, long).logits, reference(fx.weights, long).logits);
          assert.ok(diff > 1e-2, `the case does not bite: logits differ by only ${diff}`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
}

for (const family of ['mistral', 'gpt_neox', 'qwen3'] as const) {
  test(
    `${family} through loadModel: hooks of a padded batch and KV-cached decoding in chunks match the ` + `reference`,
    async () => {
      const root = mkdtempSync(join(tmpdir(), 'atlas-hf-family-load-'));
      const c = CASES.find((x) => x.family === family)!;
      try {
        mkdirSync(join(root, 'model'));
        const fx = write(join(root, 'model'), c);
        const model = await loadModel(fx.dir, { dataDir: join(root, 'data'), device: 'cpu', threads: 1 });
        try {
          const batch = [tokensOf(c.length, 3), tokensOf(5, 4)];
          const got = await model.runHooks(batch, model.info.hookPoints);
          batch.forEach((seq, b) => {
            const want = reference(fx.weights, seq);
            for (const hook of model.info.hookPoints) {
              const { dims, data } = got.get(hook)!;
              assert.equal(dims[2], model.info.hookWidths[hook], hook);
              const err = relError(
                data.slice(b * dims[1] * dims[2], (b * dims[1] + seq.length) * dims[2]),
                want.hooks.get(hook)!,
              );
              assert.ok(err <= 1e-4, `sequence ${b} ${hook}: relative error ${err}`);
            }
          });
          const tokens = batch[0];
          const want = reference(fx.weights, tokens).logits;
          const decoder = model.decoder!();
          let end = 0;
          for (const size of [5, 1, 4, tokens.length - 10]) {
            const logits = await decoder.feed(tokens.slice(end, end + size));
            end += size;
            const err = relError(logits, want.slice((end - 1) * 384, end * 384));
            assert.ok(err <= 1e-4, `after ${end} tokens: relative error ${err}`);
          }
        } finally {
          await model.close();
        }
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  );
}

test('readHfModelInfo: hook points, their widths and BOS per family', () => {
  const info = (c: Case) => withDir((dir) => (write(dir, c), readHfModelInfo(dir)));
  const neox = info(CASES.find((c) => c.family === 'gpt_neox')!);
  assert.equal(neox.architecture, 'gpt_neox');
  assert.equal(neox.prependBos, false);
  assert.ok(!neox.hookPoints.includes('blocks.0.hook_resid_mid'), 'a parallel block has no resid_mid');
  assert.equal(neox.hookWidths['blocks.1.mlp.hook_post'], 64);
  const qwen3 = info(CASES.find((c) => c.family === 'qwen3')!);
  assert.equal(qwen3.prependBos, false);
  assert.equal(qwen3.hookWidths['blocks.0.attn.hook_z'], 4 * 16);
  assert.equal(qwen3.hookWidths['blocks.0.attn.hook_k'], 2 * 16);
  assert.equal(qwen3.hookWidths['blocks.0.hook_resid_post'], 32);
  assert.equal(qwen3.hookPoints.at(-1), 'ln_final.hook_normalized');
  const mistral = info(CASES.find((c) => c.family === 'mistral')!);
  assert.equal(mistral.prependBos, true);
  assert.ok(mistral.hookPoints.includes('blocks.1.hook_resid_mid'));
  const llama = info(CASES[0]);
  assert.equal(llama.prependBos, true);
  assert.equal(llama.contextLength, 32);
});

function assertAtlasError(fn: () => unknown, code: string, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AtlasError, `expected AtlasError, got ${e}`);
    assert.equal(e.code, code, e.message);
    for (const f of fragments) assert.ok(e.message.includes(f), `message "${e.message}" lacks "${f}"`);
    return true;
  });
}

test('refusals name the field: model_type, rope type, rope fields, unknown config keys, missing tensors', () => {
  const llama = CASES[0];
  const neox = CASES.find((c) => c.family === 'gpt_neox')!;
  const qwen2 = CASES.find((c) => c.family === 'qwen2')!;
  const cases: [Case, Record<string, unknown>, string, ...string[]][] = [
    [llama, { model_type: 'gemma7' }, 'UNSUPPORTED', 'model_type "gemma7"', 'gpt_neox'],
    [llama, { rope_scaling: { rope_type: 'longrope', factor: 2 } }, 'UNSUPPORTED', 'rope_scaling.rope_type "longrope"'],
    [llama, { rope_scaling: { type: 'su', factor: 2 } }, 'UNSUPPORTED', '"su"'],
    [llama, { rope_scaling: { rope_type: 'llama3', factor: 8 } }, 'BAD_FILE', 'rope_scaling.low_freq_factor'],
    [llama, { rope_scaling: { rope_type: 'linear', factor: 2, finetuned: true } }, 'UNSUPPORTED', '"finetuned"'],
    [
      llama,
      { rope_parameters: { rope_type: 'ntk-by-parts', rope_theta: 1e4 } },
      'UNSUPPORTED',
      'rope_parameters.rope_type',
    ],
    [llama, { quantization_config: { bits: 4 } }, 'UNSUPPORTED', '"quantization_config"'],
    [CASES.find((c) => c.family === 'mistral')!, { attention_bias: true }, 'UNSUPPORTED', 'attention_bias: true'],
    [neox, { hidden_act: 'relu' }, 'UNSUPPORTED', 'hidden_act "relu"'],
    [neox, { rotary_pct: 0.1 }, 'BAD_FILE', 'rotary_pct'],
    [qwen2, { use_mrope: true }, 'UNSUPPORTED', 'use_mrope'],
    [qwen2, { layer_types: ['chunked_attention', 'full_attention'] }, 'UNSUPPORTED', 'layer_types[0]'],
  ];
  for (const [c, json, code, ...fragments] of cases) {
    withDir((dir) => {
      write(dir, { ...c, opts: { ...c.opts, tokenizer: false, config: json } });
      assertAtlasError(() => loadHfCheckpoint(dir), code, ...fragments);
    });
  }
  const missing: [Case, string][] = [
    [qwen2, 'model.layers.1.self_attn.q_proj.bias'],
    [CASES.find((c) => c.family === 'qwen3')!, 'model.layers.0.self_attn.k_norm.weight'],
    [neox, 'embed_out.weight'],
    [neox, 'gpt_neox.layers.1.attention.query_key_value.bias'],
  ];
  for (const [c, tensor] of missing) {
    withDir((dir) => {
      write(dir, { ...c, opts: { ...c.opts, tokenizer: false, editTensors: (t) => delete t[tensor] } });
      assertAtlasError(() => loadHfCheckpoint(dir), 'BAD_FILE', `"${tensor}"`);
    });
  }
});
