/** Every bad-file case gives one AtlasError with the right code and a message naming the culprit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { openSae } from '../src/engine/sae/index.js';
import { NpzFile } from '../src/engine/tensors/npy.js';
import { isAtlasError } from '../src/errors.js';
import { tempDir, writeNpz, writeSaeFixture, SaeFixtureOptions } from './helpers/sae-fixtures.js';

/** Opens the fixture and touches every tensor (params and decoder stream), expecting one AtlasError. */
function expectError(opts: SaeFixtureOptions, code: string, ...mentions: (string | RegExp)[]): void {
  const { dir, cleanup } = tempDir();
  try {
    const fx = writeSaeFixture(join(dir, 'sae'), { dIn: 16, dSae: 64, ...opts });
    assert.throws(
      () => {
        const src = openSae(fx.path);
        try {
          for (const _ of src.decoderRows(8));
          src.loadParams();
        } finally {
          src.close();
        }
      },
      (e: unknown) => {
        assert.ok(isAtlasError(e), `expected an AtlasError, got ${e}`);
        assert.equal(e.code, code, e.message);
        for (const m of mentions) {
          if (typeof m === 'string') assert.ok(e.message.includes(m), `"${e.message}" should mention ${m}`);
          else assert.match(e.message, m);
        }
        return true;
      },
      JSON.stringify(opts),
    );
  } finally {
    cleanup();
  }
}

test('missing tensors are named', () => {
  expectError(
    { format: 'saelens', corrupt: { kind: 'missing-tensor', tensor: 'W_dec' } },
    'BAD_FILE',
    '"W_dec"',
    'sae_weights.safetensors',
  );
  expectError(
    { format: 'saelens', architecture: 'jumprelu', corrupt: { kind: 'missing-tensor', tensor: 'threshold' } },
    'BAD_FILE',
    '"threshold"',
  );
  expectError(
    { format: 'saelens-old', architecture: 'gated', corrupt: { kind: 'missing-tensor', tensor: 'b_gate' } },
    'BAD_FILE',
    '"b_gate"',
  );
  expectError(
    { format: 'sparsify', corrupt: { kind: 'missing-tensor', tensor: 'encoder.bias' } },
    'BAD_FILE',
    '"encoder.bias"',
  );
  expectError(
    { format: 'gemmascope', corrupt: { kind: 'missing-tensor', tensor: 'threshold' } },
    'BAD_FILE',
    '"threshold"',
    'params.npz',
  );
});

test('wrong shapes name the tensor and both shapes', () => {
  expectError(
    { format: 'saelens', corrupt: { kind: 'wrong-shape', tensor: 'W_enc' } },
    'BAD_FILE',
    '"W_enc"',
    '[17, 64]',
    '[16, 64]',
  );
  expectError(
    { format: 'saelens', architecture: 'gated', corrupt: { kind: 'wrong-shape', tensor: 'r_mag' } },
    'BAD_FILE',
    '"r_mag"',
    '[65]',
    '[64]',
  );
  expectError(
    { format: 'sparsify', corrupt: { kind: 'wrong-shape', tensor: 'W_dec' } },
    'BAD_FILE',
    '"W_dec"',
    '[65, 16]',
    '[64, 16]',
  );
  expectError(
    { format: 'gemmascope', compressed: true, corrupt: { kind: 'wrong-shape', tensor: 'b_dec' } },
    'BAD_FILE',
    '"b_dec"',
    '[17]',
    '[16]',
  );
});

test('NaN and infinities name the tensor and the first bad index', () => {
  expectError(
    { format: 'saelens', corrupt: { kind: 'non-finite', tensor: 'b_enc', index: 5 } },
    'BAD_FILE',
    '"b_enc"',
    'NaN',
    'index 5',
  );
  // Row 37 of W_dec lies in the fifth streamed batch of 8; the index is still global.
  expectError(
    {
      format: 'saelens',
      dtype: 'float16',
      corrupt: { kind: 'non-finite', tensor: 'W_dec', index: 37 * 16 + 2, value: Infinity },
    },
    'BAD_FILE',
    '"W_dec"',
    'Infinity',
    `index ${37 * 16 + 2}`,
  );
  expectError(
    {
      format: 'sparsify',
      dtype: 'bfloat16',
      corrupt: { kind: 'non-finite', tensor: 'encoder.weight', index: 9, value: -Infinity },
    },
    'BAD_FILE',
    '"encoder.weight"',
    '-Infinity',
    'index 9',
  );
  expectError(
    { format: 'gemmascope', corrupt: { kind: 'non-finite', tensor: 'threshold', index: 63 } },
    'BAD_FILE',
    '"threshold"',
    'index 63',
  );
});

