/**
 * The model side of one encode request, at GPT-2-small shape by default (random weights, CPU):
 * 1. conversion of the weights to an ONNX graph (what `atlas model add` pays once, not the first request),
 *    and the time to cut a copy of it at a hook, with the weights inline (before) and in external data (now);
 * 2. one forward of --tokens tokens to a hook on the last layer and to one in the middle, on the whole
 *    graph (logits and KV outputs too: the hook runner's graph for the last layer before pruning was
 *    done for every request), on the graph cut at the hook with every earlier hook as an output (the
 *    hook runner's variant), and cut with the requested hook as the only output;
 * 3. session options on the cut graph: onnxruntime's thread spinning on and off × intra-op threads
 *    (1, 2, default), with and without a second thread busy in JavaScript (the event loop of a
 *    loaded server).
 * Rounds are interleaved (every variant once per round) and the median is reported.
 * Usage: npx tsx bench/encode-path.ts [--layers 12] [--d 768] [--vocab 50257] [--tokens 64] [--rounds 15]
 *
 * Measured (2026-12-02, `--layers 6 --rounds 7`, 2 cores shared with other jobs at load average ~15, so
 * absolute times are several times an idle machine's; ratios are what the choices rest on):
 * - conversion 24.2 s with inline weights, 3.5 s with external data; cutting a copy at the last layer
 *   19.2 s inline (decode and re-encode every weight), 0.10 s with external data;
 * - a hook on the last layer: whole graph 589 ms, cut with every hook up to it 420 ms (1.40×), cut with
 *   that hook only 365 ms (1.61×); a middle hook: 707 ms, 216 ms (3.27×), 194 ms (3.64×);
 * - session options, median ms (with a busy JavaScript thread): 1 thread 224 / 254 (477 / 482) spinning
 *   on / off (no pool, so no spinning either way: noise); 2 threads 408 / 364 (686 / 498); onnxruntime's
 *   default 277 / 241 (560 / 480). Spinning off is kept (1.1–1.4× with a pool), threads left to
 *   onnxruntime (ATLAS_THREADS overrides).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { buildGpt2Graph } from '../src/engine/onnx/gpt2-graph.js';
import { decodeModel, pruneModel } from '../src/engine/onnx/prune.js';
import { writeOnnxModel } from '../src/engine/onnx/write-model.js';
import { hookInfo } from '../src/engine/model/hooks.js';
import { batchFeeds, planInputs } from '../src/engine/runtime/feeds.js';
import { sessionOptions } from '../src/engine/runtime/session.js';
import { gpt2Config, randomGpt2Weights } from '../test/helpers/hf-fixtures.js';
import { arg } from './util.js';

const LAYERS = Number(arg('layers', '12'));
const D = Number(arg('d', '768'));
const VOCAB = Number(arg('vocab', '50257'));
const TOKENS = Number(arg('tokens', '64'));
const ROUNDS = Number(arg('rounds', '15'));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const config = gpt2Config({
  dModel: D,
  nLayers: LAYERS,
  nHeads: D / 64,
  nKvHeads: D / 64,
  dHead: 64,
  dMlp: 4 * D,
  vocabSize: VOCAB,
  contextLength: 1024,
});
const dir = mkdtempSync(join(tmpdir(), 'atlas-bench-encode-path-'));
try {
  const spec = buildGpt2Graph(randomGpt2Weights(config));
  const { hookPoints } = hookInfo(config);
  const last = `blocks.${LAYERS - 1}.hook_resid_post`;
  const middle = `blocks.${Math.floor(LAYERS / 2)}.hook_resid_pre`;
  const upTo = (hook: string) => hookPoints.slice(0, hookPoints.indexOf(hook) + 1);
  const seconds = (from: number) => (performance.now() - from) / 1000;

  // Cutting a copy at the last layer, as the hook runner does: decode, prune, write.
  const cutTime = (modelFile: string) => {
    const from = performance.now();
    writeFileSync(join(dir, 'cut.onnx'), pruneModel(decodeModel(readFileSync(modelFile)), upTo(last)));
    return seconds(from);
  };
  mkdirSync(join(dir, 'inline'));
  let t = performance.now();
  writeOnnxModel(spec, join(dir, 'inline', 'model.onnx'), { externalDataThresholdBytes: Infinity });
  const convertInline = seconds(t);
  const cutInline = cutTime(join(dir, 'inline', 'model.onnx'));
  rmSync(join(dir, 'inline'), { recursive: true });
  const modelFile = join(dir, 'model.onnx');
  t = performance.now();
  writeOnnxModel(spec, modelFile, { externalDataThresholdBytes: 0 });
  const convertExternal = seconds(t);
  const cutExternal = cutTime(modelFile);
  const proto = decodeModel(readFileSync(modelFile));
  const variant = (name: string, outputs: string[]) => {
    writeFileSync(join(dir, name), pruneModel(proto, outputs));
    return join(dir, name);
  };
  const graphs = {
    whole: modelFile,
    [`cut at last, all hooks`]: variant('a.onnx', upTo(last)),
    [`cut at last, one hook`]: variant('b.onnx', [last]),
    [`cut at middle, all hooks`]: variant('c.onnx', upTo(middle)),
    [`cut at middle, one hook`]: variant('d.onnx', [middle]),
  };

  const tokens = Array.from({ length: TOKENS }, (_, i) => (i * 7919) % VOCAB);
  const base = sessionOptions({ device: 'cpu', threads: 0 }, 'cpu');
  const open = (path: string, opts: ort.InferenceSession.SessionOptions = base) =>
    ort.InferenceSession.create(path, opts);
  const runner = (session: ort.InferenceSession, hook: string) => {
    const feeds = batchFeeds(planInputs(session, 'bench'), [tokens]);
    return () => session.run(feeds, [hook]);
  };

  async function interleaved(cases: [string, () => Promise<unknown>][]): Promise<Map<string, number>> {
    const times = new Map<string, number[]>(cases.map(([n]) => [n, []]));
    for (const [, fn] of cases) await fn();
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, fn] of cases) {
        const s = performance.now();
        await fn();
        times.get(name)!.push(performance.now() - s);
      }
    }
    return new Map([...times].map(([n, xs]) => [n, median(xs)]));
  }

  console.log(
    `GPT-2 shape: ${LAYERS} layers, d ${D}, vocab ${VOCAB}; ${TOKENS} tokens; ${ROUNDS} interleaved rounds, median\n`,
  );
  console.log('| weights | conversion s | cutting a copy at the last layer s |');
  console.log('| --- | ---: | ---: |');
  console.log(`| inline (before) | ${convertInline.toFixed(1)} | ${cutInline.toFixed(2)} |`);
  console.log(`| external data (now) | ${convertExternal.toFixed(1)} | ${cutExternal.toFixed(2)} |\n`);

  const sessions = new Map<string, ort.InferenceSession>();
  for (const [name, path] of Object.entries(graphs)) sessions.set(name, await open(path));
  const graphCases: [string, () => Promise<unknown>][] = [...sessions].map(([name, s]) => [
    name,
    runner(s, name.includes('middle') ? middle : last),
  ]);
  graphCases.push(['whole, middle hook', runner(sessions.get('whole')!, middle)]);
  const graphTimes = await interleaved(graphCases);
  const wholeLast = graphTimes.get('whole')!;
  const wholeMiddle = graphTimes.get('whole, middle hook')!;
  console.log('| graph (default session options) | hook | ms | whole graph ÷ this |');
  console.log('| --- | --- | ---: | ---: |');
  for (const [name, ms] of graphTimes) {
    const hook = name.includes('middle') ? middle : last;
    const ref = hook === middle ? wholeMiddle : wholeLast;
    console.log(`| ${name.replace(', middle hook', '')} | ${hook} | ${ms.toFixed(1)} | ${(ref / ms).toFixed(2)}× |`);
  }
  for (const s of sessions.values()) await s.release();

  // Session options on the graph the runner uses for the last layer.
  const cut = graphs['cut at last, all hooks'];
  const optionCases: [string, () => Promise<unknown>][] = [];
  const optionSessions: ort.InferenceSession[] = [];
  for (const threads of [1, 2, 0]) {
    for (const spinning of [true, false]) {
      const opts: ort.InferenceSession.SessionOptions = {
        ...base,
        ...(threads > 0 ? { intraOpNumThreads: threads } : {}),
        extra: spinning ? {} : base.extra,
      };
      const s = await open(cut, opts);
      optionSessions.push(s);
      optionCases.push([`threads ${threads || 'default'}, spinning ${spinning ? 'on' : 'off'}`, runner(s, last)]);
    }
  }
  const quiet = await interleaved(optionCases);
  // A JavaScript thread busy the whole time, as a loaded server's event loop is.
  const busy = new Worker('const end = Date.now() + 1e9; while (Date.now() < end);', { eval: true });
  const loaded = await interleaved(optionCases);
  await busy.terminate();
  console.log('\n| session options (cut at last layer) | ms | ms with a busy JS thread |');
  console.log('| --- | ---: | ---: |');
  for (const [name] of optionCases) {
    console.log(`| ${name} | ${quiet.get(name)!.toFixed(1)} | ${loaded.get(name)!.toFixed(1)} |`);
  }
  for (const s of optionSessions) await s.release();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
