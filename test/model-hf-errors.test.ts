/**
 * Bad Hugging Face checkpoints are refused with coded errors that name what is wrong: unknown
 * model_type, unsupported options, a missing tensor, a misshapen tensor (both shapes), truncated
 * safetensors (including one shard of several), and a folder without weights.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, truncateSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHfCheckpoint, readHfModelInfo } from '../src/engine/checkpoints/huggingface.js';
import { AtlasError } from '../src/errors.js';
import { writeTinyGpt2, writeTinyLlama } from './helpers/hf-fixtures.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-hf-bad-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function assertAtlasError(fn: () => unknown, code: string, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AtlasError, `expected AtlasError, got ${e}`);
    assert.equal(e.code, code, e.message);
    for (const f of fragments) assert.ok(e.message.includes(f), `message "${e.message}" lacks "${f}"`);
    return true;
  });
}

test('an unknown model_type is named, with the supported ones', () =>
  withDir((dir) => {
    writeTinyLlama(dir, { tokenizer: false, config: { model_type: 'mamba' } });
    assertAtlasError(() => loadHfCheckpoint(dir), 'UNSUPPORTED', '"mamba"', 'gpt2, llama');
    assertAtlasError(() => readHfModelInfo(dir), 'UNSUPPORTED', '"mamba"');
  }));

test('options the graphs do not implement are refused by name', () => {
  const cases: [(dir: string, o: object) => unknown, Record<string, unknown>, string][] = [
    [writeTinyLlama, { rope_scaling: { rope_type: 'longrope', factor: 8 } }, 'rope_scaling.rope_type "longrope"'],
    [writeTinyLlama, { quantization_config: { quant_method: 'gptq' } }, '"quantization_config"'],
    [writeTinyLlama, { hidden_act: 'gelu' }, 'hidden_act'],
    [writeTinyGpt2, { activation_function: 'relu' }, 'relu'],
    [writeTinyGpt2, { use_alibi: true }, '"use_alibi"'],
  ];
  for (const [write, config, fragment] of cases) {
    withDir((dir) => {
      write(dir, { tokenizer: false, config });
      assertAtlasError(() => loadHfCheckpoint(dir), 'UNSUPPORTED', fragment);
    });
  }
});

test('a missing config field is named', () =>
  withDir((dir) => {
    writeTinyGpt2(dir, { tokenizer: false, config: { n_embd: undefined } });
    assertAtlasError(() => loadHfCheckpoint(dir), 'BAD_FILE', '"n_embd"', 'config.json');
  }));

test('a missing tensor is named', () =>
  withDir((dir) => {
    writeTinyLlama(dir, { tokenizer: false, editTensors: (t) => delete t['model.layers.1.self_attn.k_proj.weight'] });
    assertAtlasError(() => loadHfCheckpoint(dir), 'BAD_FILE', '"model.layers.1.self_attn.k_proj.weight"');
  }));

test('an untied llama without lm_head names lm_head.weight', () =>
  withDir((dir) => {
    writeTinyLlama(dir, { tokenizer: false, tied: false, editTensors: (t) => delete t['lm_head.weight'] });
    assertAtlasError(() => loadHfCheckpoint(dir), 'BAD_FILE', '"lm_head.weight"');
  }));

test('a misshapen tensor is named with both shapes', () =>
  withDir((dir) => {
    writeTinyGpt2(dir, {
      tokenizer: false,
      editTensors: (t) => {
        const name = 'transformer.h.0.mlp.c_fc.weight';
        t[name] = { shape: [128, 32], data: t[name].data };
      },
    });
    assertAtlasError(
      () => loadHfCheckpoint(dir),
      'BAD_FILE',
      '"transformer.h.0.mlp.c_fc.weight"',
      '[128, 32]',
      '[32, 128]',
    );
  }));

test('a truncated safetensors file is a BAD_FILE error, single or sharded', () => {
  withDir((dir) => {
    writeTinyGpt2(dir, { tokenizer: false });
    const file = join(dir, 'model.safetensors');
    truncateSync(file, statSync(file).size - 100);
    assertAtlasError(() => loadHfCheckpoint(dir), 'BAD_FILE', 'truncated');
    truncateSync(file, 5);
    assertAtlasError(() => loadHfCheckpoint(dir), 'BAD_FILE', 'truncated');
  });
  withDir((dir) => {
    writeTinyLlama(dir, { tokenizer: false, shards: 2, dtype: 'BF16' });
    const shard = join(dir, 'model-00002-of-00002.safetensors');
    truncateSync(shard, statSync(shard).size - 1);
    assertAtlasError(() => loadHfCheckpoint(dir), 'BAD_FILE', 'model-00002-of-00002.safetensors', 'truncated');
  });
});

test('a folder without weights, or with only pytorch_model.bin, says what to do', () =>
  withDir((dir) => {
    writeTinyGpt2(dir, { tokenizer: false });
    rmSync(join(dir, 'model.safetensors'));
    assertAtlasError(() => loadHfCheckpoint(dir), 'BAD_FILE', 'model.safetensors');
    writeFileSync(join(dir, 'pytorch_model.bin'), 'x');
    assertAtlasError(() => loadHfCheckpoint(dir), 'UNSUPPORTED', 'pytorch_model.bin', 'safetensors');
    writeFileSync(join(dir, 'config.json'), readFileSync(join(dir, 'config.json'), 'utf8').slice(0, 20));
    assertAtlasError(() => loadHfCheckpoint(dir), 'BAD_FILE', 'config.json');
  }));
