/**
 * Hooks narrower or wider than d_model end to end, on a qwen3 checkpoint whose attn.hook_z is
 * heads·d_head = 64 and mlp.hook_post d_mlp = 48 wide (d_model 32): `atlas model add`'s code path
 * records the widths, `atlas import` accepts a dictionary of the hook's own width and refuses one of
 * d_model's, hookActivations and encode over HTTP match the float64 references, and `atlas build`
 * runs over those dictionaries (without a logit lens: hook_z is not in the residual basis).
 */
import { describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestAtlas, useTestAtlas } from './helpers/atlas-server.js';
import { writeTinyLlamaFamily } from './helpers/hf-family-fixtures.js';
import type { HfFixture } from './helpers/hf-fixtures.js';
import { writeSaeFixture, tempDir, type SaeFixture } from './helpers/sae-fixtures.js';
import { ReferenceLlama } from './reference/llama.js';
import { refForwardOne, refTopK } from './reference/sae.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { requireModel } from '../src/db/catalog.js';
import { getLogitTokens } from '../src/db/dashboards.js';
import { buildDashboards } from '../src/app/build-dashboards.js';
import { EngineRegistry } from '../src/app/registry.js';
import { loadTokenizer } from '../src/engine/tokenizers/load.js';
import { AtlasError } from '../src/errors.js';

const Z = 'blocks.1.attn.hook_z';
const POST = 'blocks.0.mlp.hook_post';
const TEXT = 'the cat sat on the mat';

