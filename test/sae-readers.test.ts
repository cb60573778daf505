/** Format readers: configuration and parameters as written, streamed decoder rows, sparsity, export round trip. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, renameSync } from 'node:fs';
import { openSae, writeSaelens, SAE_ARCHITECTURES } from '../src/engine/sae/index.js';
import type { SaeConfig, SaeParams, SaeSource } from '../src/engine/sae/index.js';
import { tempDir, writeSaeFixture, SaeFixtureOptions } from './helpers/sae-fixtures.js';

function withoutExtra(c: SaeConfig): Omit<SaeConfig, 'extra'> {
  const { extra: _extra, ...rest } = c;
  return rest;
}

function assertSameParams(got: SaeParams, want: SaeParams, label: string): void {
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `${label}: parameter names`);
  for (const [name, v] of Object.entries(want)) {
    const g = got[name as keyof SaeParams]!;
    assert.ok(
      Buffer.from(g.buffer, g.byteOffset, g.byteLength).equals(Buffer.from(v.buffer, v.byteOffset, v.byteLength)),
      `${label}: ${name} differs`,
    );
  }
}

function collectRows(src: SaeSource, batch: number): { starts: number[]; rows: Float32Array } {
  const starts: number[] = [];
  const parts: Float32Array[] = [];
  for (const b of src.decoderRows(batch)) {
    starts.push(b.start);
    parts.push(b.rows);
  }
  const rows = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    rows.set(p, o);
    o += p.length;
  }
  return { starts, rows };
}

const CASES: SaeFixtureOptions[] = [
  ...SAE_ARCHITECTURES.map((architecture) => ({ format: 'saelens' as const, architecture })),
  ...SAE_ARCHITECTURES.map((architecture) => ({ format: 'saelens-old' as const, architecture })),
  {
    format: 'saelens',
    architecture: 'topk',
    dtype: 'bfloat16',
    normalization: 'constant_norm_rescale',
    sparsity: true,
  },
  {
    format: 'saelens',
    architecture: 'jumprelu',
    dtype: 'float16',
    normalization: 'expected_average_only_in',
    scalingFactor: 3.5,
  },
  { format: 'saelens-old', architecture: 'standard', normalization: 'layer_norm', applyBDecToInput: false },
  { format: 'sparsify', k: 5 },
  { format: 'gemmascope' },
  { format: 'gemmascope', compressed: true, dtype: 'float16' },
];

test('every format reads back the configuration and the exact parameters written', () => {
  const { dir, cleanup } = tempDir();
  try {
    CASES.forEach((opts, i) => {
      const label = JSON.stringify(opts);
      const fx = writeSaeFixture(join(dir, `c${i}`), { dIn: 20, dSae: 70, seed: 20 + i, ...opts });
      const src = openSae(fx.path);
      try {
        assert.deepEqual(withoutExtra(src.config), withoutExtra(fx.config), label);
        assertSameParams(src.loadParams(), fx.params, label);
        const { starts, rows } = collectRows(src, 16);
        assert.deepEqual(starts, [0, 16, 32, 48, 64], `${label}: batch starts`);
        assertSameParams({ W_dec: rows } as SaeParams, { W_dec: fx.params.W_dec } as SaeParams, label);
        if (fx.logSparsity) assert.deepEqual(src.logSparsity(), fx.logSparsity);
        else assert.equal(src.logSparsity(), null);
      } finally {
        src.close();
      }
    });
  } finally {
    cleanup();
  }
});

test('openSae accepts a folder, a file inside it, or the npz itself; Gemma Scope hook from the release path', () => {
  const { dir, cleanup } = tempDir();
  try {
    const s = writeSaeFixture(join(dir, 's'), { format: 'saelens', dIn: 16, dSae: 64 });
    for (const p of [s.path, join(s.path, 'cfg.json'), join(s.path, 'sae_weights.safetensors')]) {
      const src = openSae(p);
      assert.equal(src.config.hookName, 'blocks.2.hook_resid_pre');
      assert.equal(src.config.modelName, 'stories260K');
      src.close();
    }
    const release = join(dir, 'gemma-scope-2b-pt-res', 'layer_12', 'width_16k', 'average_l0_82');
    mkdirSync(release, { recursive: true });
    const g = writeSaeFixture(join(dir, 'g'), { format: 'gemmascope', dIn: 16, dSae: 64 });
    renameSync(g.path, join(release, 'params.npz'));
    for (const p of [release, join(release, 'params.npz')]) {
      const src = openSae(p);
      assert.equal(src.config.hookName, 'blocks.12.hook_resid_post');
      assert.equal(src.config.applyBDecToInput, false);
      src.close();
    }
  } finally {
    cleanup();
  }
});

test('export writes SAELens that reads back bit-exact, from every format and architecture', () => {
  const { dir, cleanup } = tempDir();
  try {
    CASES.forEach((opts, i) => {
      const label = JSON.stringify(opts);
      const fx = writeSaeFixture(join(dir, `c${i}`), { dIn: 24, dSae: 48, seed: 40 + i, ...opts });
      const src = openSae(fx.path);
      const params = src.loadParams();
      const sparsity = src.logSparsity();
      writeSaelens(join(dir, `out${i}`), src.config, params, { logSparsity: sparsity });
      const back = openSae(join(dir, `out${i}`));
      try {
        assert.deepEqual(
          withoutExtra(back.config),
          { ...withoutExtra(src.config), sourceFormat: 'saelens', dtype: 'float32' },
          label,
        );
        assertSameParams(back.loadParams(), params, label);
        assert.deepEqual(back.logSparsity(), sparsity);
      } finally {
        back.close();
        src.close();
      }
    });
  } finally {
    cleanup();
  }
});
