/**
 * A 2B-parameter model on this machine: writes a random checkpoint with gemma-2-2b's exact config and
 * tensor shapes (bf16 safetensors in two shards, streamed to disk; the real weights cannot be
 * downloaded here), then reports conversion time and peak RSS (loadModel on an empty cache), model
 * load time from the cache, and forward tokens/s at 1×128 and 8×128 through every layer (a model
 * this big runs one hooks-only graph without logits, see HOOKS_ONLY_BYTES in src/engine/model/load.ts).
 * Each phase runs in its own process so its peak RSS is its own. Needs ~16 GB of disk and ~12 GB of RAM.
 * Run: npx tsx bench/large-model.ts [--dir /tmp/atlas-large-model] [--threads N] [--keep]
 * (--layers N keeps only the first N layers, for a quick check of the bench itself).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../src/engine/model/load.js';
import { writeLlamaTokenizerJson } from '../test/helpers/tokenizer-fixtures.js';
import { arg, flag } from './util.js';

/** google/gemma-2-2b's config.json (weights stored as bf16 here). */
const CONFIG = {
  architectures: ['Gemma2ForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  attn_logit_softcapping: 50.0,
  bos_token_id: 2,
  cache_implementation: 'hybrid',
  eos_token_id: 1,
  final_logit_softcapping: 30.0,
  head_dim: 256,
  hidden_act: 'gelu_pytorch_tanh',
  hidden_activation: 'gelu_pytorch_tanh',
  hidden_size: 2304,
  initializer_range: 0.02,
  intermediate_size: 9216,
  max_position_embeddings: 8192,
  model_type: 'gemma2',
  num_attention_heads: 8,
  num_hidden_layers: 26,
  num_key_value_heads: 4,
  pad_token_id: 0,
  query_pre_attn_scalar: 256,
  rms_norm_eps: 1e-6,
  rope_theta: 10000.0,
  sliding_window: 4096,
  torch_dtype: 'bfloat16',
  transformers_version: '4.42.4',
  use_cache: true,
  vocab_size: 256000,
};

CONFIG.num_hidden_layers = Number(arg('layers', String(CONFIG.num_hidden_layers)));
const dir = arg('dir', '/tmp/atlas-large-model');
const modelDir = join(dir, 'gemma-2-2b-random');
const dataDir = join(dir, 'data');
const threads = Number(arg('threads', '0'));

/** HF tensor names and shapes of one shard each: embeddings and the first 13 layers, then the rest. */
function shards(): [string, number[]][][] {
  const {
    hidden_size: d,
    intermediate_size: f,
    num_attention_heads: h,
    num_key_value_heads: kv,
    head_dim: hd,
    vocab_size: v,
  } = CONFIG;
  const layer = (l: number): [string, number[]][] => {
    const p = `model.layers.${l}`;
    return [
      [`${p}.input_layernorm.weight`, [d]],
      [`${p}.self_attn.q_proj.weight`, [h * hd, d]],
      [`${p}.self_attn.k_proj.weight`, [kv * hd, d]],
      [`${p}.self_attn.v_proj.weight`, [kv * hd, d]],
      [`${p}.self_attn.o_proj.weight`, [d, h * hd]],
      [`${p}.post_attention_layernorm.weight`, [d]],
      [`${p}.pre_feedforward_layernorm.weight`, [d]],
      [`${p}.post_feedforward_layernorm.weight`, [d]],
      [`${p}.mlp.gate_proj.weight`, [f, d]],
      [`${p}.mlp.up_proj.weight`, [f, d]],
      [`${p}.mlp.down_proj.weight`, [d, f]],
    ];
  };
  const layers = Array.from({ length: CONFIG.num_hidden_layers }, (_, l) => layer(l));
  return [
    [['model.embed_tokens.weight', [v, d]], ...layers.slice(0, Math.ceil(layers.length / 2)).flat()],
    [...layers.slice(Math.ceil(layers.length / 2)).flat(), ['model.norm.weight', [d]]],
  ];
}

/** bf16 bit patterns of N(0, σ) samples, indexed by random bits: fast random weights of a realistic scale. */
function bf16Table(sigma: number, seed: number): Uint16Array {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const table = new Uint16Array(65536);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < table.length; i++) {
    f[0] = sigma * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
    table[i] = u[0] >>> 16;
  }
  return table;
}

/** Writes one safetensors shard, each tensor generated and written in 8 MB pieces. */
function writeShard(path: string, tensors: [string, number[]][], seed: number): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, shape] of tensors) {
    const bytes = 2 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, json);
    const linear = bf16Table(0.02, seed);
    const norm = bf16Table(0.1, seed + 1);
    const chunk = new Uint16Array(4 * 1024 * 1024);
    let s = (seed * 2654435761) >>> 0 || 1;
    for (const [, shape] of tensors) {
      const table = shape.length === 1 ? norm : linear;
      let left = shape.reduce((a, b) => a * b, 1);
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        for (let i = 0; i < n; i++) {
          s ^= s << 13;
          s >>>= 0;
          s ^= s >>> 17;
          s ^= s << 5;
          s >>>= 0;
          chunk[i] = table[s & 0xffff];
        }
        writeSync(fd, new Uint8Array(chunk.buffer, 0, 2 * n));
        left -= n;
      }
    }
  } finally {
    closeSync(fd);
  }
}

