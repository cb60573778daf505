/**
 * The hook runner's graph at a hook on the last layer (issue 19), per run, in three generations:
 * 1. before: GELU decomposed into Mul/Add/Tanh (or Erf) nodes, the cut keeping the steering and KV-cache
 *    inputs (fed zeros and empty caches: one Add per residual hook, one Concat per cache input);
 * 2. lean: the same graph cut without those inputs (onnx/prune.ts withoutSteeringOrCache);
 * 3. now: lean, with one onnxruntime contrib node per GELU (layers.ts gelu).
 * Every graph is checked to give the same hook values first. onnxruntime runs 1 intra-op thread without
 * spinning (the server's session options with ATLAS_THREADS=1); rounds are interleaved, and both the
 * median wall time and the median process CPU time per run are reported (CPU time is the steadier of
 * the two on a shared machine), with the node count per op type after onnxruntime's optimisation.
 * Usage: npx tsx bench/lean-graph.ts [--model assets/demo/model] [--tokens 64] [--rounds 60]
 *
 * Measured (2026-12-02, demo model: gpt2, 4 layers, d 128, vocab 4096; 64 tokens; --rounds 60 and 80 on
 * 2 cores shared with other jobs, load average 4.6–5.2, so wall times wander; medians, CPU ms per run):
 *   batch 1: before 1.53–1.56, lean 1.35–1.43 (0.89–0.91×), now 1.23–1.28 (0.80–0.82×)
 *   batch 8: before 9.25–9.65, lean 8.76–9.29 (0.95–0.96×), now 7.92–8.15 (0.84–0.86×)
 * Nodes after optimisation 204 → 170 (lean) → 138 (now); lean is bit-identical to before, now within
 * 1e-6. An attention without the grouped-query axes when every head has its own keys (15 fewer
 * Reshape/Unsqueeze nodes) measured 0.81× against now's 0.82× (batch 8: 0.84× both): not worth a second
 * mask and new graph versions, so not done.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadHfCheckpoint } from '../src/engine/checkpoints/huggingface.js';
import { hookInfo } from '../src/engine/model/hooks.js';
import { buildGpt2Graph } from '../src/engine/onnx/gpt2-graph.js';
import { buildLlamaGraph } from '../src/engine/onnx/llama-graph.js';
import { buildNeoxGraph } from '../src/engine/onnx/neox-graph.js';
import { GraphBuilder, gelu } from '../src/engine/onnx/layers.js';
import { decodeModel, pruneModel, withoutSteeringOrCache } from '../src/engine/onnx/prune.js';
import type { GraphSpec } from '../src/engine/onnx/proto.js';
import { writeOnnxModel } from '../src/engine/onnx/write-model.js';
import { batchFeeds, planInputs } from '../src/engine/runtime/feeds.js';
import { sessionOptions } from '../src/engine/runtime/session.js';
import { arg } from './util.js';

const MODEL = arg('model', join(import.meta.dirname, '..', 'assets', 'demo', 'model'));
const TOKENS = Number(arg('tokens', '64'));
const ROUNDS = Number(arg('rounds', '60'));

/** The graph as the builders wrote it before GELU was one node. */
function decomposedGelu(spec: GraphSpec): GraphSpec {
  const g = new GraphBuilder();
  const nodes = [];
  for (const n of spec.nodes) {
    if (n.opType !== 'FastGelu' && n.opType !== 'Gelu') {
      nodes.push(n);
      continue;
    }
    const from = g.nodes.length;
    gelu(g, n.input![0], n.opType === 'FastGelu' ? 'gelu_new' : 'gelu', n.output![0], true);
    // This builder's fresh names (mul_0…) are the model builder's too: prefix them.
    const fresh = new Set([...g.nodes.slice(from).flatMap((m) => m.output!), ...g.initializers.map((t) => t.name)]);
    fresh.delete(n.output![0]);
    const rename = (v: string) => (fresh.has(v) ? `gelu.${v}` : v);
    nodes.push(
      ...g.nodes
        .slice(from)
        .map((m) => ({ ...m, name: rename(m.name!), input: m.input!.map(rename), output: m.output!.map(rename) })),
    );
  }
  const initializers = g.initializers.map((t) => ({ ...t, name: `gelu.${t.name}` }));
  return { ...spec, nodes, initializers: [...spec.initializers, ...initializers] };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const weights = loadHfCheckpoint(MODEL);
const c = weights.config;
const build = c.architecture === 'gpt2' ? buildGpt2Graph : c.architecture === 'gpt_neox' ? buildNeoxGraph : null;
const spec = (build ?? buildLlamaGraph)(weights);
const dir = mkdtempSync(join(tmpdir(), 'atlas-bench-lean-'));
try {
  const last = `blocks.${c.nLayers - 1}.hook_resid_post`;
  const { hookPoints } = hookInfo(c);
  const outputs = hookPoints.slice(0, hookPoints.indexOf(last) + 1);
  writeOnnxModel(decomposedGelu(spec), join(dir, 'decomposed.onnx'), { externalDataThresholdBytes: 0 });
  writeOnnxModel(spec, join(dir, 'fused.onnx'), { externalDataThresholdBytes: 0 });
  const read = (name: string) => decodeModel(readFileSync(join(dir, name)));
  const cuts = {
    before: pruneModel(read('decomposed.onnx'), outputs),
    lean: pruneModel(withoutSteeringOrCache(read('decomposed.onnx'), outputs), outputs),
    now: pruneModel(withoutSteeringOrCache(read('fused.onnx'), outputs), outputs),
  };
  const options = sessionOptions({ device: 'cpu', threads: 1 }, 'cpu');
  const sessions = new Map<string, ort.InferenceSession>();
  const nodes = new Map<string, string>();
  for (const [name, bytes] of Object.entries(cuts)) {
    const path = join(dir, `${name}-cut.onnx`);
    writeFileSync(path, bytes);
    const optimised = join(dir, `${name}-optimised.onnx`);
    sessions.set(name, await ort.InferenceSession.create(path, { ...options, optimizedModelFilePath: optimised }));
    const counts = new Map<string, number>();
    for (const n of decodeModel(readFileSync(optimised)).graph!.node!)
      counts.set(n.opType!, (counts.get(n.opType!) ?? 0) + 1);
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    const byType = [...counts].sort((a, b) => b[1] - a[1]).map(([op, k]) => `${op} ${k}`);
    nodes.set(name, `${total}: ${byType.join(', ')}`);
  }
  console.log(`${MODEL}: ${c.architecture}, ${c.nLayers} layers, d ${c.dModel}; ${TOKENS} tokens; hook ${last}`);
  for (const [name, n] of nodes) console.log(`nodes after optimisation, ${name}: ${n}`);

  const seq = Array.from({ length: TOKENS }, (_, i) => (i * 7919) % c.vocabSize);
  for (const B of [1, 8]) {
    const batch = Array.from({ length: B }, () => seq);
    const runs = [...sessions].map(([name, s]) => {
      const feeds = batchFeeds(planInputs(s, name), batch);
      return [name, () => s.run(feeds, [last])] as const;
    });
    const values = await Promise.all(runs.map(async ([, run]) => (await run())[last].data as Float32Array));
    const differs = values.map((v) => v.reduce((m, x, i) => Math.max(m, Math.abs(x - values[0][i])), 0));
    const repeat = B === 1 ? 10 : 2;
    const wall = new Map<string, number[]>(runs.map(([n]) => [n, []]));
    const cpu = new Map<string, number[]>(runs.map(([n]) => [n, []]));
    for (let r = 0; r < ROUNDS + 2; r++) {
      for (const [name, run] of runs) {
        const t = performance.now();
        const c0 = process.cpuUsage();
        for (let i = 0; i < repeat; i++) await run();
        const used = process.cpuUsage(c0);
        if (r < 2) continue; // warm-up
        wall.get(name)!.push((performance.now() - t) / repeat);
        cpu.get(name)!.push((used.user + used.system) / 1000 / repeat);
      }
    }
    console.log(`\nbatch ${B}: max |Δ| against before ${differs.map((d) => d.toExponential(1)).join(', ')}`);
    console.log('| graph | wall ms | CPU ms | CPU ÷ before |');
    console.log('| --- | ---: | ---: | ---: |');
    const base = median(cpu.get('before')!);
    for (const [name] of runs) {
      const w = median(wall.get(name)!);
      const u = median(cpu.get(name)!);
      console.log(`| ${name} | ${w.toFixed(3)} | ${u.toFixed(3)} | ${(u / base).toFixed(2)}× |`);
    }
  }
  for (const s of sessions.values()) await s.release();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
