/**
 * `atlas build` at GPT-2-small size against the bare model work it cannot avoid, side by side (issue #19:
 * build ≥ 0.8 of bare forward + encode throughput).
 *
 * Setup (its own process): a random GPT-2 checkpoint of the real shapes (12 layers, d 768, vocab 50257;
 * a 1024-entry tokenizer, since the token ids do not change the arithmetic), a random TopK dictionary
 * (24,576 features, k 32) at blocks.8.hook_resid_post, both registered in a PGlite catalog.
 * Then one process per build mode (so each peak RSS is its own) measures, over the same pre-tokenized
 * contexts:
 * - bare: LoadedModel.runHooks to the hook, the non-BOS rows cut out, SaeEncoder.encode of every active
 *   code (what the build asks), without and with the reconstruction (which the build's reconstruction
 *   totals need); nothing kept;
 * - build: buildDashboards over the same corpus: its corpus pass (tokenizing, forward, encode, every
 *   accumulator) and the whole run (logit lens and publish into PGlite too), all on the main thread
 *   (the default) and with the forward pass and encode in a worker thread (forwardWorker).
 * Measured 2026-12-02, --tokens 8192 --batch 16 (8 batches), 2 cores shared with other jobs (load 2.8–3.2):
 * main thread: bare 637 / 809 tok/s (codes / with decode), pass 805 tok/s (after the first batch 660),
 * logit lens 18 s, publish 122 s, peak RSS 2.74 GiB; worker: bare 661 / 853, pass 330 (first batch 14.8 s,
 * after it 413), logit lens 21 s, publish 144 s, peak RSS 4.11 GiB.
 * Usage: node --import tsx bench/build-overlap.ts [--tokens 16384] [--layers 12] [--d 768] [--vocab 50257]
 * [--dsae 24576] [--k 32] [--layer 8] [--context 64] [--batch 64 (contexts)] [--threads 0] [--modes worker,thread]
 * [--dir DIR (keeps the setup there and reuses it)]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openDatabase } from '../src/db/client.js';
import { requireDictionary, requireModel } from '../src/db/catalog.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { EngineRegistry } from '../src/app/registry.js';
import { buildDashboards, type BuildProgress } from '../src/app/build-dashboards.js';
import { Corpus, type TokenContext } from '../src/engine/dashboards/corpus.js';
import { writeSaelens } from '../src/engine/sae/export.js';
import type { SaeConfig } from '../src/engine/sae/types.js';
import { writeTinyGpt2 } from '../test/helpers/hf-fixtures.js';
import { ALLOCATOR, arg, barePass, benchText, uniform } from './util.js';

const TOKENS = Number(arg('tokens', '16384'));
const LAYERS = Number(arg('layers', '12'));
const D = Number(arg('d', '768'));
const VOCAB = Number(arg('vocab', '50257'));
const D_SAE = Number(arg('dsae', '24576'));
const K = Number(arg('k', '32'));
const LAYER = Number(arg('layer', '8'));
const CONTEXT = Number(arg('context', '64'));
const THREADS = Number(arg('threads', '0'));
const HOOK = `blocks.${LAYER}.hook_resid_post`;

/** Writes the checkpoint, dictionary and corpus under `dir` and registers them in its PGlite catalog. */
export async function setup(dir: string): Promise<Record<string, number>> {
  const t0 = performance.now();
  mkdirSync(join(dir, 'gpt2'), { recursive: true });
  const shape = { dModel: D, nLayers: LAYERS, nHeads: D / 64, nKvHeads: D / 64, dHead: 64, dMlp: 4 * D };
  writeTinyGpt2(join(dir, 'gpt2'), {
    shape: { ...shape, vocabSize: VOCAB, contextLength: 1024 },
    tokenizerVocab: 1024,
  });
  // The fixture cannot learn 50k merges; entries no merge produces fill the vocabulary, so that every id
  // the logit lens ranks has a text.
  const tokPath = join(dir, 'gpt2', 'tokenizer.json');
  const tok = JSON.parse(readFileSync(tokPath, 'utf8')) as { model: { vocab: Record<string, number> } };
  const eot = Object.keys(tok.model.vocab).find((t) => tok.model.vocab[t] === 1023)!;
  delete tok.model.vocab[eot];
  for (let id = 1023; id < VOCAB - 1; id++) tok.model.vocab[`<unused${id}>`] = id;
  tok.model.vocab[eot] = VOCAB - 1;
  (tok as unknown as { added_tokens: { id: number }[] }).added_tokens[0].id = VOCAB - 1;
  writeFileSync(tokPath, JSON.stringify(tok));
  const cfg: SaeConfig = {
    architecture: 'topk',
    dIn: D,
    dSae: D_SAE,
    k: K,
    hookName: HOOK,
    modelName: 'gpt2-bench',
    prependBos: true,
    applyBDecToInput: false,
    normalization: { kind: 'none', scalingFactor: null },
    sourceFormat: 'saelens',
    dtype: 'float32',
    extra: {},
  };
  const w = 1 / Math.sqrt(D);
  writeSaelens(join(dir, 'sae'), cfg, {
    W_enc: uniform(D * D_SAE, w, 1),
    W_dec: uniform(D_SAE * D, w, 2),
    b_enc: uniform(D_SAE, 0.1, 3),
    b_dec: uniform(D, 0.1, 4),
  });
  writeFileSync(join(dir, 'corpus.txt'), benchText(Math.ceil(TOKENS * 1.2), 7));
  const written = (performance.now() - t0) / 1000;
  const database = await openDatabase({ dataDir: join(dir, 'data') });
  try {
    const t1 = performance.now();
    await registerModel(database, { id: 'gpt2-bench', path: join(dir, 'gpt2'), name: 'gpt2-bench', prependBos: true });
    const registry = new EngineRegistry({ dataDir: join(dir, 'data'), device: 'cpu', threads: THREADS }, database);
    // Converts the checkpoint to ONNX once, so the measured runs only open it.
    await registry.withModel(await requireModel(database, 'gpt2-bench'), () => undefined);
    await registry.close();
    const registered = (performance.now() - t1) / 1000;
    const t2 = performance.now();
    await importDictionary(database, {
      path: join(dir, 'sae'),
      modelId: 'gpt2-bench',
      id: 'bench',
      dataDir: join(dir, 'data'),
    });
    return { written, registered, imported: (performance.now() - t2) / 1000 };
  } finally {
    await database.close();
  }
}

