/**
 * stories260K (a real llama2.c checkpoint) through the whole runtime: every hook of the ONNX graph
 * against the pure-TypeScript reference, padded batches against single runs, pruned graphs against
 * the full one, greedy generation against the reference for 256 steps, the on-disk graph cache, and
 * refusals of bad input. Fails when ../shared is absent.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { openLlama2c } from '../src/engine/checkpoints/llama2c.js';
import { generate } from '../src/engine/generate.js';
import { inspectModel, loadModel } from '../src/engine/model/load.js';
import type { LoadedModel } from '../src/engine/model/types.js';
import { decodeModel } from '../src/engine/onnx/prune.js';
import { relError } from './helpers/graph-runner.js';
import { sharedFile, STORIES_CHECKPOINT } from './helpers/shared.js';
import { ReferenceLlama } from './reference/llama.js';

const CHECKPOINT = sharedFile(STORIES_CHECKPOINT);
const MODEL_DIR = dirname(CHECKPOINT);

let root = '';
let model: LoadedModel;
let reference: ReferenceLlama;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'atlas-llama2c-'));
  model = await loadModel(CHECKPOINT, { dataDir: join(root, 'data'), device: 'cpu', threads: 1 });
  reference = new ReferenceLlama(openLlama2c(CHECKPOINT).weights);
});

after(async () => {
  await model.close();
  rmSync(root, { recursive: true, force: true });
});

/** Rows of sequence b (its first len positions) from a [batch, seq, d] hook. */
function rows(h: { dims: number[]; data: Float32Array }, b: number, len: number): Float32Array {
  const [, S, d] = h.dims;
  return h.data.slice(b * S * d, (b * S + len) * d);
}

test('inspectModel reads the header: 5 layers of width 64, context 512, BOS first, 82 hook points', () => {
  const info = inspectModel(CHECKPOINT);
  assert.deepEqual(
    {
      arch: info.architecture,
      format: info.format,
      d: info.dModel,
      layers: info.nLayers,
      vocab: info.vocabSize,
      ctx: info.contextLength,
      bos: info.prependBos,
    },
    { arch: 'llama', format: 'llama2c', d: 64, layers: 5, vocab: 512, ctx: 512, bos: true },
  );
  assert.equal(info.hookPoints.length, 1 + 5 * 16 + 1);
  assert.ok(info.hookPoints.includes('blocks.4.hook_mlp_out'));
});

test('every hook of the ONNX graph matches the reference within 1e-4 relative', async () => {
  const tokens = model.tokenizer.encode(
    'Once upon a time, there was a little girl named Lily. She loved to play in the park with her red ball.',
  );
  assert.ok(tokens.length > 20);
  const got = await model.runHooks([tokens], model.info.hookPoints);
  const want = reference.run(tokens);
  for (const hook of model.info.hookPoints) {
    assert.deepEqual(got.get(hook)!.dims, [1, tokens.length, model.info.hookWidths[hook]], hook);
    const err = relError(got.get(hook)!.data, want.hooks.get(hook)!);
    assert.ok(err < 1e-4, `${hook}: relative error ${err}`);
  }
});

test('a padded batch of mixed lengths equals running each sequence alone', async () => {
  const texts = [
    'Tom had a dog.',
    'Once upon a time, in a big forest, there lived a wise old owl who liked to sing.',
    'Hi',
  ];
  const batch = texts.map((t) => model.tokenizer.encode(t));
  const hooks = ['blocks.0.hook_attn_out', 'blocks.2.hook_resid_mid', 'blocks.4.hook_resid_post'];
  const together = await model.runHooks(batch, hooks);
  for (const hook of hooks)
    assert.deepEqual(together.get(hook)!.dims, [3, Math.max(...batch.map((s) => s.length)), 64]);
  for (let b = 0; b < batch.length; b++) {
    const alone = await model.runHooks([batch[b]], hooks);
    for (const hook of hooks) {
      const err = relError(rows(together.get(hook)!, b, batch[b].length), alone.get(hook)!.data);
      assert.ok(err < 1e-6, `sequence ${b}, ${hook}: relative error ${err}`);
    }
  }
});

