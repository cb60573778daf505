/**
 * dictionary_learning (every dict_class), Goodfire, Llama Scope and SAELens batchtopk files written
 * the way their publishers write them: torch.save fixtures from tools/fixtures/torch_fixtures.py
 * whose expected encodings torch computed with each class's published forward pass in float64, and
 * Llama Scope / SAELens folders written here with test/reference/sae.ts as the oracle. The engine's
 * TypeScript forward, the ONNX encoder and the plain reference must all agree within 1e-5; export →
 * read round trips; each bad file is a coded error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSae, SaeEncoder, forward, writeSaelens } from '../src/engine/sae/index.js';
import type { SaeSource } from '../src/engine/sae/index.js';
import { dictionaryName } from '../src/engine/sae/open.js';
import { writeSafetensors } from '../src/engine/tensors/safetensors.js';
import { isAtlasError } from '../src/errors.js';
import { LlamaScopeHyper, refForwardOne, refLlamaScopeOne } from './reference/sae.js';
import { randomVectors, tempDir, writeLlamaScopeFixture } from './helpers/sae-fixtures.js';
import { normal, rng } from './helpers/rng.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'torch');
const TOL = 1e-5;

interface Expected {
  dIn: number;
  dSae: number;
  x: number[];
  latents: number[];
  recons: number[];
}

function close(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) <= TOL * Math.max(1, Math.abs(b)), `${what}: ${a} vs expected ${b}`);
}

/** TypeScript forward, ONNX encoder and the plain reference against the expected codes and reconstructions. */
async function checkEncoding(src: SaeSource, want: Expected, label: string): Promise<void> {
  const cfg = src.config;
  assert.deepEqual([cfg.dIn, cfg.dSae], [want.dIn, want.dSae], label);
  const params = src.loadParams();
  const n = want.x.length / want.dIn;
  const x = Float32Array.from(want.x);
  const ts = forward(params, cfg, x, n);
  const enc = await SaeEncoder.create(cfg, params);
  const got = await enc.encode(x, n, cfg.dSae, { reconstruct: true });
  await enc.close();
  let active = 0;
  for (let r = 0; r < n; r++) {
    const ref = refForwardOne(cfg, params, want.x.slice(r * want.dIn, (r + 1) * want.dIn));
    const dense = new Float64Array(want.dSae);
    // Zero slots hold no feature.
    for (let t = 0; t < want.dSae; t++)
      if (got.values[r * want.dSae + t] > 0) dense[got.indices[r * want.dSae + t]] = got.values[r * want.dSae + t];
    for (let j = 0; j < want.dSae; j++) {
      const e = want.latents[r * want.dSae + j];
      if (e > 0) active++;
      close(ts.codes[r * want.dSae + j], e, `${label} TS row ${r} latent ${j}`);
      close(dense[j], e, `${label} ONNX row ${r} latent ${j}`);
      close(ref.codes[j], e, `${label} reference row ${r} latent ${j}`);
    }
    for (let i = 0; i < want.dIn; i++) {
      const e = want.recons[r * want.dIn + i];
      close(ts.xHat[r * want.dIn + i], e, `${label} TS row ${r} recons ${i}`);
      close(got.xHat![r * want.dIn + i], e, `${label} ONNX row ${r} recons ${i}`);
      close(ref.xHat[i], e, `${label} reference row ${r} recons ${i}`);
    }
  }
  assert.ok(active > 0 && active < n * want.dSae, `${label}: the fixture should activate some latents, not all`);
}

/** Export as SAELens, read back: the same parameters and encoding configuration. */
function checkRoundTrip(src: SaeSource, label: string): void {
  const { dir, cleanup } = tempDir();
  try {
    writeSaelens(join(dir, 'out'), src.config, src.loadParams());
    const back = openSae(join(dir, 'out'));
    assert.deepEqual(back.loadParams(), src.loadParams(), label);
    for (const key of ['architecture', 'k', 'applyBDecToInput', 'normalization'] as const)
      assert.deepEqual(back.config[key], src.config[key], `${label}: ${key}`);
    back.close();
  } finally {
    cleanup();
  }
}

const DL_CLASSES: [string, string][] = [
  ['AutoEncoder', 'standard'],
  ['AutoEncoderNew', 'standard'],
  ['GatedAutoEncoder', 'gated'],
  ['AutoEncoderTopK', 'topk'],
  ['BatchTopKSAE', 'jumprelu'],
  ['MatryoshkaBatchTopKSAE', 'jumprelu'],
  ['JumpReluAutoEncoder', 'jumprelu'],
];

for (const [cls, architecture] of DL_CLASSES) {
  test(`dictionary_learning ${cls}: encode = published forward (torch, float64); export round trip`, async () => {
    const want = JSON.parse(readFileSync(join(FIXTURES, `dl-${cls}.expected.json`), 'utf8')) as Expected;
    // The folder, as the package saves it (ae.pt + config.json), and the ae.pt path itself.
    for (const path of [join(FIXTURES, `dl-${cls}`), join(FIXTURES, `dl-${cls}`, 'ae.pt')]) {
      const src = openSae(path);
      try {
        assert.equal(src.config.sourceFormat, 'dictionary_learning');
        assert.equal(src.config.architecture, architecture);
        assert.equal(src.config.hookName, 'blocks.1.hook_resid_post');
        assert.equal(src.config.modelName, 'test/tiny');
        assert.equal(dictionaryName(path), `dl-${cls}`);
        await checkEncoding(src, want, cls);
        checkRoundTrip(src, cls);
      } finally {
        src.close();
      }
    }
  });
}