/** Bare and build throughput in this process, for one build mode. */
async function measure(dir: string, mode: string): Promise<Record<string, number>> {
  const database = await openDatabase({ dataDir: join(dir, 'data') });
  const registry = new EngineRegistry({ dataDir: join(dir, 'data'), device: 'cpu', threads: THREADS }, database);
  try {
    const modelRow = await requireModel(database, 'gpt2-bench');
    const dict = await requireDictionary(database, 'bench');
    const model = (await registry.model(modelRow)).value;
    const encoder = (await registry.encoder(dict)).value;
    const corpusPath = join(dir, 'corpus.txt');
    const batch = Number(arg('batch', String(Math.max(1, Math.floor(4096 / CONTEXT)))));
    const contexts: TokenContext[] = [];
    const corpus = new Corpus(corpusPath, {
      tokenizer: model.tokenizer,
      prependBos: true,
      context: CONTEXT,
      maxTokens: TOKENS,
    });
    for await (const c of corpus.contexts()) contexts.push(c);
    const tokens = contexts.reduce((s, c) => s + c.ids.length - 1, 0);

    // Bare: forward to the hook, the non-BOS rows, every active code (and the reconstruction); nothing kept.
    const bare = (reconstruct: boolean) =>
      barePass(model, encoder, contexts, {
        batch,
        hook: HOOK,
        dIn: D,
        k: K,
        options: { allActive: true, reconstruct },
      });
    // Warm-up: sessions, the pruned graph.
    await model.runHooks([contexts[0].ids], [HOOK]);
    await encoder.encode(new Float32Array(D), 1, K, { allActive: true, reconstruct: true });
    const bareCodes = await bare(false);
    const bareDecode = await bare(true);

    let corpusDone = 0;
    let publishStart = 0;
    // The first batch pays for opening sessions (and starting the encode thread); the rate after it is the steady one.
    let firstBatch = 0;
    let firstTokens = 0;
    const t0 = performance.now();
    await buildDashboards(database, registry, {
      dictionaryIds: ['bench'],
      corpus: corpusPath,
      tokens: TOKENS,
      context: CONTEXT,
      batch,
      forwardWorker: mode === 'worker',
      session: { device: 'cpu', threads: THREADS },
      onProgress: (p: BuildProgress) => {
        if (p.phase === 'corpus' && !firstBatch) [firstBatch, firstTokens] = [performance.now(), p.tokens];
        if (p.phase === 'logits' && !corpusDone) corpusDone = performance.now();
        if (p.phase === 'publish' && !publishStart) publishStart = performance.now();
      },
    });
    const end = performance.now();
    return {
      tokens,
      bareCodes: tokens / bareCodes,
      bareDecode: tokens / bareDecode,
      pass: tokens / ((corpusDone - t0) / 1000),
      steady: (tokens - firstTokens) / ((corpusDone - firstBatch) / 1000),
      firstSeconds: (firstBatch - t0) / 1000,
      whole: tokens / ((end - t0) / 1000),
      passSeconds: (corpusDone - t0) / 1000,
      logitSeconds: (publishStart - corpusDone) / 1000,
      publishSeconds: (end - publishStart) / 1000,
      peakRssGiB: process.resourceUsage().maxRSS / 1024 ** 2,
      load: loadavg()[0],
    };
  } finally {
    await registry.close();
    await database.close();
  }
}