test('a run of early hooks (a pruned graph) gives the same values as the full graph', async () => {
  const tokens = model.tokenizer.encode('The cat sat on the mat.');
  const early = await model.runHooks([tokens], ['blocks.1.hook_resid_mid', 'blocks.0.hook_resid_pre']);
  const full = await model.runHooks(
    [tokens],
    ['blocks.1.hook_resid_mid', 'blocks.0.hook_resid_pre', 'blocks.4.hook_resid_post'],
  );
  for (const hook of ['blocks.1.hook_resid_mid', 'blocks.0.hook_resid_pre'])
    assert.deepEqual(early.get(hook)!.data, full.get(hook)!.data, hook);
  const files = readdirSync(readdirSync(join(root, 'data', 'onnx')).map((d) => join(root, 'data', 'onnx', d))[0]);
  assert.ok(
    files.some((f) => /^hooks-lean\d+-[0-9a-f]{16}\.onnx$/.test(f)),
    `a pruned variant is cached beside model.onnx: ${files}`,
  );
});

test('a hook on the last layer runs a graph cut there (no logits or KV outputs), equal to the reference', async () => {
  const tokens = model.tokenizer.encode('The dog ran to the big tree.');
  const last = 'blocks.4.hook_resid_post';
  const got = await model.runHooks([tokens], [last]);
  const err = relError(got.get(last)!.data, reference.run(tokens).hooks.get(last)!);
  assert.ok(err < 1e-4, `relative error ${err}`);
  const folder = readdirSync(join(root, 'data', 'onnx')).map((d) => join(root, 'data', 'onnx', d))[0];
  const outputsOf = (file: string) =>
    (decodeModel(readFileSync(join(folder, file))).graph?.output ?? []).map((o) => o.name ?? '');
  const cuts = readdirSync(folder)
    .filter((f) => /^hooks-lean\d+-[0-9a-f]{16}\.onnx$/.test(f))
    .map(outputsOf);
  assert.ok(
    cuts.some((outputs) => outputs.length === 1 && outputs[0] === last),
    `a pruned variant whose one output is the requested hook is cached beside model.onnx: ${JSON.stringify(cuts)}`,
  );
  assert.ok(outputsOf('model.onnx').includes('logits'), 'the full graph (for decoding) keeps the logits');
});

test('greedy generation on the ONNX path equals the reference token for token for 256 steps', async () => {
  const got = await generate(model, { temperature: 0, steps: 256 });
  const want = reference.greedy([1], 256);
  assert.equal(got.tokens.length, 257, 'BOS plus 256 generated tokens');
  assert.deepEqual(got.tokens, want);
  assert.equal(got.text, model.tokenizer.decode(want));
  assert.match(got.text, /^Once upon a time/);
});

test('a prompt is forced first and counts toward the steps', async () => {
  const prompt = 'Lily and Ben went to the';
  const promptTokens = model.tokenizer.encode(prompt);
  const got = await generate(model, { prompt, temperature: 0, steps: 40 });
  assert.deepEqual(got.tokens.slice(0, promptTokens.length), promptTokens);
  assert.deepEqual(got.tokens, reference.greedy(promptTokens, 40));
  assert.ok(got.text.startsWith(prompt));
  const cut = await generate(model, { prompt, temperature: 0, steps: 3 });
  assert.deepEqual(cut.tokens, promptTokens.slice(0, 4), 'a prompt longer than the steps is cut, as run.c does');
});

test('sampling with a seed is reproducible, and differs across seeds', async () => {
  const a = await generate(model, { temperature: 1, topp: 0.9, seed: 42, steps: 60 });
  const b = await generate(model, { temperature: 1, topp: 0.9, seed: 42, steps: 60 });
  const c = await generate(model, { temperature: 1, topp: 0.9, seed: 7, steps: 60 });
  assert.deepEqual(a.tokens, b.tokens);
  assert.notDeepEqual(a.tokens, c.tokens);
});