test('Goodfire .pth (bfloat16): encode = published forward; hook from the file name; round trip', async () => {
  const want = JSON.parse(readFileSync(join(FIXTURES, 'goodfire.expected.json'), 'utf8')) as Expected;
  const src = openSae(join(FIXTURES, 'goodfire', 'Tiny-SAE-l1.pth'));
  try {
    assert.equal(src.config.sourceFormat, 'goodfire');
    assert.equal(src.config.dtype, 'bfloat16');
    assert.equal(src.config.hookName, 'blocks.1.hook_resid_post');
    assert.equal(src.config.applyBDecToInput, false);
    assert.equal(dictionaryName(join(FIXTURES, 'goodfire', 'Tiny-SAE-l1.pth')), 'Tiny-SAE-l1');
    await checkEncoding(src, want, 'goodfire');
    checkRoundTrip(src, 'goodfire');
  } finally {
    src.close();
  }
});

function randn(rand: () => number, count: number, scale: number, shift = 0): Float32Array {
  return Float32Array.from({ length: count }, () => shift + scale * normal(rand));
}

test(
  'Llama Scope: dataset-wise norm, scalar JumpReLU threshold (with and without decoder norm) = its published ' +
    'forward',
  async () => {
    const { dir, cleanup } = tempDir();
    try {
      const d = 24;
      const cases: (LlamaScopeHyper & Record<string, unknown>)[] = [
        {
          d_model: d,
          d_sae: 64,
          act_fn: 'jumprelu',
          jump_relu_threshold: 0.4,
          norm_activation: 'dataset-wise',
          dataset_average_activation_norm: { in: 7.5, out: 7.5 },
          apply_decoder_bias_to_pre_encoder: false,
          hook_point_in: 'blocks.3.hook_resid_post',
          hook_point_out: 'blocks.3.hook_resid_post',
          top_k: 50,
        },
        {
          d_model: d,
          d_sae: 48,
          act_fn: 'jumprelu',
          jump_relu_threshold: 0.9,
          norm_activation: 'dataset-wise',
          dataset_average_activation_norm: { in: 2.25, out: 2.25 },
          apply_decoder_bias_to_pre_encoder: true,
          sparsity_include_decoder_norm: true,
          hook_point_in: 'blocks.0.hook_attn_out',
          hook_point_out: 'blocks.0.hook_attn_out',
        },
      ];
      for (const [c, hp] of cases.entries()) {
        const folder = join(dir, `L${c}`);
        const t = writeLlamaScopeFixture(folder, hp, 40 + c);
        const n = 5;
        const x = randomVectors(n, d, 60 + c, 3);
        const want: Expected = { dIn: d, dSae: hp.d_sae, x: Array.from(x), latents: [], recons: [] };
        for (let r = 0; r < n; r++) {
          const ref = refLlamaScopeOne(hp, t, Array.from(x.subarray(r * d, (r + 1) * d)));
          want.latents.push(...ref.codes);
          want.recons.push(...ref.xHat);
        }
        for (const path of [
          folder,
          join(folder, 'checkpoints', 'final.safetensors'),
          join(folder, 'hyperparams.json'),
        ]) {
          const src = openSae(path);
          try {
            assert.equal(src.config.sourceFormat, 'llamascope');
            assert.equal(src.config.hookName, hp.hook_point_in);
            assert.equal(dictionaryName(path), `L${c}`);
            assert.deepEqual(src.config.normalization, {
              kind: 'expected_average_only_in',
              scalingFactor: Math.sqrt(d) / hp.dataset_average_activation_norm.in,
            });
            await checkEncoding(src, want, `llamascope ${c}`);
            checkRoundTrip(src, `llamascope ${c}`);
          } finally {
            src.close();
          }
        }
      }
    } finally {
      cleanup();
    }
  },
);

