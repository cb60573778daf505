/**
 * Transcoders and skip transcoders (SAELens transcoder / skip_transcoder / jumprelu_transcoder,
 * sparsify `transcode`, Gemma Scope transcoder releases): read, encoded by the ONNX graph and by the
 * TypeScript forward, exported and read back, all against test/reference/sae.ts in float64; then over
 * the API on a tiny GPT-2, where encode reads the input hook, reconstruction is measured against the
 * output hook of the float64 reference model, and `atlas build` reports the same explained variance
 * and a logit lens.
 */
import { describe, test as plainTest } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  writeSaeFixture,
  tempDir,
  randomVectors,
  type SaeFixture,
  type SaeFixtureOptions,
} from './helpers/sae-fixtures.js';
import { refForwardOne, refTopK } from './reference/sae.js';
import { gpt2Forward } from './reference/gpt2.js';
import { openSae } from '../src/engine/sae/open.js';
import { forward, SaeEncoder, writeSaelens } from '../src/engine/sae/index.js';
import { startTestAtlas, useTestAtlas } from './helpers/atlas-server.js';
import { writeTinyGpt2, type HfFixture } from './helpers/hf-fixtures.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { buildDashboards } from '../src/app/build-dashboards.js';
import { loadTokenizer } from '../src/engine/tokenizers/load.js';

const D = 32;
const IN = 'blocks.1.ln2.hook_normalized';
const OUT = 'blocks.1.hook_mlp_out';

interface Case {
  label: string;
  /** Folder the fixture is written into, relative to the temp dir (Gemma Scope takes the hook from it). */
  dir: string;
  opts: SaeFixtureOptions;
  hookOut: string | null;
  skip: boolean;
}

const CASES: Case[] = [
  {
    label: 'SAELens transcoder',
    dir: 'tc',
    opts: { format: 'saelens', architecture: 'standard', hookName: IN, transcoder: { hookNameOut: OUT, skip: false } },
    hookOut: OUT,
    skip: false,
  },
  {
    label: 'SAELens skip_transcoder',
    dir: 'skip',
    opts: { format: 'saelens', architecture: 'standard', hookName: IN, transcoder: { hookNameOut: OUT, skip: true } },
    hookOut: OUT,
    skip: true,
  },
  {
    label: 'SAELens jumprelu_transcoder',
    dir: 'jr',
    opts: { format: 'saelens', architecture: 'jumprelu', hookName: IN, transcoder: { hookNameOut: OUT, skip: false } },
    hookOut: OUT,
    skip: false,
  },
  {
    label: 'sparsify transcode + skip_connection',
    dir: 'layers.1.mlp',
    opts: { format: 'sparsify', k: 6, transcoder: { hookNameOut: null, skip: true } },
    hookOut: null,
    skip: true,
  },
  {
    label: 'Gemma Scope transcoder release',
    dir: 'gemma-scope-2b-pt-transcoders/layer_1/width_16k/average_l0_5',
    opts: { format: 'gemmascope' },
    hookOut: OUT,
    skip: false,
  },
];

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let diff = 0,
    scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return diff / Math.max(scale, 1e-12);
}