test('a second load reuses the converted graph from the cache', async () => {
  const onnxRoot = join(root, 'data', 'onnx');
  const [entry] = readdirSync(onnxRoot);
  assert.match(entry, /^[0-9a-f]{64}$/);
  const before = statSync(join(onnxRoot, entry, 'model.onnx')).mtimeMs;
  const again = await loadModel(CHECKPOINT, { dataDir: join(root, 'data'), device: 'cpu', threads: 1 });
  try {
    assert.deepEqual(readdirSync(onnxRoot), [entry], 'no new entry, no temporary folder left');
    assert.equal(statSync(join(onnxRoot, entry, 'model.onnx')).mtimeMs, before, 'model.onnx not rewritten');
    const tokens = again.tokenizer.encode('Hello');
    assert.deepEqual(
      (await again.runHooks([tokens], ['blocks.3.hook_mlp_out'])).get('blocks.3.hook_mlp_out')!.data,
      (await model.runHooks([tokens], ['blocks.3.hook_mlp_out'])).get('blocks.3.hook_mlp_out')!.data,
    );
  } finally {
    await again.close();
  }
});

test('text longer than the context is refused with INPUT_TOO_LONG, or truncated when asked', async () => {
  const long = Array.from({ length: 513 }, (_, i) => (i === 0 ? 1 : 300 + (i % 100)));
  await assert.rejects(
    model.runHooks([long], ['blocks.0.hook_resid_post']),
    (e: { code?: string; message: string }) =>
      e.code === 'INPUT_TOO_LONG' && /513 tokens/.test(e.message) && /512/.test(e.message),
  );
  const cut = await model.runHooks([long], ['blocks.0.hook_resid_post'], { truncate: true });
  assert.deepEqual(cut.get('blocks.0.hook_resid_post')!.dims, [1, 512, 64]);
});

test('unknown hooks, out-of-vocabulary ids and empty sequences are BAD_USER_INPUT', async () => {
  await assert.rejects(
    model.runHooks([[1, 2]], ['blocks.9.hook_resid_pre']),
    (e: { code?: string; message: string }) =>
      e.code === 'BAD_USER_INPUT' &&
      /blocks\.9\.hook_resid_pre/.test(e.message) &&
      /blocks\.4\.hook_resid_post/.test(e.message),
  );
  await assert.rejects(
    model.runHooks([[1, 512]], ['blocks.0.hook_resid_pre']),
    (e: { code?: string }) => e.code === 'BAD_USER_INPUT',
  );
  await assert.rejects(
    model.runHooks([[1], []], ['blocks.0.hook_resid_pre']),
    (e: { code?: string }) => e.code === 'BAD_USER_INPUT',
  );
});

test('a truncated or garbled checkpoint is BAD_FILE naming the sizes, not a crash', async () => {
  const fd = openSync(CHECKPOINT, 'r');
  const head = Buffer.alloc(500_000);
  readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  const truncated = join(root, 'truncated.bin');
  writeFileSync(truncated, head);
  await assert.rejects(
    loadModel(truncated, { dataDir: join(root, 'data'), tokenizerPath: join(MODEL_DIR, 'tok512.bin') }),
    (e: { code?: string; message: string }) =>
      e.code === 'BAD_FILE' && /truncated/.test(e.message) && /1056540/.test(e.message) && /500000/.test(e.message),
  );
  const garbled = Buffer.from(head.subarray(0, 1000));
  garbled.writeInt32LE(7, 12); // n_heads 7 does not divide dim 64
  writeFileSync(join(root, 'garbled.bin'), garbled);
  assert.throws(
    () => inspectModel(join(root, 'garbled.bin')),
    (e: { code?: string; message: string }) => e.code === 'BAD_FILE' && /n_heads=7/.test(e.message),
  );
  writeFileSync(join(root, 'tiny.bin'), head.subarray(0, 10));
  assert.throws(
    () => inspectModel(join(root, 'tiny.bin')),
    (e: { code?: string }) => e.code === 'BAD_FILE',
  );
});
