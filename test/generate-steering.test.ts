/**
 * Steered generation in the engine (sampleTokens) on two real checkpoints, stories260K (llama2.c)
 * and the demo GPT-2, against the float64 reference forward passes with the intervention written
 * from its formula (engine/generate.ts): greedy tokens must be the reference's argmax at every step
 * and the logits must agree; strength 0 equals no steering; interventions commute as the formulas say;
 * seeds reproduce.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLlama2c } from '../src/engine/checkpoints/llama2c.js';
import { loadHfCheckpoint } from '../src/engine/checkpoints/huggingface.js';
import { sampleTokens, type Intervention, type SampleOptions } from '../src/engine/generate.js';
import { loadModel } from '../src/engine/model/load.js';
import type { LoadedModel, TransformerWeights } from '../src/engine/model/types.js';
import { DEMO_DIR } from '../src/app/demo.js';
import { sharedFile, STORIES_CHECKPOINT } from './helpers/shared.js';
import { randomVectors } from './helpers/sae-fixtures.js';
import { ReferenceLlama, type ReferenceOutput, type ResidPostSteer } from './reference/llama.js';
import { gpt2Forward } from './reference/gpt2.js';

const STEPS = 32;

interface Sampled {
  ids: number[];
  logits: Float32Array[];
}

async function sample(model: LoadedModel, prompt: number[], o: Partial<SampleOptions>): Promise<Sampled> {
  const out: Sampled = { ids: [], logits: [] };
  const opts = { maxTokens: STEPS, temperature: 0, topp: 1, seed: 7, ...o };
  for await (const t of sampleTokens(model, prompt, opts)) {
    out.ids.push(t.id);
    out.logits.push(t.logits);
  }
  return out;
}

/** Reference logits [seq, vocab] of a whole sequence under a steering function. */
type Reference = (tokens: number[], steer: ResidPostSteer) => Float32Array;
type Forward = (w: TransformerWeights, tokens: number[], steer: ResidPostSteer) => ReferenceOutput;

/**
 * Greedy steering checked against the reference: each generated token is the reference's most
 * likely next token (up to a float tie) and the engine's logits equal the reference's.
 */
function assertMatchesReference(ref: Reference, prompt: number[], got: Sampled, vocab: number, steer: ResidPostSteer) {
  assert.equal(got.ids.length, STEPS, 'no early stop in this test');
  const want = ref([...prompt, ...got.ids], steer);
  got.ids.forEach((id, i) => {
    const row = want.subarray((prompt.length - 1 + i) * vocab, (prompt.length + i) * vocab);
    let best = -Infinity;
    let diff = 0;
    let scale = 0;
    for (let v = 0; v < vocab; v++) {
      best = Math.max(best, row[v]);
      diff = Math.max(diff, Math.abs(row[v] - got.logits[i][v]));
      scale = Math.max(scale, Math.abs(row[v]));
    }
    assert.ok(row[id] >= best - 1e-3, `step ${i}: token ${id} is not the reference's argmax`);
    assert.ok(diff / scale < 1e-3, `step ${i}: logits differ from the reference by ${diff / scale} (relative)`);
  });
}

const addAt =
  (hook: string, v: Float32Array, strength: number): ResidPostSteer =>
  (h, x) =>
    h === hook ? x.map((xi, i) => xi + strength * v[i]) : x;

/** A ReLU feature whose encoder row reads d exactly (e·d = 1) and stays active, f(h) = e·h + b. */
function linearFeature(d: Float32Array, bias: number): (x: ArrayLike<number>) => number {
  let n2 = 0;
  for (const v of d) n2 += v * v;
  return (x) => {
    let s = bias;
    for (let i = 0; i < d.length; i++) s += (x[i] * d[i]) / n2;
    return Math.max(0, s);
  };
}