describe('transcoder files', () => {
  for (const c of CASES) {
    plainTest(
      `${c.label}: read as a transcoder; ONNX and TypeScript encode equal the reference; export round trip`,
      async () => {
        const files = tempDir('atlas-tc-');
        try {
          const fx = writeSaeFixture(join(files.dir, c.dir), { dIn: D, dSae: 64, seed: 5, ...c.opts });
          const src = openSae(fx.path);
          try {
            const cfg = src.config;
            assert.deepEqual(cfg.transcoder, { hookNameOut: c.hookOut, skip: c.skip }, c.label);
            assert.equal(cfg.applyBDecToInput, false, 'a transcoder never subtracts b_dec from its input');
            if (c.opts.format === 'gemmascope') assert.equal(cfg.hookName, IN);
            const params = src.loadParams();
            assert.equal(params.W_skip !== undefined, c.skip);
            const n = 6;
            const x = randomVectors(n, D, 9, 2);
            const encoder = await SaeEncoder.create(cfg, params);
            const enc = await encoder.encode(x, n, 8, { reconstruct: true });
            await encoder.close();
            const ts = forward(params, cfg, x, n);
            for (let r = 0; r < n; r++) {
              const xr = Array.from(x.subarray(r * D, (r + 1) * D));
              const ref = refForwardOne(fx.config, fx.params, xr);
              const top = refTopK(ref.codes, 8);
              const active = top.indices.filter((_, j) => top.values[j] > 0);
              assert.deepEqual(
                Array.from(enc.indices.subarray(r * 8, r * 8 + active.length)),
                active,
                `${c.label} row ${r} indices`,
              );
              assert.ok(
                maxRelErr(enc.values.subarray(r * 8, r * 8 + active.length), top.values.slice(0, active.length)) < 1e-5,
                `${c.label} row ${r} values`,
              );
              assert.ok(
                maxRelErr(enc.xHat!.subarray(r * D, (r + 1) * D), ref.xHat) < 1e-5,
                `${c.label} row ${r} ONNX x_hat`,
              );
              assert.ok(
                maxRelErr(ts.xHat.subarray(r * D, (r + 1) * D), ref.xHat) < 1e-5,
                `${c.label} row ${r} TypeScript x_hat`,
              );
              assert.ok(
                maxRelErr(ts.codes.subarray(r * 64, (r + 1) * 64), ref.codes) < 1e-5,
                `${c.label} row ${r} codes`,
              );
            }
            const out = join(files.dir, 'exported');
            if (cfg.architecture === 'topk') {
              // SAELens has no TopK transcoder to export a sparsify one as.
              assert.throws(
                () => writeSaelens(out, cfg, params),
                (e: any) => e.code === 'UNSUPPORTED',
              );
              return;
            }
            // SAELens export → read back: the same transcoder, bit for bit.
            writeSaelens(out, cfg, params);
            const back = openSae(out);
            try {
              assert.deepEqual(back.config.transcoder, cfg.transcoder);
              assert.equal(back.config.architecture, cfg.architecture);
              const again = back.loadParams();
              for (const name of Object.keys(params) as (keyof typeof params)[])
                assert.deepEqual(again[name], params[name], `${c.label}: ${name}`);
            } finally {
              back.close();
            }
          } finally {
            src.close();
          }
        } finally {
          files.cleanup();
        }
      },
    );
  }

  plainTest('a transcoder wider at its output, normalizing its input, or missing W_skip is refused with a code', () => {
    const files = tempDir('atlas-tc-bad-');
    try {
      const write = (
        name: string,
        edit: (cfg: Record<string, unknown>) => void,
        opts: Partial<SaeFixtureOptions> = {},
      ) => {
        const fx = writeSaeFixture(join(files.dir, name), {
          format: 'saelens',
          dIn: D,
          dSae: 64,
          hookName: IN,
          transcoder: { hookNameOut: OUT, skip: false },
          ...opts,
        });
        const cfgPath = join(fx.path, 'cfg.json');
        const cfg = JSON.parse(String(readFileSync(cfgPath)));
        edit(cfg);
        writeFileSync(cfgPath, JSON.stringify(cfg));
        return fx.path;
      };
      assert.throws(
        () =>
          openSae(
            write('wide', (c) => {
              c.d_out = 2 * D;
            }),
          ),
        (e: any) => e.code === 'UNSUPPORTED' && /width 64/.test(e.message),
      );
      assert.throws(
        () =>
          openSae(
            write('norm', (c) => {
              c.normalize_activations = 'layer_norm';
            }),
          ),
        (e: any) => e.code === 'UNSUPPORTED' && /transcoder/.test(e.message),
      );
      const noSkip = writeSaeFixture(join(files.dir, 'noskip'), {
        format: 'saelens',
        dIn: D,
        dSae: 64,
        hookName: IN,
        transcoder: { hookNameOut: OUT, skip: false },
      });
      const cfgPath = join(noSkip.path, 'cfg.json');
      const cfg = JSON.parse(String(readFileSync(cfgPath)));
      writeFileSync(cfgPath, JSON.stringify({ ...cfg, architecture: 'skip_transcoder' }));
      assert.throws(
        () => openSae(noSkip.path),
        (e: any) => e.code === 'BAD_FILE' && /W_skip/.test(e.message),
      );
    } finally {
      files.cleanup();
    }
  });
});

