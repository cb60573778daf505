/**
 * `generate` over HTTP on PGlite with the demo GPT-2 and its layer-1 dictionary: strength 0 equals the
 * default run, a strong ADD of a feature makes its logit-lens tokens (computed here in float64 from the
 * weights) more likely in the returned logprobs, CLAMP with the dictionary's own encoder runs, bad
 * input is refused with coded errors, encode requests pass a long generation, and generateStream
 * streams over graphql-ws's own client and stops the model when the subscription is cancelled.
 */
import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { startTestAtlas, useTestAtlas } from './helpers/atlas-server.js';
import { writeSaeFixture, tempDir } from './helpers/sae-fixtures.js';
import { sharedFile, STORIES_CHECKPOINT } from './helpers/shared.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { DEMO_DIR } from '../src/app/demo.js';
import { openSae } from '../src/engine/sae/open.js';
import { loadHfCheckpoint } from '../src/engine/checkpoints/huggingface.js';

const DICT = 'demo-L1';
const FEATURE = 1143;
const MAX_TOKENS = 64;

/** The feature's logit-lens tokens: the top of d · diag(w_ln_final) · W_U. */
function lensTokens(k: number): Set<number> {
  const src = openSae(join(DEMO_DIR, 'saes', 'layer1'));
  const { W_dec } = src.loadParams();
  src.close();
  const w = loadHfCheckpoint(join(DEMO_DIR, 'model'));
  const { dModel: d, vocabSize } = w.config;
  const row = W_dec.subarray(FEATURE * d, (FEATURE + 1) * d);
  const gain = w.tensor('ln_final.w');
  const WU = w.tensor('unembed.W_U');
  const scores = Array.from({ length: vocabSize }, (_, t) => {
    let s = 0;
    for (let i = 0; i < d; i++) s += row[i] * gain[i] * WU[i * vocabSize + t];
    return { t, s };
  });
  return new Set(
    scores
      .sort((a, b) => b.s - a.s)
      .slice(0, k)
      .map((x) => x.t),
  );
}

const GEN = `query($steering: [SteeringInput!], $max: Int = 16, $default: Boolean = true) {
  generate(model: "demo", prompt: "The people of the", maxTokens: $max, steering: $steering, withDefault: $default) {
    text tokens { tokenId text logprob topAlternatives { tokenId logprob } }
    default { text tokens { tokenId logprob topAlternatives { tokenId logprob } } default { text } }
  }
}`;

interface Gen {
  text: string;
  tokens: { tokenId: number; logprob: number; topAlternatives: { tokenId: number; logprob: number }[] }[];
  default: Gen | null;
}