test('SAELens batchtopk and matryoshka_batchtopk: JumpReLU with the learned global threshold', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const d = 16;
    const m = 40;
    const rand = rng(77);
    const W_enc = randn(rand, d * m, 0.4);
    const b_enc = randn(rand, m, 0.2, -0.1);
    const W_dec = randn(rand, m * d, 0.3);
    const b_dec = randn(rand, d, 0.3);
    const theta = 0.35;
    for (const architecture of ['batchtopk', 'matryoshka_batchtopk']) {
      const folder = join(dir, architecture);
      mkdirSync(folder, { recursive: true });
      writeFileSync(
        join(folder, 'cfg.json'),
        JSON.stringify({
          architecture,
          d_in: d,
          d_sae: m,
          k: 8,
          apply_b_dec_to_input: true,
          normalize_activations: 'none',
          metadata: { hook_name: 'blocks.1.hook_resid_post' },
        }),
      );
      writeSafetensors(join(folder, 'sae_weights.safetensors'), {
        W_enc: { shape: [d, m], data: W_enc },
        b_enc: { shape: [m], data: b_enc },
        W_dec: { shape: [m, d], data: W_dec },
        b_dec: { shape: [d], data: b_dec },
        topk_threshold: { shape: [], data: Float32Array.of(theta) },
      });
      const n = 5;
      const x = randomVectors(n, d, 78, 2);
      const want: Expected = { dIn: d, dSae: m, x: Array.from(x), latents: [], recons: [] };
      // SAELens's BatchTopK inference: relu(pre) where pre > topk_threshold, written independently here.
      for (let r = 0; r < n; r++) {
        const xs = Array.from({ length: d }, (_, i) => x[r * d + i] - b_dec[i]);
        const codes = Array.from({ length: m }, (_, j) => {
          let pre = b_enc[j];
          for (let i = 0; i < d; i++) pre += xs[i] * W_enc[i * m + j];
          return pre > theta ? Math.max(pre, 0) : 0;
        });
        want.latents.push(...codes);
        for (let i = 0; i < d; i++) {
          let s = b_dec[i];
          for (let j = 0; j < m; j++) s += codes[j] * W_dec[j * d + i];
          want.recons.push(s);
        }
      }
      const src = openSae(folder);
      try {
        assert.equal(src.config.architecture, 'jumprelu');
        await checkEncoding(src, want, architecture);
        checkRoundTrip(src, architecture);
      } finally {
        src.close();
      }
    }
  } finally {
    cleanup();
  }
});

function expectCode(path: string, code: string, pattern: RegExp): void {
  assert.throws(
    () => {
      const src = openSae(path);
      try {
        src.loadParams();
      } finally {
        src.close();
      }
    },
    (e: unknown) => {
      assert.ok(isAtlasError(e), `${path}: expected an AtlasError, got ${e}`);
      assert.equal(e.code, code, e.message);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

test('bad dictionary_learning, Goodfire and Llama Scope files are coded errors', () => {
  const { dir, cleanup } = tempDir();
  try {
    const dl = (name: string, edit: (cfg: { trainer: Record<string, unknown> }) => void): string => {
      const folder = join(dir, name);
      mkdirSync(folder);
      writeFileSync(join(folder, 'ae.pt'), readFileSync(join(FIXTURES, 'dl-AutoEncoderTopK', 'ae.pt')));
      const cfg = JSON.parse(readFileSync(join(FIXTURES, 'dl-AutoEncoderTopK', 'config.json'), 'utf8'));
      edit(cfg);
      writeFileSync(join(folder, 'config.json'), JSON.stringify(cfg));
      return folder;
    };
    expectCode(
      dl('class', (c) => {
        c.trainer.dict_class = 'CrossCoder';
      }),
      'UNSUPPORTED',
      /"CrossCoder".*AutoEncoderTopK/,
    );
    expectCode(
      dl('width', (c) => {
        c.trainer.dict_size = 99;
      }),
      'BAD_FILE',
      /dict_size 99/,
    );
    expectCode(
      dl('k', (c) => {
        c.trainer.k = 7;
      }),
      'BAD_FILE',
      /k = 7.*k = 6/,
    );
    expectCode(
      dl('gated', (c) => {
        c.trainer.dict_class = 'GatedAutoEncoder';
      }),
      'BAD_FILE',
      /"gate_bias"|"encoder\.weight"|missing/,
    );
    const cut = join(dir, 'cut.pth');
    writeFileSync(cut, readFileSync(join(FIXTURES, 'goodfire', 'Tiny-SAE-l1.pth')).subarray(0, 2000));
    expectCode(cut, 'BAD_FILE', /truncated|not a zip/);
    const ls = (name: string, hp: Record<string, unknown>): string => {
      const folder = join(dir, name);
      writeLlamaScopeFixture(
        folder,
        {
          d_model: 8,
          d_sae: 16,
          jump_relu_threshold: 0.1,
          dataset_average_activation_norm: { in: 2, out: 2 },
          ...hp,
        } as LlamaScopeHyper & Record<string, unknown>,
        1,
      );
      return folder;
    };
    expectCode(
      ls('transcoder', { hook_point_in: 'blocks.0.ln2.hook_normalized', hook_point_out: 'blocks.0.hook_mlp_out' }),
      'UNSUPPORTED',
      /transcoder/,
    );
    expectCode(ls('act', { act_fn: 'gelu' }), 'UNSUPPORTED', /"gelu"/);
    expectCode(
      ls('norm', { dataset_average_activation_norm: { in: 0 } }),
      'BAD_FILE',
      /dataset_average_activation_norm\.in/,
    );
    const wide = ls('width', {});
    const hp = JSON.parse(readFileSync(join(wide, 'hyperparams.json'), 'utf8'));
    writeFileSync(join(wide, 'hyperparams.json'), JSON.stringify({ ...hp, d_sae: 17 }));
    expectCode(wide, 'BAD_FILE', /"encoder\.weight".*\[16, 8\].*\[17, 8\]/);
  } finally {
    cleanup();
  }
});
