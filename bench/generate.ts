/**
 * Generation throughput with and without steering, alone and under concurrent encode load, on the
 * demo GPT-2 (CPU unless ATLAS_DEVICE says otherwise): greedy tokens/s of one generation through the
 * encoding service's per-model queue, unsteered, with ADD (the graph's steering input: no extra run)
 * and with PROJECTION_CAP (reads the hook first on a pruned graph), and the same while `--clients`
 * concurrent clients send hookActivations requests (encode's model runs) in a loop, with the encode
 * requests/s they get meanwhile.
 * Run: npx tsx bench/generate.ts [--tokens 64] [--clients 4]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config.js';
import { DEMO_DIR } from '../src/app/demo.js';
import { EncodingService } from '../src/app/encode.js';
import { EngineRegistry } from '../src/app/registry.js';
import type { ModelRow } from '../src/db/catalog.js';
import { sampleTokens, type Intervention } from '../src/engine/generate.js';
import { arg, uniform } from './util.js';

const TOKENS = Number(arg('tokens', '64'));
const CLIENTS = Number(arg('clients', '4'));
const HOOK = 'blocks.1.hook_resid_post';
const TEXT = 'The people of the United States have a right to know what their government does in their name.';

const dataDir = mkdtempSync(join(tmpdir(), 'atlas-bench-generate-'));
const config = { ...loadConfig(), dataDir };
const registry = new EngineRegistry(config);
const encoding = new EncodingService(registry, config);
// Only the fields the encoding service reads: a catalog row without a database.
const row = { id: 'demo', sourcePath: join(DEMO_DIR, 'model'), tokenizerPath: null, prependBos: true } as ModelRow;

try {
  const { value: model } = await registry.model(row); // held for the whole bench
  const prompt = encoding.tokenize(model, true, 'The people of the').ids;
  const direction = uniform(model.info.dModel, 1, 3);
  const cases: [string, Intervention[]][] = [
    ['unsteered', []],
    ['ADD', [{ hook: HOOK, method: 'ADD', strength: 4, direction }]],
    ['PROJECTION_CAP', [{ hook: HOOK, method: 'PROJECTION_CAP', strength: 0, direction }]],
  ];
  const generate = async (interventions: Intervention[]): Promise<number> => {
    const t = performance.now();
    let n = 0;
    const opts = { maxTokens: TOKENS, temperature: 0, topp: 1, seed: 1, interventions };
    const schedule = <T>(size: number, run: () => Promise<T>) => encoding.modelStep(row, size, run);
    for await (const _ of sampleTokens(model, prompt, { ...opts, schedule })) n++;
    return n / ((performance.now() - t) / 1000);
  };
  /** Encode clients in a loop until `stop`; returns the requests they completed. */
  const load = (stop: { done: boolean }) =>
    Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        let done = 0;
        while (!stop.done) {
          await encoding.hookActivations(row, TEXT, [HOOK]);
          done++;
        }
        return done;
      }),
    ).then((counts) => counts.reduce((a, b) => a + b, 0));

  await generate([]); // warm-up: sessions, pruned graphs
  await generate(cases[2][1]);
  console.log(`demo GPT-2, ${TOKENS} greedy tokens, ${CLIENTS} encode clients, provider ${model.executionProvider}`);
  console.log('case'.padEnd(16), 'alone tok/s'.padStart(12), 'loaded tok/s'.padStart(13), 'encode req/s'.padStart(13));
  for (const [name, interventions] of cases) {
    const alone = Math.max(await generate(interventions), await generate(interventions));
    const stop = { done: false };
    const started = performance.now();
    const requests = load(stop);
    const loaded = await generate(interventions);
    stop.done = true;
    const rate = (await requests) / ((performance.now() - started) / 1000);
    console.log(
      name.padEnd(16),
      alone.toFixed(1).padStart(12),
      loaded.toFixed(1).padStart(13),
      rate.toFixed(1).padStart(13),
    );
  }
} finally {
  await registry.close();
  rmSync(dataDir, { recursive: true, force: true });
}