const phase = arg('phase', '');
if (import.meta.url !== pathToFileURL(process.argv[1]).href) {
  // Imported (bench/vs-torch-build.ts): setup only.
} else if (phase === 'setup') console.log(JSON.stringify(await setup(arg('dir', ''))));
else if (phase === 'run') console.log(JSON.stringify(await measure(arg('dir', ''), arg('mode', 'worker'))));
else {
  // --dir DIR keeps the setup there and reuses it on later runs (importing the dictionary takes minutes).
  const kept = arg('dir', '');
  const dir = kept || mkdtempSync(join(tmpdir(), 'atlas-bench-build-overlap-'));
  const child = (args: string[]) =>
    JSON.parse(
      execFileSync(process.execPath, [...process.execArgv, process.argv[1], ...process.argv.slice(2), ...args], {
        env: { ...process.env, ...ALLOCATOR },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
        .toString()
        .trim()
        .split('\n')
        .pop()!,
    ) as Record<string, number>;
  try {
    const s = existsSync(join(dir, 'data'))
      ? { written: NaN, registered: NaN, imported: NaN }
      : child(['--phase', 'setup', '--dir', dir]);
    console.log(
      `GPT-2 shapes: ${LAYERS} layers, d ${D}, vocab ${VOCAB}; TopK ${D_SAE} x ${D} (k ${K}) at ${HOOK}; ` +
        `contexts of ${CONTEXT}, ${cpus().length} cores, threads ${THREADS || 'default'}`,
    );
    console.log(
      `setup: checkpoint written ${s.written.toFixed(1)} s, registered + converted ${s.registered.toFixed(1)} s, ` +
        `dictionary imported ${s.imported.toFixed(1)} s\n`,
    );
    console.log(
      '| build mode | tokens | bare fwd+encode tok/s | bare fwd+encode+decode tok/s | build pass tok/s | ' +
        'build whole tok/s | pass ÷ bare | whole ÷ bare | first batch s | after it tok/s | ÷ bare | ' +
        'logit lens s | publish s | peak RSS GiB | load |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const mode of arg('modes', 'worker,thread').split(',')) {
      const r = child(['--phase', 'run', '--dir', dir, '--mode', mode]);
      const f = (x: number, d = 0) => x.toFixed(d);
      console.log(
        `| ${mode === 'worker' ? 'forward + encode in a worker' : 'all on the main thread'} | ${r.tokens} | ` +
          `${f(r.bareCodes)} | ${f(r.bareDecode)} | ${f(r.pass)} | ${f(r.whole)} | ${f(r.pass / r.bareCodes, 2)} | ` +
          `${f(r.whole / r.bareCodes, 2)} | ${f(r.firstSeconds, 1)} | ${f(r.steady)} | ` +
          `${f(r.steady / r.bareCodes, 2)} | ${f(r.logitSeconds, 1)} | ${f(r.publishSeconds, 1)} | ` +
          `${f(r.peakRssGiB, 2)} | ${f(r.load, 1)} |`,
      );
    }
  } finally {
    if (!kept) rmSync(dir, { recursive: true, force: true });
  }
}