test('truncated files are reported as truncated', () => {
  expectError({ format: 'saelens', corrupt: { kind: 'truncate' } }, 'BAD_FILE', 'truncated', 'sae_weights.safetensors');
  expectError({ format: 'sparsify', corrupt: { kind: 'truncate', bytes: 4000 } }, 'BAD_FILE', 'truncated');
  expectError({ format: 'gemmascope', corrupt: { kind: 'truncate' } }, 'BAD_FILE', /truncated|not a zip/);
  expectError(
    { format: 'gemmascope', compressed: true, corrupt: { kind: 'truncate', bytes: 3000 } },
    'BAD_FILE',
    /truncated|not a zip/,
  );
});

test('unknown architectures are named along with the supported ones', () => {
  expectError(
    { format: 'saelens', corrupt: { kind: 'unknown-architecture', name: 'crosscoder' } },
    'UNSUPPORTED',
    'crosscoder',
    'standard, jumprelu, topk, gated',
  );
  expectError(
    { format: 'saelens-old', corrupt: { kind: 'unknown-architecture', name: 'clt' } },
    'UNSUPPORTED',
    'clt',
    'standard, jumprelu, topk, gated',
    'skip_transcoder',
  );
  expectError(
    { format: 'sparsify', corrupt: { kind: 'unknown-architecture', name: 'groupmax' } },
    'UNSUPPORTED',
    'groupmax',
    'topk',
  );
});

test('folders without a dictionary, unreadable cfg.json and bad cfg values', () => {
  const { dir, cleanup } = tempDir();
  try {
    const check = (path: string, code: string, text: RegExp): void => {
      assert.throws(
        () => openSae(path),
        (e: unknown) => isAtlasError(e) && e.code === code && text.test(e.message),
      );
    };
    check(join(dir, 'nope'), 'BAD_FILE', /does not exist/);
    mkdirSync(join(dir, 'empty'));
    check(join(dir, 'empty'), 'BAD_FILE', /holds no SAE dictionary.*sae_weights\.safetensors/);
    const s = writeSaeFixture(join(dir, 's'), { format: 'saelens', dIn: 16, dSae: 64 });
    writeFileSync(join(s.path, 'cfg.json'), '{"architecture": "standard", "d_in": 16,');
    check(s.path, 'BAD_FILE', /cfg\.json is not valid JSON/);
    writeFileSync(
      join(s.path, 'cfg.json'),
      JSON.stringify({ architecture: 'standard', d_in: 16, d_sae: 64, normalize_activations: 'whiten' }),
    );
    check(s.path, 'UNSUPPORTED', /normalize_activations "whiten".*layer_norm/);
    writeFileSync(join(s.path, 'cfg.json'), JSON.stringify({ architecture: 'topk', d_in: 16, d_sae: 64 }));
    check(s.path, 'BAD_FILE', /k \(the topk activation count\) must be a positive integer/);
    writeFileSync(join(s.path, 'cfg.json'), JSON.stringify({ architecture: 'standard', d_in: 15, d_sae: 64 }));
    check(s.path, 'BAD_FILE', /"W_enc" has shape \[16, 64\] but \[15, 64\]/);
    writeFileSync(
      join(s.path, 'cfg.json'),
      JSON.stringify({ architecture: 'topk', k: 8, d_in: 16, d_sae: 64, rescale_acts_by_decoder_norm: true }),
    );
    check(s.path, 'UNSUPPORTED', /rescale_acts_by_decoder_norm/);
  } finally {
    cleanup();
  }
});

test(
  'npz reader: f8/f2 arrays, deflate and zip64 archives read; Fortran order and other dtypes refused ' + 'clearly',
  () => {
    const { dir, cleanup } = tempDir();
    try {
      const data = Float32Array.from({ length: 6 }, (_, i) => i / 4);
      const path = join(dir, 'a.npz');
      for (const zip64 of [false, true]) {
        writeNpz(
          path,
          { f8: { shape: [2, 3], data, descr: '<f8' }, f2: { shape: [3, 2], data, descr: '<f2' } },
          { compressed: !zip64, zip64 },
        );
        const f = NpzFile.open(path);
        assert.deepEqual(f.names(), ['f8', 'f2']);
        assert.deepEqual(f.readRowsF32('f8', 1, 1), data.subarray(3));
        assert.deepEqual(f.readF32('f2', [3, 2]), data);
        f.close();
      }
      const bad = (arrays: Parameters<typeof writeNpz>[1], text: RegExp): void => {
        writeNpz(path, arrays);
        assert.throws(
          () => NpzFile.open(path),
          (e: unknown) => isAtlasError(e) && e.code === 'UNSUPPORTED' && text.test(e.message),
        );
      };
      bad({ W: { shape: [2, 3], data, fortranOrder: true } }, /array "W" is stored in Fortran.*ascontiguousarray/);
      bad({ W: { shape: [2, 3], data, descr: '>f4' } }, /array "W" has dtype '>f4'; supported are <f4, <f2, <f8/);
      bad({ W: { shape: [6], data, descr: '<i4' } }, /'<i4'/);
    } finally {
      cleanup();
    }
  },
);
