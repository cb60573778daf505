/**
 * The hook runner's graphs (onnx/prune.ts withoutSteeringOrCache): cut at the deepest hook, with no
 * steering inputs steer.*, no KV-cache inputs past_key_values.* and no node reading either, and one GELU
 * node per layer where the model has GELU; their hooks equal the float64 references of test/reference
 * for gpt2 (gelu_new), gpt_neox (erf gelu, parallel residual) and llama (grouped-query attention), in a
 * right-padded batch. The full graph keeps both kinds of inputs for the decoder. Inputs the transform
 * does not understand stay as they are. A cut's outputs are the requested hooks alone, and an open cut
 * whose outputs include a request's hooks serves it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../src/engine/model/load.js';
import type { TransformerConfig, TransformerWeights } from '../src/engine/model/types.js';
import { decodeModel, pruneModel, withoutSteeringOrCache } from '../src/engine/onnx/prune.js';
import { int64Tensor, node, onnx, valueInfo } from '../src/engine/onnx/proto.js';
import { relError } from './helpers/graph-runner.js';
import { writeTinyGpt2, writeTinyLlama, type HfFixture } from './helpers/hf-fixtures.js';
import { writeTinyNeox } from './helpers/hf-family-fixtures.js';
import { gpt2Forward, type ReferenceOutput } from './reference/gpt2.js';
import { ReferenceLlama } from './reference/llama.js';
import { neoxForward } from './reference/neox.js';

const NEOX: TransformerConfig = {
  architecture: 'gpt_neox',
  dModel: 32,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 4,
  dHead: 8,
  dMlp: 64,
  vocabSize: 384,
  contextLength: 32,
  normEps: 1e-5,
  ropeTheta: 300,
  ropeStyle: 'half',
  activation: 'gelu',
  rotaryDim: 2,
  parallelResidual: true,
  tiedEmbeddings: false,
};

const CASES: {
  label: string;
  write: (dir: string) => HfFixture;
  reference: (w: TransformerWeights, tokens: number[]) => ReferenceOutput;
  gelu: string | null;
}[] = [
  { label: 'gpt2, gelu_new', write: (dir) => writeTinyGpt2(dir), reference: gpt2Forward, gelu: 'FastGelu' },
  {
    label: 'gpt_neox, erf gelu, parallel residual',
    write: (dir) => writeTinyNeox(dir, { expected: NEOX }),
    reference: neoxForward,
    gelu: 'Gelu',
  },
  {
    label: 'llama, grouped-query attention',
    write: (dir) => writeTinyLlama(dir),
    reference: (w, tokens) => new ReferenceLlama(w).run(tokens),
    gelu: null,
  },
];

const unfed = (name: string) => name.startsWith('steer.') || name.startsWith('past_key_values.');

for (const c of CASES) {
  test(`${c.label}: the hook runner's graph has no steering or cache input; hooks equal the reference`, async () => {
    const root = mkdtempSync(join(tmpdir(), 'atlas-lean-'));
    try {
      mkdirSync(join(root, 'model'));
      const fx = c.write(join(root, 'model'));
      const model = await loadModel(fx.dir, { dataDir: join(root, 'data'), device: 'cpu', threads: 1 });
      try {
        const last = `blocks.${fx.weights.config.nLayers - 1}.hook_resid_post`;
        const hooks = model.info.hookPoints.slice(0, model.info.hookPoints.indexOf(last) + 1);
        const batch = [
          [5, 17, 260, 3, 99, 42, 7, 300],
          [11, 2, 150],
        ];
        const got = await model.runHooks(batch, hooks);
        const S = Math.max(...batch.map((s) => s.length));
        batch.forEach((seq, b) => {
          const want = c.reference(fx.weights, seq).hooks;
          for (const h of hooks) {
            const { dims, data } = got.get(h)!;
            const width = dims[2];
            const rows = data.subarray(b * S * width, (b * S + seq.length) * width);
            const err = relError(rows, want.get(h)!);
            assert.ok(err < 1e-4, `sequence ${b}, ${h}: relative error ${err}`);
          }
        });

        const [entry] = readdirSync(join(root, 'data', 'onnx'));
        const folder = join(root, 'data', 'onnx', entry);
        const lean = readdirSync(folder).filter((f) => /^hooks-lean\d+-[0-9a-f]{16}\.onnx$/.test(f));
        assert.equal(lean.length, 1, `one cut graph: ${readdirSync(folder).join(', ')}`);
        const graph = decodeModel(readFileSync(join(folder, lean[0]))).graph!;
        assert.deepEqual(
          graph.input!.map((i) => i.name),
          ['input_ids', 'attention_mask'],
        );
        assert.deepEqual(
          graph.output!.map((o) => o.name),
          hooks,
        );
        const readers = graph.node!.filter((n) => (n.input ?? []).some(unfed));
        assert.deepEqual(
          readers.map((n) => n.name),
          [],
          'no node reads a steering or cache input',
        );
        const ops = graph.node!.map((n) => n.opType);
        if (c.gelu) {
          assert.equal(ops.filter((o) => o === c.gelu).length, fx.weights.config.nLayers, 'one GELU node per layer');
          assert.ok(!ops.includes('Tanh') && !ops.includes('Erf'), 'no decomposed GELU');
        }
        // The full graph (decoding, and the decoder's reads at a hook) keeps every input.
        const full = decodeModel(readFileSync(join(folder, 'model.onnx'))).graph!;
        const fullInputs = full.input!.map((i) => i.name ?? '');
        assert.ok(fullInputs.some((n) => n.startsWith('steer.')) && fullInputs.some((n) => n.startsWith('past_')));
      } finally {
        await model.close();
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}

test("a cut's outputs are the requested hooks alone; an open cut holding them all serves a request", async () => {
  const root = mkdtempSync(join(tmpdir(), 'atlas-lean-'));
  try {
    mkdirSync(join(root, 'model'));
    const fx = writeTinyGpt2(join(root, 'model'));
    const model = await loadModel(fx.dir, { dataDir: join(root, 'data'), device: 'cpu', threads: 1 });
    try {
      const [entry] = readdirSync(join(root, 'data', 'onnx'));
      const folder = join(root, 'data', 'onnx', entry);
      const cuts = () => readdirSync(folder).filter((f) => f.startsWith('hooks-'));
      const outputsOf = (file: string) =>
        decodeModel(readFileSync(join(folder, file))).graph!.output!.map((o) => o.name);
      const seq = [5, 17, 260, 3, 99];
      const want = gpt2Forward(fx.weights, seq).hooks;
      const [early, late] = ['blocks.0.hook_resid_mid', 'blocks.1.attn.hook_z'];
      const check = (got: Awaited<ReturnType<typeof model.runHooks>>, hooks: string[]) => {
        for (const h of hooks) {
          const err = relError(got.get(h)!.data, want.get(h)!);
          assert.ok(err < 1e-4, `${h}: relative error ${err}`);
        }
      };

      check(await model.runHooks([seq], [late]), [late]);
      assert.deepEqual(cuts().map(outputsOf), [[late]], 'only the requested hook, not the hooks before it');
      check(await model.runHooks([seq], [late, early]), [early, late]);
      const both = cuts().find((f) => outputsOf(f).length === 2)!;
      assert.deepEqual(outputsOf(both), [early, late], 'a request of two hooks: a cut of both, in graph order');

      // With the cut files gone, a request the open cut of both covers makes no new one.
      for (const f of cuts()) unlinkSync(join(folder, f));
      check(await model.runHooks([seq], [early]), [early]);
      assert.deepEqual(cuts(), [], 'served by the open cut of both hooks');
      check(await model.runHooks([seq], ['blocks.1.hook_resid_post']), ['blocks.1.hook_resid_post']);
      assert.deepEqual(cuts().map(outputsOf), [['blocks.1.hook_resid_post']], 'a hook no open cut has: a new cut');

      // A cut of every hook stays open but is too wide to serve one hook: that gets its own cut.
      const every = model.info.hookPoints.filter((h) => want.has(h));
      check(await model.runHooks([seq], every), every);
      for (const f of cuts()) unlinkSync(join(folder, f));
      check(await model.runHooks([seq], [early]), [early]);
      assert.deepEqual(cuts().map(outputsOf), [[early]], 'one hook: its own cut, not the cut of every hook');
    } finally {
      await model.close();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('inputs feeding anything but Add(x, steer), Concat(past, new) on past_seq or a fixed-axes Shape are kept', () => {
  const past = (name: string) => valueInfo(name, 'float', ['batch', 2, 'past_seq', 3]);
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      input: [
        valueInfo('x', 'float', ['batch', 'seq', 4]),
        valueInfo('kv', 'float', ['batch', 2, 'seq', 3]),
        ...['steer.a', 'steer.b', 'steer.c', 'steer.d', 'steer.e', 'steer.f'].map((n) =>
          valueInfo(n, 'float', [1, 1, 4]),
        ),
        past('past_key_values.0.key'),
        past('past_key_values.1.key'),
        past('past_key_values.2.key'),
      ],
      initializer: [int64Tensor('axes', [1], [0])],
      node: [
        node('Add', ['x', 'steer.a'], ['xa']), // stripped: Relu reads x
        node('Relu', ['xa'], ['out_a']),
        node('Add', ['steer.b', 'x'], ['out_b']), // kept: its sum is an output
        node('Mul', ['x', 'steer.c'], ['out_c']), // kept: not an Add
        node('Add', ['x', 'steer.d'], ['xd']), // kept: steer.d is also multiplied
        node('Mul', ['xd', 'steer.d'], ['out_d']),
        node('Add', ['steer.e', 'steer.f'], ['ef']), // kept: neither is x
        node('Relu', ['ef'], ['out_e']),
        node('Concat', ['past_key_values.0.key', 'kv'], ['present0'], { axis: 2 }), // stripped
        node('Shape', ['past_key_values.0.key'], ['len0'], { start: 1, end: 3 }), // folded to [2, 0]
        node('Relu', ['present0'], ['out_0']),
        node('Identity', ['len0'], ['out_len']),
        node('Shape', ['past_key_values.1.key'], ['shape1']), // kept: the batch axis is not fixed
        node('Identity', ['shape1'], ['out_1']),
        node('Concat', ['past_key_values.2.key', 'kv'], ['present2'], { axis: 1 }), // kept: not past_seq
        node('Relu', ['present2'], ['out_2']),
      ],
      output: ['out_a', 'out_b', 'out_c', 'out_d', 'out_e', 'out_0', 'out_len', 'out_1', 'out_2'].map((n) =>
        valueInfo(n, 'float', []),
      ),
    },
  });
  const outputs = model.graph!.output!.map((o) => o.name!);
  const lean = decodeModel(pruneModel(withoutSteeringOrCache(model, outputs), outputs)).graph!;
  assert.deepEqual(
    lean.input!.map((i) => i.name),
    [
      'x',
      'kv',
      'steer.b',
      'steer.c',
      'steer.d',
      'steer.e',
      'steer.f',
      'past_key_values.1.key',
      'past_key_values.2.key',
    ],
  );
  const producer = (v: string) => lean.node!.find((n) => n.output!.includes(v))!;
  assert.deepEqual(producer('out_a').input, ['x']);
  assert.deepEqual(producer('out_0').input, ['kv']);
  const len = lean.initializer!.find((t) => t.name === 'len0')!;
  assert.deepEqual([...new BigInt64Array(new Uint8Array(len.rawData!).buffer)], [2n, 0n]);
  assert.ok(!lean.node!.some((n) => n.output!.includes('len0')), 'the Shape node is gone');
});
