/**
 * The ONNX encoder and the TypeScript architectures against the plain reference, every format × architecture ×
 * normalization.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  openSae,
  SaeEncoder,
  forward,
  reconstructionMetrics,
  NORMALIZATION_KINDS,
  SAE_ARCHITECTURES,
} from '../src/engine/sae/index.js';
import type { SaeConfig, SaeParams } from '../src/engine/sae/index.js';
import { isAtlasError } from '../src/errors.js';
import { refForwardOne, refTopK } from './reference/sae.js';
import { randomVectors, tempDir, writeSaeFixture, SaeFixtureOptions } from './helpers/sae-fixtures.js';

const TOL = 1e-5;
const N = 6;

function close(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) <= TOL * Math.max(1, Math.abs(b)), `${what}: ${a} vs reference ${b}`);
}

async function checkAgainstReference(cfg: SaeConfig, params: SaeParams, topK: number, label: string): Promise<void> {
  const x = randomVectors(N, cfg.dIn, 11);
  const enc = await SaeEncoder.create(cfg, params);
  try {
    // Codes alone, then with the reconstruction (which encodes at a width holding every active code).
    const codesOnly = await enc.encode(x, N, topK);
    assert.equal(codesOnly.xHat, null);
    const got = await enc.encode(x, N, topK, { reconstruct: true });
    const ts = forward(params, cfg, x, N);
    let active = 0;
    for (const [what, e] of [
      ['codes only', codesOnly],
      ['reconstructing', got],
    ] as const) {
      assert.equal(e.width, topK);
      assert.equal(e.indices.length, N * topK);
      for (let r = 0; r < N; r++) {
        const ref = refForwardOne(cfg, params, Array.from(x.subarray(r * cfg.dIn, (r + 1) * cfg.dIn)));
        const top = refTopK(ref.codes, topK);
        assert.equal(e.l0[r], ref.codes.filter((v) => v > 0).length, `${label} ${what} row ${r} l0`);
        for (let t = 0; t < topK; t++) {
          const v = e.values[r * topK + t];
          close(v, top.values[t], `${label} ${what} row ${r} top ${t} value`);
          // Zero slots hold no feature; a near-tie may order two features either way, as long as the values agree.
          if (top.values[t] > 0)
            close(
              ref.codes[e.indices[r * topK + t]],
              v,
              `${label} ${what} row ${r} top ${t} index ${e.indices[r * topK + t]}`,
            );
        }
      }
    }
    for (let r = 0; r < N; r++) {
      const ref = refForwardOne(cfg, params, Array.from(x.subarray(r * cfg.dIn, (r + 1) * cfg.dIn)));
      active += got.l0[r];
      for (let i = 0; i < cfg.dIn; i++) {
        close(got.xHat![r * cfg.dIn + i], ref.xHat[i], `${label} row ${r} x_hat[${i}]`);
        close(ts.xHat[r * cfg.dIn + i], ref.xHat[i], `${label} TS row ${r} x_hat[${i}]`);
      }
      for (let j = 0; j < cfg.dSae; j++)
        close(ts.codes[r * cfg.dSae + j], ref.codes[j], `${label} TS row ${r} code ${j}`);
    }
    assert.ok(active > 0, `${label}: the fixture should activate some features`);
  } finally {
    await enc.close();
  }
}

async function runCase(opts: SaeFixtureOptions, topK = 8): Promise<void> {
  const { dir, cleanup } = tempDir();
  try {
    const fx = writeSaeFixture(join(dir, 'sae'), opts);
    const src = openSae(fx.path);
    try {
      await checkAgainstReference(src.config, src.loadParams(), topK, JSON.stringify(opts));
    } finally {
      src.close();
    }
  } finally {
    cleanup();
  }
}

for (const architecture of SAE_ARCHITECTURES) {
  test(`SAELens (new cfg) ${architecture}: ONNX encoder = reference for every normalization`, async () => {
    for (const normalization of NORMALIZATION_KINDS) {
      await runCase({ format: 'saelens', architecture, normalization, dIn: 32, dSae: 128, seed: 3 });
    }
  });
  test(`SAELens (old cfg) ${architecture}: ONNX encoder = reference`, async () => {
    await runCase({ format: 'saelens-old', architecture, dIn: 24, dSae: 96, seed: 5 });
    await runCase({
      format: 'saelens-old',
      architecture,
      normalization: 'expected_average_only_in',
      scalingFactor: 0.25,
      dIn: 24,
      dSae: 96,
      seed: 6,
    });
  });
}

test('sparsify topk and Gemma Scope jumprelu (stored and deflated npz): ONNX encoder = reference', async () => {
  await runCase({ format: 'sparsify', dIn: 48, dSae: 192, k: 12, seed: 9 }, 16);
  await runCase({ format: 'gemmascope', dIn: 64, dSae: 256, seed: 10 });
  await runCase({ format: 'gemmascope', dIn: 16, dSae: 64, seed: 12, compressed: true, dtype: 'float16' });
});

test('float16/bfloat16 weights, apply_b_dec_to_input false, topK wider than the active set', async () => {
  await runCase({ format: 'saelens', architecture: 'jumprelu', dtype: 'float16', seed: 13 });
  await runCase({ format: 'saelens', architecture: 'gated', dtype: 'bfloat16', normalization: 'layer_norm', seed: 14 });
  await runCase({ format: 'saelens', architecture: 'standard', applyBDecToInput: false, seed: 15 });
  // k = 4 active per row but 10 requested: slots 4..9 must be zeros.
  await runCase({ format: 'saelens', architecture: 'topk', k: 4, seed: 16 }, 10);
});

test('encoder rejects bad input with actionable errors', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const fx = writeSaeFixture(join(dir, 'sae'), {
      format: 'saelens',
      normalization: 'constant_norm_rescale',
      dIn: 16,
      dSae: 64,
    });
    const enc = await SaeEncoder.create(fx.config, fx.params);
    const code = async (p: Promise<unknown>, want: string, text: RegExp): Promise<void> => {
      await assert.rejects(p, (e: unknown) => isAtlasError(e) && e.code === want && text.test(e.message));
    };
    await code(enc.encode(new Float32Array(15), 1, 4), 'DIMENSION_MISMATCH', /width 16.*15 values/);
    await code(
      enc.encode(new Float32Array(16).fill(1), 1, 0),
      'BAD_USER_INPUT',
      /topK must be an integer from 1 to 64/,
    );
    await code(enc.encode(new Float32Array(16).fill(1), 1, 65), 'BAD_USER_INPUT', /topK/);
    const bad = new Float32Array(32).fill(1);
    bad[16 + 5] = NaN;
    await code(enc.encode(bad, 2, 4), 'BAD_USER_INPUT', /Vector 1 has NaN at component 5/);
    await code(enc.encode(new Float32Array(16), 1, 4), 'BAD_USER_INPUT', /all zeros/);
    const empty = await enc.encode(new Float32Array(0), 0, 4);
    assert.equal(empty.indices.length, 0);
    await enc.close();
  } finally {
    cleanup();
  }
});

test('reconstructionMetrics follows its documented definitions', () => {
  const x = Float32Array.from([1, 2, 3, 4]);
  const xHat = Float32Array.from([1, 2, 3, 2]);
  const m = reconstructionMetrics(x, xHat, 2);
  assert.equal(m.mse, 4 / 4);
  // batch mean (2, 3); sum of squared deviations = 1+1+1+1 = 4
  assert.equal(m.normalizedMse, 1);
  assert.equal(m.explainedVariance, 0);
  const cos2 = (3 * 3 + 4 * 2) / (5 * Math.sqrt(13));
  assert.ok(Math.abs(m.cosine - (1 + cos2) / 2) < 1e-12);
  const single = reconstructionMetrics(x.subarray(0, 2), x.subarray(0, 2), 1);
  assert.equal(single.normalizedMse, null);
  assert.equal(single.mse, 0);
  assert.equal(single.cosine, 1);
});
