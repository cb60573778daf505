/**
 * OpenAI sparse_autoencoder files written by torch.save (tools/fixtures/torch_fixtures.py): encode
 * and reconstruction against the published forward pass computed by torch in float64 (the
 * *.expected.json files) and against test/reference/sae.ts; density, hook names, export round trip
 * and every bad file as a coded error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSae, SaeEncoder, forward, writeSaelens } from '../src/engine/sae/index.js';
import { dictionaryName } from '../src/engine/sae/open.js';
import { isAtlasError } from '../src/errors.js';
import { refForwardOne } from './reference/sae.js';
import { tempDir } from './helpers/sae-fixtures.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'torch');
const TOL = 1e-5;

interface Expected {
  dIn: number;
  dSae: number;
  k: number | null;
  x: number[];
  latents: number[];
  recons: number[];
  density: number[];
}

function close(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) <= TOL * Math.max(1, Math.abs(b)), `${what}: ${a} vs expected ${b}`);
}

for (const name of ['openai-topk', 'openai-relu', 'openai-tied']) {
  test(`${name}: encode and reconstruction equal the published model's (torch, float64)`, async () => {
    const want = JSON.parse(readFileSync(join(FIXTURES, `${name}.expected.json`), 'utf8')) as Expected;
    const src = openSae(join(FIXTURES, `${name}.pt`));
    try {
      const cfg = src.config;
      assert.equal(cfg.sourceFormat, 'openai');
      assert.equal(cfg.architecture, want.k === null ? 'standard' : 'topk');
      assert.equal(cfg.k, want.k);
      assert.equal(cfg.normalization.kind, want.k === null ? 'none' : 'layer_norm');
      assert.deepEqual([cfg.dIn, cfg.dSae], [want.dIn, want.dSae]);
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
        for (let j = 0; j < want.dSae; j++) {
          const e = want.latents[r * want.dSae + j];
          if (e > 0) active++;
          close(ts.codes[r * want.dSae + j], e, `TS row ${r} latent ${j}`);
          close(ref.codes[j], e, `reference row ${r} latent ${j}`);
        }
        // The ONNX graph returns every code sorted (topK = dSae): compare as a dense row. Zero slots hold no feature.
        const dense = new Float64Array(want.dSae);
        for (let t = 0; t < want.dSae; t++)
          if (got.values[r * want.dSae + t] > 0) dense[got.indices[r * want.dSae + t]] = got.values[r * want.dSae + t];
        for (let j = 0; j < want.dSae; j++)
          close(dense[j], want.latents[r * want.dSae + j], `ONNX row ${r} latent ${j}`);
        for (let i = 0; i < want.dIn; i++) {
          const e = want.recons[r * want.dIn + i];
          close(ts.xHat[r * want.dIn + i], e, `TS row ${r} recons ${i}`);
          close(got.xHat![r * want.dIn + i], e, `ONNX row ${r} recons ${i}`);
          close(ref.xHat[i], e, `reference row ${r} recons ${i}`);
        }
      }
      assert.ok(active > 0, 'the fixture should activate some latents');
      if (want.k !== null) assert.equal(active, n * want.k);
      assert.deepEqual(src.density(), Float32Array.from(want.density));
    } finally {
      src.close();
    }
  });
}

test('the release path names the hook; a folder with one .pt opens it', () => {
  const { dir, cleanup } = tempDir();
  try {
    const release = join(dir, 'resid_post_mlp_v5_32k', 'autoencoders');
    mkdirSync(release, { recursive: true });
    copyFileSync(join(FIXTURES, 'openai-topk.pt'), join(release, '8.pt'));
    const byFile = openSae(join(release, '8.pt'));
    assert.equal(byFile.config.hookName, 'blocks.8.hook_resid_post');
    // One file of twelve in its folder: the default dictionary name says which.
    assert.equal(dictionaryName(join(release, '8.pt')), 'resid_post_mlp_v5_32k-8');
    byFile.close();
    const other = join(dir, 'resid_delta_attn_v5_128k', 'autoencoders');
    mkdirSync(other, { recursive: true });
    copyFileSync(join(FIXTURES, 'openai-relu.pt'), join(other, '3.pt'));
    const byFolder = openSae(other);
    assert.equal(byFolder.config.hookName, 'blocks.3.hook_attn_out');
    byFolder.close();
  } finally {
    cleanup();
  }
});

test('export as SAELens and read back: the same parameters and normalization', () => {
  const { dir, cleanup } = tempDir();
  try {
    const a = openSae(join(FIXTURES, 'openai-topk.pt'));
    writeSaelens(join(dir, 'out'), a.config, a.loadParams());
    const b = openSae(join(dir, 'out'));
    assert.deepEqual(b.loadParams(), a.loadParams());
    assert.equal(b.config.architecture, 'topk');
    assert.equal(b.config.k, a.config.k);
    assert.deepEqual(b.config.normalization, a.config.normalization);
    a.close();
    b.close();
  } finally {
    cleanup();
  }
});

test('bad OpenAI files are coded errors naming the problem', () => {
  const cases: [string, string, RegExp][] = [
    ['openai-bad-activation.pt', 'UNSUPPORTED', /"JumpReLU".*TopK or ReLU/],
    ['openai-identity.pt', 'UNSUPPORTED', /postact_fn "Identity"/],
    ['openai-no-k.pt', 'BAD_FILE', /activation_state_dict\.k/],
    ['openai-wrong-shape.pt', 'BAD_FILE', /"decoder\.weight".*\[4, 9\].*\[4, 8\]/],
    ['openai-nan.pt', 'BAD_FILE', /"encoder\.weight" holds NaN/],
    ['openai-bad-frequency.pt', 'BAD_FILE', /latents_activation_frequency\[5\] is 1\.5/],
    ['hostile-os-system.pt', 'UNSAFE_CHECKPOINT', /posix\.system/],
    ['basic.pt', 'UNSUPPORTED', /no known dictionary layout/],
  ];
  for (const [file, code, pattern] of cases) {
    assert.throws(
      () => {
        const src = openSae(join(FIXTURES, file));
        try {
          src.loadParams();
          src.density();
        } finally {
          src.close();
        }
      },
      (e: unknown) => {
        assert.ok(isAtlasError(e), `${file}: expected an AtlasError, got ${e}`);
        assert.equal(e.code, code, `${file}: ${e.message}`);
        assert.match(e.message, pattern, file);
        return true;
      },
    );
  }
});