describe('hooks of their own width (qwen3, pglite)', () => {
  const files = tempDir('atlas-hook-widths-');
  let model: HfFixture;
  const saes = new Map<string, SaeFixture>();
  after(() => files.cleanup());

  const test = useTestAtlas('hook widths', async () => {
    mkdirSync(join(files.dir, 'qwen3'));
    model = writeTinyLlamaFamily(join(files.dir, 'qwen3'), 'qwen3', {
      expected: {
        architecture: 'qwen3',
        dModel: 32,
        nLayers: 2,
        nHeads: 4,
        nKvHeads: 2,
        dHead: 16,
        dMlp: 48,
        vocabSize: 384,
        contextLength: 32,
        normEps: 1e-6,
        ropeTheta: 1000,
        ropeStyle: 'half',
        activation: 'silu',
        tiedEmbeddings: true,
      },
      extra: (c) => {
        const m = new Map<string, number[]>();
        for (let l = 0; l < c.nLayers; l++)
          m.set(`blocks.${l}.attn.q_norm.w`, [c.dHead]).set(`blocks.${l}.attn.k_norm.w`, [c.dHead]);
        return m;
      },
    });
    return startTestAtlas('pglite', async (db, dataDir) => {
      // The fixture dictionaries say prepend_bos: true.
      const row = await registerModel(db, { id: 'qwen3-tiny', path: model.dir, name: 'tiny qwen3', prependBos: true });
      assert.equal(row.hookWidths[Z], 64);
      assert.equal(row.hookWidths[POST], 48);
      for (const [hook, dIn, seed] of [
        [Z, 64, 1],
        [POST, 48, 2],
      ] as const) {
        const fx = writeSaeFixture(join(files.dir, `sae-${seed}`), {
          format: 'saelens',
          architecture: 'topk',
          dIn,
          dSae: 96,
          k: 6,
          hookName: hook,
          seed,
        });
        saes.set(hook, fx);
        await importDictionary(db, { path: fx.path, modelId: 'qwen3-tiny', id: `sae-${seed}`, dataDir });
      }
      const wrong = writeSaeFixture(join(files.dir, 'sae-wrong'), {
        format: 'saelens',
        architecture: 'topk',
        dIn: 32,
        dSae: 16,
        k: 2,
        hookName: Z,
      });
      await assert.rejects(
        importDictionary(db, { path: wrong.path, modelId: 'qwen3-tiny', id: 'sae-wrong', dataDir }),
        (e: AtlasError) => {
          assert.equal(e.code, 'DIMENSION_MISMATCH');
          assert.ok(e.message.includes('64 wide at blocks.1.attn.hook_z'), e.message);
          return true;
        },
      );
    });
  });

  test('hookActivations returns each hook at its own width, as the reference computes it', async (a) => {
    const r = await a.gql(
      `{ model(id: "qwen3-tiny") { hookPoints hookWidths } hookActivations(model: "qwen3-tiny", text: "${TEXT}", ` +
        `hooks: ["${Z}", "${POST}", "blocks.0.attn.hook_k", "ln_final.hook_normalized"]) ` +
        `{ tokens { tokenId } hooks { hook values } } }`,
    );
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    assert.ok(r.data.model.hookPoints.includes('blocks.0.ln2.hook_normalized'));
    assert.equal(r.data.model.hookWidths[r.data.model.hookPoints.indexOf(Z)], 64);
    assert.equal(r.data.model.hookWidths[r.data.model.hookPoints.indexOf('blocks.1.hook_resid_post')], 32);
    const ids = r.data.hookActivations.tokens.map((t: { tokenId: number }) => t.tokenId);
    assert.deepEqual(ids, loadTokenizer(model.dir).encode(TEXT, { bos: true }));
    const ref = new ReferenceLlama(model.weights).run(ids);
    const widths: Record<string, number> = {
      [Z]: 64,
      [POST]: 48,
      'blocks.0.attn.hook_k': 32,
      'ln_final.hook_normalized': 32,
    };
    for (const h of r.data.hookActivations.hooks) {
      assert.equal(h.values.length, ids.length);
      assert.ok(
        h.values.every((v: number[]) => v.length === widths[h.hook]),
        h.hook,
      );
      const want = ref.hooks.get(h.hook)!;
      const got = h.values.flat() as number[];
      const scale = Math.max(...Array.from(want, Math.abs));
      assert.ok(
        got.every((v, i) => Math.abs(v - want[i]) <= 1e-4 * scale),
        h.hook,
      );
    }
  });

  test('encode reads each dictionary at its hook and matches the reference SAE on reference activations', async (a) => {
    for (const [hook, fx] of saes) {
      const id = hook === Z ? 'sae-1' : 'sae-2';
      const r = await a.gql(
        `{ encode(dictionary: "${id}", text: "${TEXT}", topK: 4) { tokens { tokenId features { index activation } } ` +
          `} }`,
      );
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      const ids = r.data.encode.tokens.map((t: { tokenId: number }) => t.tokenId);
      const acts = new ReferenceLlama(model.weights).run(ids).hooks.get(hook)!;
      const d = fx.config.dIn;
      r.data.encode.tokens.forEach((t: { features: { index: number; activation: number }[] }, p: number) => {
        const { codes } = refForwardOne(fx.config, fx.params, Array.from(acts.subarray(p * d, (p + 1) * d)));
        const { indices, values } = refTopK(codes, 4);
        const want = indices.map((index, j) => ({ index, activation: values[j] })).filter((f) => f.activation > 0);
        assert.deepEqual(
          t.features.map((f) => f.index),
          want.map((f) => f.index),
          `${hook} position ${p}`,
        );
        t.features.forEach((f, j) =>
          assert.ok(Math.abs(f.activation - want[j].activation) <= 1e-4 * Math.max(1, Math.abs(want[j].activation))),
        );
      });
    }
  });

  test('atlas build runs over dictionaries at hook_z and mlp.hook_post', async (a) => {
    const corpus = join(files.dir, 'corpus.jsonl');
    writeFileSync(
      corpus,
      ['a cat sat', 'on the mat today', 'dogs bark at night', 'the end of it']
        .map((text) => JSON.stringify({ text }))
        .join('\n') + '\n',
    );
    const registry = new EngineRegistry(
      { dataDir: join(files.dir, 'build-data'), device: 'cpu', threads: 1 },
      a.database,
    );
    try {
      const result = await buildDashboards(a.database, registry, { modelId: 'qwen3-tiny', corpus, context: 16 });
      assert.ok(result.tokens > 0);
      const rows = await a.database.query<{ id: string; stats: { tokens: number } | null }>(
        'SELECT id, stats FROM dictionaries ORDER BY id',
      );
      assert.deepEqual(
        rows.map((r) => [r.id, r.stats?.tokens]),
        [
          ['sae-1', result.tokens],
          ['sae-2', result.tokens],
        ],
      );
      const logits = await getLogitTokens(a.database, [{ dictionaryId: 'sae-1', index: 0 }]);
      assert.equal(logits.size, 0, 'no logit lens for attn.hook_z');
      assert.ok((await requireModel(a.database, 'qwen3-tiny')).hookPoints.includes(Z));
    } finally {
      await registry.close();
    }
  });
});
