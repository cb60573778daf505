/**
 * `atlas build` throughput against the bare cost of the same work: tokens/s of the bare forward
 * pass plus SAE encode over the corpus's contexts (pre-tokenized, batch by batch, nothing else),
 * then tokens/s of buildDashboards over the same corpus in the same process (tokenizing, the shared
 * forward pass, encode, every accumulator, logit lens and the publish into a PGlite catalog), and
 * the ratio (goal: build ≤ 1.5× the bare time). Runs on stories260K with a random TopK dictionary.
 * Usage: node --import tsx bench/build.ts [--tokens 100000] [--dsae 4096] [--k 32] [--layer 2] [--context 64] [--device
 * cpu|cuda|auto] [--database-url postgres://… (an empty database; default a fresh PGlite)]
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openDatabase } from '../src/db/client.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { EngineRegistry } from '../src/app/registry.js';
import { buildDashboards, type BuildProgress } from '../src/app/build-dashboards.js';
import { Corpus, type TokenContext } from '../src/engine/dashboards/corpus.js';
import { writeSaelens } from '../src/engine/sae/export.js';
import type { SaeConfig } from '../src/engine/sae/types.js';
import { arg, barePass, benchText, uniform } from './util.js';

const TOKENS = Number(arg('tokens', '100000'));
const D_SAE = Number(arg('dsae', '4096'));
const K = Number(arg('k', '32'));
const LAYER = Number(arg('layer', '2'));
const CONTEXT = Number(arg('context', '64'));
const device = arg('device', 'cpu') as 'cpu' | 'cuda' | 'auto';
const DATABASE_URL = arg('database-url', '');
const MODEL = resolve(import.meta.dirname, '../../shared/models/stories260K/stories260K.bin');

async function main(): Promise<void> {
  if (!existsSync(MODEL)) {
    console.log(`SKIPPED: ${MODEL} is absent.`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'atlas-bench-build-'));
  const database = await openDatabase({ dataDir: join(dir, 'data'), databaseUrl: DATABASE_URL || undefined });
  const registry = new EngineRegistry({ dataDir: join(dir, 'data'), device, threads: 0 }, database);
  try {
    const modelRow = await registerModel(database, { id: 'stories260K', path: MODEL, name: 'stories260K' });
    const hook = `blocks.${LAYER}.hook_resid_post`;
    const d = modelRow.dModel;
    const cfg: SaeConfig = {
      architecture: 'topk',
      dIn: d,
      dSae: D_SAE,
      k: K,
      hookName: hook,
      modelName: 'stories260K',
      prependBos: true,
      applyBDecToInput: true,
      normalization: { kind: 'none', scalingFactor: null },
      sourceFormat: 'saelens',
      dtype: 'float32',
      extra: {},
    };
    writeSaelens(join(dir, 'sae'), cfg, {
      W_enc: uniform(d * D_SAE, 1 / Math.sqrt(d), 1),
      W_dec: uniform(D_SAE * d, 1 / Math.sqrt(d), 2),
      b_enc: uniform(D_SAE, 0.1, 3),
      b_dec: uniform(d, 0.1, 4),
    });
    const dict = await importDictionary(database, {
      path: join(dir, 'sae'),
      modelId: 'stories260K',
      id: 'bench',
      dataDir: join(dir, 'data'),
    });
    const corpusPath = join(dir, 'corpus.txt');
    writeFileSync(corpusPath, benchText(Math.ceil(TOKENS * 1.2), 7));

    const model = (await registry.model(modelRow)).value;
    const encoder = (await registry.encoder(dict)).value;
    const batch = Math.max(1, Math.floor(4096 / CONTEXT));
    const contexts: TokenContext[] = [];
    for await (const c of new Corpus(corpusPath, {
      tokenizer: model.tokenizer,
      prependBos: modelRow.prependBos,
      context: CONTEXT,
      maxTokens: TOKENS,
    }).contexts())
      contexts.push(c);
    const tokens = contexts.reduce((s, c) => s + c.ids.length - (c.bos ? 1 : 0), 0);

    // Bare: forward pass to the hook and encode of the non-BOS rows, nothing kept.
    const bare = () => barePass(model, encoder, contexts, { batch, hook, dIn: d, k: K });
    await bare(); // warm-up: sessions, pruned graph variants
    const bareSeconds = await bare();

    let corpusDone = 0;
    let publishStart = 0;
    const t0 = performance.now();
    const result = await buildDashboards(database, registry, {
      dictionaryIds: ['bench'],
      corpus: corpusPath,
      tokens: TOKENS,
      context: CONTEXT,
      batch,
      session: { device, threads: 0 },
      onProgress: (p: BuildProgress) => {
        if (p.phase === 'logits' && !corpusDone) corpusDone = performance.now();
        if (p.phase === 'publish' && !publishStart) publishStart = performance.now();
      },
    });
    const buildSeconds = (performance.now() - t0) / 1000;
    const passSeconds = (corpusDone - t0) / 1000;

    console.log(
      `stories260K ${hook}, topk SAE ${D_SAE} x ${d} (k ${K}), ${tokens} tokens in ${contexts.length} contexts of ` +
        `${CONTEXT}, batch ${batch}, ${model.executionProvider}, ${DATABASE_URL ? 'PostgreSQL' : 'PGlite'}`,
    );
    console.log(
      `bare forward + encode : ${(tokens / bareSeconds).toFixed(0).padStart(8)} tokens/s (${bareSeconds.toFixed(2)} s)`,
    );
    console.log(
      `build, corpus pass    : ${(tokens / passSeconds).toFixed(0).padStart(8)} tokens/s (${passSeconds.toFixed(2)} s)`,
    );
    console.log(
      `build, whole          : ${(result.tokens / buildSeconds).toFixed(0).padStart(8)} tokens/s ` +
        `(${buildSeconds.toFixed(2)} s: logit lens ${((publishStart - corpusDone) / 1000).toFixed(2)} s, publish ` +
        `${((t0 + buildSeconds * 1000 - publishStart) / 1000).toFixed(2)} s)`,
    );
    console.log(
      `ratio build / bare    : ${(buildSeconds / bareSeconds).toFixed(2)}x whole, ` +
        `${(passSeconds / bareSeconds).toFixed(2)}x corpus pass (goal <= 1.5x)`,
    );
  } finally {
    await registry.close();
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