function generate(): Record<string, number> {
  const started = performance.now();
  mkdirSync(modelDir, { recursive: true });
  writeFileSync(join(modelDir, 'config.json'), JSON.stringify(CONFIG, null, 2));
  const weightMap: Record<string, string> = {};
  shards().forEach((tensors, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeShard(join(modelDir, file), tensors, 17 + i);
    for (const [name] of tensors) weightMap[name] = file;
  });
  writeFileSync(
    join(modelDir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  );
  // Token ids are drawn directly; a small tokenizer satisfies loadModel.
  writeLlamaTokenizerJson(modelDir, 512);
  return { seconds: (performance.now() - started) / 1000 };
}

const rssGiB = () => process.memoryUsage().rss / 1024 ** 3;
const peakGiB = () => process.resourceUsage().maxRSS / 1024 ** 2;

async function convert(): Promise<Record<string, number>> {
  let convertStart = 0;
  let convertEnd = 0;
  let convertPeak = rssGiB();
  const started = performance.now();
  const model = await loadModel(modelDir, {
    dataDir,
    device: 'cpu',
    threads,
    onProgress: (m) => {
      if (m.startsWith('converting')) convertStart = performance.now();
      if (m.startsWith('converted in')) convertEnd = performance.now();
      convertPeak = Math.max(convertPeak, rssGiB());
      console.error(`  ${((performance.now() - started) / 1000).toFixed(0)} s, RSS ${rssGiB().toFixed(1)} GiB: ${m}`);
    },
  });
  const firstLoad = (performance.now() - started) / 1000;
  await model.close();
  return {
    convertSeconds: (convertEnd - convertStart) / 1000,
    convertPeakRssGiB: convertPeak,
    firstLoadSeconds: firstLoad,
    processPeakRssGiB: peakGiB(),
  };
}

async function run(): Promise<Record<string, number>> {
  const started = performance.now();
  const model = await loadModel(modelDir, { dataDir, device: 'cpu', threads });
  const loadSeconds = (performance.now() - started) / 1000;
  const loadedRss = rssGiB();
  const last = `blocks.${model.info.nLayers - 1}.hook_resid_post`;
  let s = 12345;
  const seq = () => [2, ...Array.from({ length: 127 }, () => ((s = (s * 1103515245 + 12345) >>> 0) % 255000) + 1000)];
  const time = async (batch: number) => {
    const tokens = Array.from({ length: batch }, seq);
    const t = performance.now();
    await model.runHooks(tokens, [last]);
    return (performance.now() - t) / 1000;
  };
  await time(1); // warm-up
  const one = Math.min(await time(1), await time(1));
  const eight = await time(8);
  await model.close();
  return {
    loadSeconds,
    loadedRssGiB: loadedRss,
    loadAverage: loadavg()[0],
    tokensPerSecond1x128: 128 / one,
    tokensPerSecond8x128: 1024 / eight,
    processPeakRssGiB: peakGiB(),
  };
}

const phase = arg('phase', '');
if (phase) {
  const result = phase === 'generate' ? generate() : phase === 'convert' ? await convert() : await run();
  console.log(JSON.stringify(result));
} else {
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const results: Record<string, Record<string, number>> = {};
  try {
    for (const p of ['generate', 'convert', 'run']) {
      console.error(`phase ${p}…`);
      const args = [
        '--phase',
        p,
        '--dir',
        dir,
        '--threads',
        String(threads),
        '--layers',
        String(CONFIG.num_hidden_layers),
      ];
      const out = execFileSync(process.execPath, [...process.execArgv, process.argv[1], ...args], {
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 1 << 20,
      });
      results[p] = JSON.parse(out.toString().trim().split('\n').pop()!);
      console.error(`  ${JSON.stringify(results[p])}`);
    }
  } finally {
    if (!flag('keep')) rmSync(dir, { recursive: true, force: true });
  }
  const { generate: g, convert: c, run: r } = results;
  const f = (x: number, digits = 1) => x.toFixed(digits);
  const load = `load average ${r.loadAverage.toFixed(1)} on ${cpus().length} cores at the end`;
  console.log(
    `gemma-2-2b shapes, ${CONFIG.num_hidden_layers} layers (bf16 checkpoint), CPU, threads ${threads || 'default'}, ` +
      `${load}\n`,
  );
  console.log('| measure | value |');
  console.log('| --- | ---: |');
  console.log(`| write the random checkpoint | ${f(g.seconds)} s |`);
  console.log(`| convert to ONNX (streamed, f32 external data) | ${f(c.convertSeconds)} s |`);
  console.log(`| peak RSS while converting | ${f(c.convertPeakRssGiB)} GiB |`);
  console.log(
    `| first loadModel (hash + convert + session) | ${f(c.firstLoadSeconds)} s, peak RSS ${f(c.processPeakRssGiB)} ` +
      `GiB |`,
  );
  console.log(`| loadModel from the cache | ${f(r.loadSeconds)} s, RSS ${f(r.loadedRssGiB)} GiB |`);
  console.log(`| forward 1×128 | ${f(r.tokensPerSecond1x128)} tokens/s |`);
  console.log(`| forward 8×128 | ${f(r.tokensPerSecond8x128)} tokens/s |`);
  console.log(`| peak RSS while running | ${f(r.processPeakRssGiB)} GiB |`);
}