describe('transcoders through the API and atlas build', () => {
  const files = tempDir('atlas-tc-api-');
  let model: HfFixture;
  const fxs = new Map<string, SaeFixture>();
  const TEXT = 'the cat sat on the mat';

  const test = useTestAtlas(
    'transcoders through the API',
    async () => {
      mkdirSync(join(files.dir, 'gpt2'));
      model = writeTinyGpt2(join(files.dir, 'gpt2'));
      return startTestAtlas('pglite', async (db, dataDir) => {
        await registerModel(db, { id: 'gpt2-tiny', path: model.dir, name: 'tiny gpt2', prependBos: true });
        const skip = writeSaeFixture(join(files.dir, 'skip'), {
          format: 'saelens',
          architecture: 'standard',
          dIn: D,
          dSae: 64,
          seed: 3,
          hookName: IN,
          transcoder: { hookNameOut: OUT, skip: true },
        });
        fxs.set('tc-skip', skip);
        await importDictionary(db, { path: skip.path, modelId: 'gpt2-tiny', id: 'tc-skip', dataDir });
        // sparsify names no hooks: --hook gives the input and the MLP output of that block is the default.
        const sp = writeSaeFixture(join(files.dir, 'layers.0.mlp'), {
          format: 'sparsify',
          dIn: D,
          dSae: 64,
          k: 6,
          seed: 4,
          transcoder: { hookNameOut: null, skip: false },
        });
        fxs.set('tc-sparsify', sp);
        await importDictionary(db, {
          path: sp.path,
          modelId: 'gpt2-tiny',
          id: 'tc-sparsify',
          hook: 'blocks.0.ln2.hook_normalized',
          dataDir,
        });
      });
    },
    () => files.cleanup(),
  );

  test('the catalog records both hooks', async (a) => {
    const r = await a.gql('{ dictionaries(model: "gpt2-tiny") { id hookPoint hookPointOut skipConnection } }');
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    assert.deepEqual(r.data.dictionaries, [
      { id: 'tc-skip', hookPoint: IN, hookPointOut: OUT, skipConnection: true },
      {
        id: 'tc-sparsify',
        hookPoint: 'blocks.0.ln2.hook_normalized',
        hookPointOut: 'blocks.0.hook_mlp_out',
        skipConnection: false,
      },
    ]);
    await assert.rejects(
      importDictionary(a.database, {
        path: fxs.get('tc-skip')!.path,
        modelId: 'gpt2-tiny',
        id: 'bad-out',
        hookOut: 'blocks.9.hook_mlp_out',
        dataDir: files.dir,
      }),
      (e: any) => e.code === 'BAD_USER_INPUT' && /blocks\.9\.hook_mlp_out/.test(e.message),
    );
  });

  test('encode reads the input hook and measures the reconstruction against the output hook', async (a) => {
    const tokenizer = loadTokenizer(model.dir);
    const ids = tokenizer.encode(TEXT, { bos: true });
    const ref = gpt2Forward(model.weights, ids);
    for (const [id, hookIn, hookOut] of [
      ['tc-skip', IN, OUT],
      ['tc-sparsify', 'blocks.0.ln2.hook_normalized', 'blocks.0.hook_mlp_out'],
    ]) {
      const fx = fxs.get(id)!;
      const r = await a.gql(
        `{ encode(dictionary: "${id}", text: "${TEXT}", topK: 4) { tokens { tokenId features { index activation } } ` +
          `reconstruction { mse } } }`,
      );
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.deepEqual(
        r.data.encode.tokens.map((t: any) => t.tokenId),
        ids,
      );
      const xs = ref.hooks.get(hookIn)!;
      const ys = ref.hooks.get(hookOut)!;
      let sq = 0;
      ids.forEach((_, p) => {
        const x = Array.from(xs.subarray(p * D, (p + 1) * D));
        const want = refForwardOne(fx.config, fx.params, x);
        const top = refTopK(want.codes, 4);
        const active = top.indices.filter((_, j) => top.values[j] > 0);
        assert.deepEqual(
          r.data.encode.tokens[p].features.map((f: any) => f.index),
          active,
          `${id} token ${p}`,
        );
        if (p === 0) return; // BOS is left out of reconstruction quality
        want.xHat.forEach((v, i) => {
          sq += (ys[p * D + i] - v) ** 2;
        });
      });
      const mse = sq / ((ids.length - 1) * D);
      assert.ok(
        Math.abs(r.data.encode.reconstruction.mse - mse) <= 1e-4 * mse,
        `${id}: mse ${r.data.encode.reconstruction.mse} vs ${mse}`,
      );
    }
  });

  test('atlas build: explained variance against the output hook, and a logit lens in its residual basis', async (a) => {
    const docs = ['the cat sat on the mat', 'a dog ran in the park', 'the moon and the stars'];
    const corpus = join(files.dir, 'corpus.jsonl');
    writeFileSync(corpus, docs.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    const result = await buildDashboards(a.database, a.services.registry, {
      dictionaryIds: ['tc-skip'],
      corpus,
      context: 32,
    }); // every document fits one context
    const tokenizer = loadTokenizer(model.dir);
    const fx = fxs.get('tc-skip')!;
    const ys: number[][] = [];
    const yHats: number[][] = [];
    for (const doc of docs) {
      const ids = [tokenizer.bosId!, ...tokenizer.encode(doc, { bos: false })];
      const ref = gpt2Forward(model.weights, ids);
      for (let p = 1; p < ids.length; p++) {
        ys.push(Array.from(ref.hooks.get(OUT)!.subarray(p * D, (p + 1) * D)));
        yHats.push(
          refForwardOne(fx.config, fx.params, Array.from(ref.hooks.get(IN)!.subarray(p * D, (p + 1) * D))).xHat,
        );
      }
    }
    const mean = Array.from({ length: D }, (_, i) => ys.reduce((s, y) => s + y[i], 0) / ys.length);
    let resid = 0,
      total = 0;
    ys.forEach((y, t) =>
      y.forEach((v, i) => {
        resid += (v - yHats[t][i]) ** 2;
        total += (v - mean[i]) ** 2;
      }),
    );
    const stats = result.dictionaries[0].stats;
    assert.equal(stats.tokens, ys.length);
    assert.ok(
      Math.abs(stats.explainedVariance - (1 - resid / total)) < 1e-4,
      `${stats.explainedVariance} vs ${1 - resid / total}`,
    );
    const r = await a.gql('{ feature(dictionary: "tc-skip", index: 0) { logits { positive { token } } } }');
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    assert.ok(
      r.data.feature.logits.positive.length > 0,
      'hook_mlp_out is in the residual basis, so the logit lens is computed',
    );
  });
});