function suite(
  name: string,
  open: (dataDir: string) => { model: Promise<LoadedModel>; weights: TransformerWeights; forward: Forward },
  prompt: string,
  hook: string,
  nextHook: string,
) {
  describe(name, () => {
    let root = '';
    let model: LoadedModel;
    let ref: Reference;
    let refHooks: (tokens: number[], steer: ResidPostSteer) => Map<string, Float32Array>;
    let ids: number[] = [];
    let vocab = 0;
    let d: Float32Array;
    before(async () => {
      root = mkdtempSync(join(tmpdir(), 'atlas-steer-'));
      const o = open(root);
      model = await o.model;
      ref = (tokens, steer) => o.forward(o.weights, tokens, steer).logits;
      refHooks = (tokens, steer) => o.forward(o.weights, tokens, steer).hooks;
      ids = model.tokenizer.encode(prompt, { bos: model.info.prependBos });
      vocab = model.info.vocabSize;
      d = randomVectors(1, model.info.dModel, 11, 1);
    });
    after(async () => {
      await model?.close();
      rmSync(root, { recursive: true, force: true });
    });
    const add = (strength: number, at = hook): Intervention => ({ hook: at, method: 'ADD', strength, direction: d });

    it('strength 0 gives the unsteered run token for token', async () => {
      const plain = await sample(model, ids, {});
      const zero = await sample(model, ids, { interventions: [add(0)] });
      assert.deepEqual(zero.ids, plain.ids);
      assertMatchesReference(ref, ids, plain, vocab, (_, x) => x);
    });

    it('ADD equals the reference forward with the vector added at every position', async () => {
      const got = await sample(model, ids, { interventions: [add(4)] });
      const plain = await sample(model, ids, {});
      assert.notDeepEqual(got.ids, plain.ids, 'the steering changes the text');
      assertMatchesReference(ref, ids, got, vocab, addAt(hook, d, 4));
    });

    it('CLAMP sets the feature to the asked value at every position, keeping the error term', async () => {
      const f = linearFeature(d, 50);
      const measure = async (h: Float32Array, n: number) => {
        const w = d.length;
        return Float32Array.from({ length: n }, (_, r) => f(h.subarray(r * w, (r + 1) * w)));
      };
      const strength = 53;
      const got = await sample(model, ids, {
        interventions: [{ hook, method: 'CLAMP', strength, direction: d, measure }],
      });
      const clamp: ResidPostSteer = (h, x) => (h === hook ? x.map((xi, i) => xi + (strength - f(x)) * d[i]) : x);
      assertMatchesReference(ref, ids, got, vocab, clamp);
      // What the next block reads, measured by the feature: `strength` at every position.
      const seq = [...ids, ...got.ids];
      const read = refHooks(seq, clamp).get(nextHook)!;
      const w = d.length;
      for (let p = 0; p < seq.length; p++)
        assert.ok(Math.abs(f(read.subarray(p * w, (p + 1) * w)) - strength) < 1e-3, `position ${p}`);
    });

    it('several interventions commute as the formulas say', async () => {
      const e = randomVectors(1, model.info.dModel, 12, 1);
      const other: Intervention = { hook, method: 'ADD', strength: -3, direction: e };
      const ab = await sample(model, ids, { interventions: [add(4), other] });
      const ba = await sample(model, ids, { interventions: [other, add(4)] });
      assert.deepEqual(ab.ids, ba.ids);
      const both: ResidPostSteer = (h, x) => addAt(hook, e, -3)(h, addAt(hook, d, 4)(h, x));
      assertMatchesReference(ref, ids, ab, vocab, both);
      // Two ADDs of one feature are one ADD of the summed strength.
      const split = await sample(model, ids, { interventions: [add(1.5), add(2.5)] });
      assert.deepEqual(split.ids, (await sample(model, ids, { interventions: [add(4)] })).ids);
      // A cap above every projection changes nothing.
      const capped = await sample(model, ids, {
        interventions: [{ hook, method: 'PROJECTION_CAP', strength: 1e6, direction: d }],
      });
      assert.deepEqual(capped.ids, (await sample(model, ids, {})).ids);
      // The same at the first hook, read on a graph pruned there (it has no cache or mask inputs on llama).
      const early = await sample(model, ids, {
        interventions: [{ hook: 'blocks.0.hook_resid_pre', method: 'PROJECTION_CAP', strength: 1e6, direction: d }],
      });
      assert.deepEqual(early.ids, capped.ids);
      // After an ADD, a cap on the same direction takes back what exceeds it (in that order).
      const unit = d.map((v) => v / Math.hypot(...d));
      const cap: ResidPostSteer = (h, x) => {
        if (h !== hook) return x;
        const along = x.reduce((sum, xi, i) => sum + xi * unit[i], 0);
        return x.map((xi, i) => xi - Math.max(0, along - 1) * unit[i]);
      };
      const addThenCap = await sample(model, ids, {
        interventions: [add(4), { hook, method: 'PROJECTION_CAP', strength: 1, direction: d }],
      });
      assertMatchesReference(ref, ids, addThenCap, vocab, (h, x) => cap(h, addAt(hook, d, 4)(h, x)));
    });

    it('a seed reproduces its sample and different seeds differ at temperature 1', async () => {
      const o = { temperature: 1, topp: 0.9, interventions: [add(2)] };
      const a = await sample(model, ids, { ...o, seed: 42 });
      const b = await sample(model, ids, { ...o, seed: 42 });
      const c = await sample(model, ids, { ...o, seed: 43 });
      assert.deepEqual(a.ids, b.ids);
      assert.notDeepEqual(a.ids, c.ids);
    });
  });
}

const STORIES = sharedFile(STORIES_CHECKPOINT);
suite(
  'steering stories260K',
  (dataDir) => ({
    model: loadModel(STORIES, { dataDir, device: 'cpu', threads: 1 }),
    weights: openLlama2c(STORIES).weights,
    forward: (w, tokens, steer) => new ReferenceLlama(w).run(tokens, steer),
  }),
  'Once upon a time',
  'blocks.2.hook_resid_post',
  'blocks.3.hook_resid_pre',
);

const DEMO_MODEL = join(DEMO_DIR, 'model');
suite(
  'steering the demo GPT-2',
  (dataDir) => ({
    model: loadModel(DEMO_MODEL, { dataDir, device: 'cpu', threads: 1 }),
    weights: loadHfCheckpoint(DEMO_MODEL),
    forward: gpt2Forward,
  }),
  'The United',
  'blocks.1.hook_resid_post',
  'blocks.2.hook_resid_pre',
);
