/**
 * SAE encode throughput: vectors/s of the ONNX encoder as encodeVectors runs it (normalize, encode,
 * top-k, L0; no reconstruction) for a random 24,576 x 768 dictionary at batch 1, 64 and 1024, and
 * its FLOP rate next to a plain MatMul [n, 768] x [768, 24576] run in the same onnxruntime process.
 * Usage: node --import tsx bench/sae-encode.ts [--arch standard|jumprelu|topk|gated] [--seconds 3] [--device
 * cpu|cuda|auto]
 * FLOPs counted per vector: 2*dIn*dSae for the encoder product.
 */
import * as ort from 'onnxruntime-node';
import { SaeEncoder } from '../src/engine/sae/encoder.js';
import type { SaeArchitecture, SaeParams } from '../src/engine/sae/types.js';
import { floatTensor, node, serializeModel, valueInfo } from '../src/engine/onnx/proto.js';
import { createSession } from '../src/engine/runtime/session.js';
import { arg, benchSaeConfig, uniform } from './util.js';

const D_IN = 768;
const D_SAE = 24576;
const BATCHES = [1, 64, 1024];
const TOP_K = 32;

const arch = arg('arch', 'topk') as SaeArchitecture;
const seconds = Number(arg('seconds', '3'));
const settings = { device: arg('device', 'cpu') as 'cpu' | 'cuda' | 'auto', threads: 0 };

async function time(run: () => Promise<unknown>): Promise<number> {
  await run();
  let iters = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < seconds || iters < 3) {
    await run();
    iters++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  return elapsed / iters;
}

async function main(): Promise<void> {
  const w = 1 / Math.sqrt(D_IN);
  const params: SaeParams = {
    W_enc: uniform(D_IN * D_SAE, w, 1),
    W_dec: uniform(D_SAE * D_IN, w, 2),
    b_dec: uniform(D_IN, 0.1, 3),
    b_enc: uniform(D_SAE, 0.1, 4),
    threshold: uniform(D_SAE, 0.5, 5).map(Math.abs),
    b_gate: uniform(D_SAE, 0.1, 6),
    b_mag: uniform(D_SAE, 0.1, 7),
    r_mag: uniform(D_SAE, 0.1, 8),
  };
  const cfg = benchSaeConfig(arch, D_IN, D_SAE, arch === 'topk' ? 64 : null, true);
  const encoder = await SaeEncoder.create(cfg, params, { session: settings });
  const { session: matmul } = await createSession(
    serializeModel({
      name: 'matmul',
      nodes: [node('MatMul', ['x', 'W'], ['y'])],
      initializers: [floatTensor('W', [D_IN, D_SAE], params.W_enc)],
      inputs: [valueInfo('x', 'float', ['n', D_IN])],
      outputs: [valueInfo('y', 'float', ['n', D_SAE])],
    }),
    settings,
  );

  console.log(
    `SAE encode benchmark: ${arch}, ${D_SAE} x ${D_IN}, top-${TOP_K}, onnxruntime-node ${ort.env.versions.common} ` +
      `${encoder.provider}, ${seconds}s per point`,
  );
  const rows: string[][] = [];
  for (const n of BATCHES) {
    const x = uniform(n * D_IN, 2, 100 + n);
    const tEnc = await time(() => encoder.encode(x, n, TOP_K));
    const xt = new ort.Tensor('float32', x, [n, D_IN]);
    const tMm = await time(() => matmul.run({ x: xt }));
    const encFlops = (2 * D_IN * D_SAE * n) / tEnc;
    const mmFlops = (2 * D_IN * D_SAE * n) / tMm;
    rows.push([
      String(n),
      (n / tEnc).toFixed(1),
      (tEnc * 1e3).toFixed(2),
      (encFlops / 1e9).toFixed(1),
      (mmFlops / 1e9).toFixed(1),
      (encFlops / mmFlops).toFixed(2),
    ]);
  }
  const head = ['batch', 'vectors/s', 'ms/batch', 'encode GFLOP/s', 'MatMul GFLOP/s', 'ratio'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]): string => r.map((c, i) => c.padStart(widths[i])).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  await encoder.close();
  await matmul.release();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
