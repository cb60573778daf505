/**
 * Model runtime throughput on stories260K (CPU unless ATLAS_DEVICE says otherwise): forward tokens/s
 * through all layers at batch 1×128 and 16×128, greedy generation tokens/s with the KV cache, and
 * the same work on the pure-TypeScript reference for the ONNX/reference ratio.
 * Run: npx tsx bench/model.ts
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig } from '../src/config.js';
import { openLlama2c } from '../src/engine/checkpoints/llama2c.js';
import { generate } from '../src/engine/generate.js';
import { loadModel } from '../src/engine/model/load.js';
import { seededRandom } from '../test/helpers/random-weights.js';
import { ReferenceLlama } from '../test/reference/llama.js';

const CHECKPOINT = resolve(import.meta.dirname, '../../shared/models/stories260K/stories260K.bin');
if (!existsSync(CHECKPOINT)) {
  console.error(`bench/model: ${CHECKPOINT} is absent.`);
  process.exit(1);
}

/** Best of `reps` timings (after one warm-up), in seconds. */
async function best(reps: number, fn: () => Promise<unknown> | unknown): Promise<number> {
  await fn();
  let min = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    min = Math.min(min, (performance.now() - t) / 1000);
  }
  return min;
}

const config = loadConfig();
const dataDir = mkdtempSync(join(tmpdir(), 'atlas-bench-model-'));
try {
  const model = await loadModel(CHECKPOINT, { dataDir, device: config.device, threads: config.threads });
  const reference = new ReferenceLlama(openLlama2c(CHECKPOINT).weights);
  const rand = seededRandom(1);
  const seq = () => [1, ...Array.from({ length: 127 }, () => 3 + Math.floor(rand() * 509))];
  const last = `blocks.${model.info.nLayers - 1}.hook_resid_post`;
  const rows: Array<[string, number, number]> = [];

  // The reference runs one sequence at a time, so its rate does not depend on the batch.
  const refForward = 128 / (await best(2, () => reference.run(seq())));
  for (const batch of [1, 16]) {
    const tokens = Array.from({ length: batch }, seq);
    const onnx = await best(5, () => model.runHooks(tokens, [last]));
    rows.push([`forward ${batch}×128`, (batch * 128) / onnx, refForward]);
  }
  const steps = 256;
  let generated = 0;
  const onnxGen = await best(
    3,
    async () => (generated = (await generate(model, { temperature: 0, steps })).tokens.length - 1),
  );
  const refGen = await best(1, () => reference.greedy([1], steps));
  rows.push([`generate ${steps} greedy`, generated / onnxGen, generated / refGen]);
  await model.close();

  console.log(`stories260K, execution provider ${model.executionProvider}, threads ${config.threads || 'default'}\n`);
  console.log('| workload | ONNX tokens/s | reference tokens/s | ONNX / reference |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const [name, onnx, ref] of rows) {
    console.log(`| ${name} | ${onnx.toFixed(0)} | ${ref.toFixed(0)} | ${(onnx / ref).toFixed(1)}× |`);
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
