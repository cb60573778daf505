/**
 * One `encode` of a 64-token text over HTTP, the real server (startServer over createServices, PGlite,
 * dynamic batching as configured by default), one request at a time, against torch in-process running
 * the same token ids through the model to the hook and the SAE: topk(relu((x − b_dec) W_enc + b_enc), k).
 * Model: the demo GPT-2 (assets/demo/model: 4 layers, d 128, vocab 4096) and its blocks.3.hook_resid_post
 * TopK SAE (2048 features, k = 16), the dictionary every demo request uses. The atlas time is the client's:
 * request, tokenization, model, encoder, response assembly and reading the body; torch's excludes
 * tokenization. The query asks each token's top 16 features (all the active ones), what torch computes,
 * in two shapes, two cases: a list of objects per token (`features { index activation }`, 1024 objects
 * of two fields for GraphQL to complete) and the same answer packed (`featureIndices featureActivations`,
 * two lists of numbers per token). Both are checked against torch.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config.js';
import { openDatabase } from '../../src/db/client.js';
import { DEMO_DIR, DEMO_MODEL_ID } from '../../src/app/demo.js';
import { registerModel } from '../../src/app/register-model.js';
import { importDictionary } from '../../src/app/import-dictionary.js';
import { createServices } from '../../src/app/services.js';
import { serverSettings, startServer } from '../../src/server.js';
import { loadTokenizer } from '../../src/engine/tokenizers/load.js';
import { checkTopIndices, relDiff, type Path } from './common.js';

const TOKENS = 64;
const K = 16;
const LAYER = 3;
const SAE = join(DEMO_DIR, `saes/layer${LAYER}`);
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
    const config: Config = { ...loadConfig({}), device: 'cpu', threads, dataDir };
    const services = await createServices(config, database);
    const server = await startServer(
      { database, services, ...serverSettings(config), log: () => undefined },
      { port: 0, host: '127.0.0.1' },
    );
    const text = textOf(TOKENS);
    const poster = (query: string) => {
      const body = JSON.stringify({ query, variables: { t: text } });
      return async () => {
        const res = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        return res.text();
      };
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
        await server.stop();
        await services.close();
        await database.close();
      },
    };
  },
};