describe('generate API on pglite', () => {
  const files = tempDir('atlas-generate-');
  const test = useTestAtlas(
    'generate API on pglite',
    () =>
      startTestAtlas(
        'pglite',
        async (db, dataDir) => {
          await registerModel(db, { id: 'demo', path: join(DEMO_DIR, 'model'), name: 'demo', prependBos: true });
          await importDictionary(db, { path: join(DEMO_DIR, 'saes', 'layer1'), modelId: 'demo', id: DICT, dataDir });
          await registerModel(db, { id: 'stories', path: sharedFile(STORIES_CHECKPOINT), name: 'stories' });
          const fx = writeSaeFixture(join(files.dir, 's'), {
            format: 'saelens',
            dIn: 64,
            hookName: 'blocks.2.hook_resid_post',
          });
          await importDictionary(db, { path: fx.path, modelId: 'stories', id: 'stories-sae', dataDir });
        },
        { maxGenerateTokens: MAX_TOKENS },
      ),
    () => files.cleanup(),
  );

  const generate = async (a: Parameters<Parameters<typeof test>[1]>[0], vars: Record<string, unknown>) => {
    const r = await a.gql<{ generate: Gen }>(GEN, vars);
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return r.data!.generate;
  };

  test('strength 0 equals the default run token for token; default is the unsteered sampling', async (a) => {
    const g = await generate(a, { steering: [{ dictionary: DICT, index: FEATURE, strength: 0 }] });
    assert.equal(g.tokens.length, 16);
    assert.deepEqual(
      g.tokens.map((t) => t.tokenId),
      g.default!.tokens.map((t) => t.tokenId),
    );
    assert.equal(g.text, g.default!.text);
    assert.equal(g.default!.default, null);
    for (const t of g.tokens) {
      // Greedy: the chosen token is the most likely alternative, and logprobs are log-probabilities.
      assert.equal(t.topAlternatives[0].tokenId, t.tokenId);
      assert.ok(t.logprob <= 0 && t.topAlternatives.every((x, i, all) => i === 0 || x.logprob <= all[i - 1].logprob));
    }
  });

  test('a strong ADD makes the feature’s logit-lens tokens more likely', async (a) => {
    const lens = lensTokens(10);
    const g = await generate(a, { steering: [{ dictionary: DICT, index: FEATURE, strength: 12 }] });
    const mass = (run: Gen) =>
      run.tokens.reduce(
        (sum, t) =>
          sum + t.topAlternatives.filter((x) => lens.has(x.tokenId)).reduce((s, x) => s + Math.exp(x.logprob), 0),
        0,
      );
    assert.ok(mass(g) > 2 * mass(g.default!), `lens mass steered ${mass(g)} vs default ${mass(g.default!)}`);
    assert.notEqual(g.text, g.default!.text);
  });

  test('CLAMP with the dictionary’s encoder and several interventions run together', async (a) => {
    const g = await generate(a, {
      max: 8,
      default: false,
      steering: [
        { dictionary: DICT, index: FEATURE, strength: 8, method: 'CLAMP' },
        { dictionary: DICT, index: 7, strength: 0.5, method: 'PROJECTION_CAP' },
      ],
    });
    assert.equal(g.tokens.length, 8);
    assert.equal(g.default, null);
  });

  test('bad input is refused with coded errors', async (a) => {
    const code = async (query: string, vars: Record<string, unknown> = {}) =>
      (await a.gql(query, vars)).errors?.[0]?.extensions?.code;
    const steer = (s: string) => `{ generate(model: "demo", prompt: "The", steering: [${s}]) { text } }`;
    assert.equal(await code(steer(`{ dictionary: "${DICT}", index: 99999, strength: 1 }`)), 'NOT_FOUND');
    assert.equal(await code(steer(`{ dictionary: "nope", index: 1, strength: 1 }`)), 'NOT_FOUND');
    assert.equal(await code(steer(`{ dictionary: "stories-sae", index: 1, strength: 1 }`)), 'BAD_USER_INPUT');
    assert.equal(await code(steer(`{ dictionary: "${DICT}", index: 1, strength: 1e999 }`)), 'BAD_USER_INPUT');
    assert.equal(await code(steer(`{ dictionary: "${DICT}", index: 1, strength: -1e999 }`)), 'BAD_USER_INPUT');
    // Finite but large enough to overflow float32 inside the model.
    assert.equal(await code(steer(`{ dictionary: "${DICT}", index: 1, strength: 1e300 }`)), 'BAD_USER_INPUT');
    assert.equal(
      await code(`{ generate(model: "demo", prompt: "The", maxTokens: ${MAX_TOKENS + 1}) { text } }`),
      'INPUT_TOO_LONG',
    );
    assert.equal(await code(`{ generate(model: "nope", prompt: "The") { text } }`), 'NOT_FOUND');
    assert.equal(await code(`{ generate(model: "demo", prompt: "The", seed: 0) { text } }`), 'BAD_USER_INPUT');
  });

  test('an encode request is answered while a long generation runs', async (a) => {
    const order: string[] = [];
    const long = a
      .gql(`{ generate(model: "demo", prompt: "The people", maxTokens: ${MAX_TOKENS}) { text } }`)
      .then(() => order.push('generate'));
    await sleep(50);
    const r = await a.gql(`{ encode(dictionary: "${DICT}", text: "the United States") { topFeatures { index } } }`);
    order.push('encode');
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    await long;
    assert.deepEqual(order, ['encode', 'generate']);
  });

  const STREAM = `subscription($max: Int!) {
    generateStream(model: "demo", prompt: "The people of the", maxTokens: $max,
                   steering: [{ dictionary: "${DICT}", index: ${FEATURE}, strength: 12 }]) {
      run index token { tokenId } done { text tokens { tokenId } default { tokens { tokenId } } }
    }
  }`;
  const wsClient = (a: { url: string }): Client =>
    createClient({ url: a.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });

  test('generateStream streams steered and default tokens over graphql-ws, then the whole generation', async (a) => {
    const client = wsClient(a);
    try {
      const events: any[] = [];
      for await (const e of client.iterate({ query: STREAM, variables: { max: 10 } })) {
        assert.equal(e.errors, undefined, JSON.stringify(e.errors));
        events.push((e.data as any).generateStream);
      }
      const done = events.at(-1).done;
      assert.ok(done, 'the last event carries the generation');
      const streamed = (run: string) => events.filter((e) => e.run === run && e.token).map((e) => e.token.tokenId);
      assert.deepEqual(
        streamed('STEERED'),
        done.tokens.map((t: any) => t.tokenId),
      );
      assert.deepEqual(
        streamed('DEFAULT'),
        done.default.tokens.map((t: any) => t.tokenId),
      );
      assert.equal(streamed('STEERED').length, 10);
      // Errors come back coded before any token.
      const bad = client.iterate({ query: STREAM, variables: { max: MAX_TOKENS + 1 } });
      const first = (await bad.next()).value as any;
      assert.equal(first.errors?.[0]?.extensions?.code, 'INPUT_TOO_LONG');
      // A failure once the runs have started arrives coded too, as the stream's last result.
      const overflow = client.iterate({
        query:
          `subscription { generateStream(model: "demo", prompt: "The", withDefault: false, ` +
          `steering: [{ dictionary: "${DICT}", index: 1, strength: 1e300 }]) { run } }`,
      });
      const failed = (await overflow.next()).value as any;
      assert.equal(failed.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
      assert.equal((await overflow.next()).done, true);
    } finally {
      await client.dispose();
    }
  });

  test('cancelling the subscription stops the model run', async (a) => {
    const client = wsClient(a);
    try {
      const counts = () => a.services.encoding.queues().model.requests;
      const before = counts();
      let tokens = 0;
      const cancel = client.subscribe(
        { query: STREAM, variables: { max: MAX_TOKENS } },
        { next: () => void tokens++, error: () => undefined, complete: () => undefined },
      );
      while (tokens < 3) await sleep(5);
      cancel();
      await sleep(300);
      const stopped = counts();
      await sleep(500);
      assert.equal(counts(), stopped, 'no model call after the cancellation settled');
      // Two runs of MAX_TOKENS steps would make about 2 × 64 calls.
      assert.ok(stopped - before < 40, `${stopped - before} model calls`);
    } finally {
      await client.dispose();
    }
  });
});
