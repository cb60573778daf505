/**
 * One `encode` of a 64-token text over HTTP, the real server (`atlas serve` in a process of its own, as
 * `npm start` runs it: PGlite, dynamic batching as configured by default, ATLAS_THREADS = --threads), one
 * request at a time, against torch in-process running the same token ids through the model to the hook and the
 * SAE: topk(relu((x − b_dec) W_enc + b_enc), k). Model: the demo GPT-2 (assets/demo/model: 4 layers, d 128,
 * vocab 4096) and its blocks.3.hook_resid_post TopK SAE (2048 features, k = 16), the dictionary every demo
 * request uses. The atlas time is the client's: a keep-alive node:http client in this process that asks for
 * gzip (as curl --compressed, Python's requests and browsers do) and decompresses the body, so it covers the
 * request, tokenization, model, encoder, response assembly, compression and reading the body; torch's excludes
 * tokenization. (Before 2026-12-02 the server ran in this process under fetch(), whose own work, about 1 ms a
 * request, then ran on the server's event loop.) The query asks each token's top 16 features (all the active
 * ones), what torch computes, in two shapes, two cases: a list of objects per token (`features { index
 * activation }`, 1024 objects of two fields for GraphQL to complete) and the same answer packed
 * (`featureIndices featureActivations`, two lists of numbers per token). Both are checked against torch.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { openDatabase } from '../../src/db/client.js';
import { DEMO_DIR, DEMO_MODEL_ID } from '../../src/app/demo.js';
import { registerModel } from '../../src/app/register-model.js';
import { importDictionary } from '../../src/app/import-dictionary.js';
import { loadTokenizer } from '../../src/engine/tokenizers/load.js';
import { checkTopIndices, relDiff, type Path } from './common.js';

const TOKENS = 64;
const K = 16;
const LAYER = 3;
const SAE = join(DEMO_DIR, `saes/layer${LAYER}`);
const ATLAS = resolve(import.meta.dirname, '../../bin/atlas.mjs');
const MODEL = join(DEMO_DIR, 'model');
const query = (tokens: string) =>
  `query($t: String!) { encode(dictionary: "demo-L${LAYER}", text: $t, topK: ${K}) ${tokens} }`;
const SHAPES = [
  { name: 'objects', query: query('{ tokens { tokenId features { index activation } } }') },
  { name: 'packed', query: query('{ tokens { tokenId featureIndices featureActivations } }') },
];

/** The longest prefix of the held-out text, in whole words, of at most `limit` tokens (BOS included). */
function textOf(limit: number): string {
  const tokenizer = loadTokenizer(MODEL);
  const words = readFileSync(join(DEMO_DIR, 'heldout.txt'), 'utf8')
    .split(' ')
    .slice(0, 4 * limit);
  let best = words[0];
  for (let n = 2; n <= words.length; n++) {
    const text = words.slice(0, n).join(' ');
    if (tokenizer.encode(text, { bos: true }).length > limit) break;
    best = text;
  }
  return best;
}

/** `atlas serve` on a free port over `dataDir` (demo seeding off), and the URL it listens on. */
async function serve(dataDir: string, threads: number): Promise<{ server: ChildProcess; url: string }> {
  const env = {
    ...process.env,
    ATLAS_DATA_DIR: dataDir,
    ATLAS_DEMO: '0',
    ATLAS_DEVICE: 'cpu',
    ATLAS_THREADS: String(threads),
  };
  const server = spawn(process.execPath, [ATLAS, 'serve', '--port', '0'], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((done, fail) => {
    let out = '';
    server.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) done(m[1]);
    });
    server.once('exit', (code) => fail(new Error(`atlas serve exited with ${code} before listening: ${out}`)));
  });
  server.stdout!.resume();
  return { server, url };
}

/** One POST on the keep-alive agent; the body as text, gunzipped when the server compressed it. */
function post(url: string, agent: Agent, headers: Record<string, string | number>, body: Buffer): Promise<string> {
  return new Promise((done, fail) => {
    const req = request(url, { method: 'POST', agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', fail);
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        done((res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8'));
      });
    });
    req.on('error', fail);
    req.end(body);
  });
}

interface Encoded {
  tokens: {
    tokenId: number;
    features?: { index: number; activation: number }[];
    featureIndices?: number[];
    featureActivations?: number[];
  }[];
}

/** A token's features as {index, activation} whichever shape the response has. */
function featuresOf(t: Encoded['tokens'][number]): { index: number; activation: number }[] {
  return t.features ?? t.featureIndices!.map((index, j) => ({ index, activation: t.featureActivations![j] }));
}

export const httpPath: Path = {
  name: 'http',
  describe:
    `single encode over HTTP: demo GPT-2 (4 layers, d 128) + its layer-${LAYER} TopK SAE (2048, k = ${K}), ` +
    `${TOKENS} tokens, one request at a time (server: PGlite, default batching) vs torch in-process ` +
    'forward to the hook + SAE encode',
  async setup({ torch, dir, threads, iters }) {
    const dataDir = mkdtempSync(join(dir, 'http-'));
    const database = await openDatabase({ dataDir });
    await registerModel(database, { id: DEMO_MODEL_ID, path: MODEL, name: 'demo', prependBos: true });
    await importDictionary(database, { path: SAE, modelId: DEMO_MODEL_ID, id: `demo-L${LAYER}`, dataDir });
    await database.close();
    const { server, url } = await serve(dataDir, threads);
    const text = textOf(TOKENS);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const poster = (query: string) => {
      const body = Buffer.from(JSON.stringify({ query, variables: { t: text } }));
      const headers = { 'content-type': 'application/json', 'content-length': body.length, 'accept-encoding': 'gzip' };
      return () => post(url, agent, headers, body);
    };
    const first = JSON.parse(await poster(SHAPES[0].query)()) as { data?: { encode: Encoded }; errors?: unknown };
    if (!first.data) throw new Error(`encode failed: ${JSON.stringify(first.errors)}`);
    const tokens = first.data.encode.tokens.map((t) => t.tokenId);
    await torch.call({ op: 'gpt2_load', name: 'demo', dir: MODEL, sae: SAE });
    const cmd = { op: 'gpt2_encode', name: 'demo', tokens, layer: LAYER };
    return {
      cases: SHAPES.map(({ name, query }) => {
        const post = poster(query);
        return {
          path: `encode over HTTP (demo model, ${name}) vs torch in-process`,
          size: `${tokens.length} tokens`,
          atlas: post,
          torch: () => torch.times({ ...cmd, iters }),
          check: async () => {
            const read = await torch.outputs(dir, cmd);
            const values = new Float32Array(read('values'));
            const got = (JSON.parse(await post()) as { data: { encode: Encoded } }).data.encode.tokens;
            // The response omits zeros; pad each token's features to k slots as torch's topk has them.
            const gotValues = new Float32Array(tokens.length * K);
            const gotIndices = new Int32Array(tokens.length * K).fill(-1);
            got.forEach((t, p) =>
              featuresOf(t).forEach((f, s) => {
                gotValues[p * K + s] = f.activation;
                gotIndices[p * K + s] = f.index;
              }),
            );
            const worst = relDiff(
              gotValues,
              values.map((v) => Math.max(v, 0)),
              'encode activations',
              1e-4,
            );
            checkTopIndices(gotIndices, new Int32Array(read('indices')), values, K, 'encode features', 1e-4);
            return worst;
          },
        };
      }),
      close: async () => {
        agent.destroy();
        server.kill('SIGTERM');
        if (server.exitCode === null) await new Promise((done) => server.once('exit', done));
      },
    };
  },
};
