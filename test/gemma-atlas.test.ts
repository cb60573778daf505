/**
 * A Gemma model through the atlas: `atlas model add`, `atlas import` of dictionaries on hooks of three
 * widths (attn.hook_z: heads·d_head, mlp.hook_post: d_mlp, hook_resid_post: d_model), `encode` of a
 * text and `atlas build` over a corpus. Oracles: test/reference/gemma.ts for the activations (with
 * `<bos>` first), test/reference/sae.ts for the codes, and the logit lens (d ⊙ (1 + w_final))·W_Eᵀ
 * computed here from the checkpoint's tensors.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openTestDatabase } from './helpers/atlas-server.js';
import { writeTinyGemma, type GemmaFixture } from './helpers/gemma-fixtures.js';
import { writeSaeFixture, tempDir, type SaeFixture } from './helpers/sae-fixtures.js';
import { refForwardOne, refTopK } from './reference/sae.js';
import { gemmaReference } from './reference/gemma.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { EngineRegistry } from '../src/app/registry.js';
import { EncodingService } from '../src/app/encode.js';
import { buildDashboards } from '../src/app/build-dashboards.js';
import { getLogitTokens } from '../src/db/dashboards.js';
import { getFeatures } from '../src/db/features.js';
import { listDictionaries, requireDictionary, requireModel } from '../src/db/catalog.js';
import type { Database } from '../src/db/client.js';
import { AtlasError } from '../src/errors.js';

const D_SAE = 32;
const DICTS = [
  { id: 'z', hook: 'blocks.1.attn.hook_z', dIn: 40, format: 'gemmascope' as const },
  { id: 'mlp', hook: 'blocks.2.mlp.hook_post', dIn: 36, format: 'saelens' as const },
  { id: 'resid', hook: 'blocks.2.hook_resid_post', dIn: 24, format: 'saelens' as const },
];
const TEXTS = [
  'the cat sat on the mat',
  'Lily saw a big red ball',
  'the dog ran home and the sun was hot',
  'Tom and Max sat in the park',
];

describe('a gemma2 model through import, encode and build', () => {
  const files = tempDir('atlas-gemma-atlas-');
  let database: Database;
  let cleanup: () => Promise<void>;
  let registry: EngineRegistry;
  let model: GemmaFixture;
  const saes = new Map<string, SaeFixture>();
  const dataDir = join(files.dir, 'data');

  before(async () => {
    mkdirSync(join(files.dir, 'gemma'));
    // d_mlp 36 so that no two hook widths coincide.
    model = writeTinyGemma(join(files.dir, 'gemma'), {
      family: 'gemma2',
      dtype: 'BF16',
      seed: 9,
      text: { intermediate_size: 36 },
    });
    const opened = await openTestDatabase('pglite');
    assert.ok(!('skip' in opened));
    ({ database, cleanup } = opened);
    mkdirSync(dataDir);
    const row = await registerModel(database, { id: 'gemma-tiny', path: model.dir, name: 'tiny gemma2' });
    assert.equal(row.prependBos, true);
    assert.ok(row.hookPoints.includes('blocks.1.attn.hook_z'));
    for (const [i, d] of DICTS.entries()) {
      const fx = writeSaeFixture(join(files.dir, d.id), {
        format: d.format,
        architecture: 'standard',
        dIn: d.dIn,
        dSae: D_SAE,
        hookName: d.format === 'saelens' ? d.hook : null,
        modelName: 'gemma-tiny',
        seed: 20 + i,
      });
      saes.set(d.id, fx);
      await importDictionary(database, { path: fx.path, modelId: 'gemma-tiny', id: d.id, hook: d.hook, dataDir });
    }
    registry = new EngineRegistry({ dataDir, device: 'cpu', threads: 1 }, database);
  });
  after(async () => {
    await registry?.close();
    await cleanup?.();
    files.cleanup();
  });

  it('refuses a residual-stream dictionary of the wrong width at import', async () => {
    const fx = writeSaeFixture(join(files.dir, 'wide'), {
      format: 'saelens',
      architecture: 'standard',
      dIn: 40,
      dSae: 8,
      hookName: 'blocks.0.hook_resid_pre',
      modelName: 'gemma-tiny',
    });
    await assert.rejects(
      importDictionary(database, { path: fx.path, modelId: 'gemma-tiny', id: 'wide', dataDir }),
      (e: unknown) => e instanceof AtlasError && e.code === 'DIMENSION_MISMATCH',
    );
  });

  it('encode: codes on hook_z, mlp.hook_post and resid_post equal the references', async () => {
    const encoding = new EncodingService(registry, {
      batchTokens: 4096,
      batchVectors: 4096,
      maxQueue: 8,
      requestTimeoutMs: 60000,
      maxInputTokens: 64,
      maxInputChars: 1000,
      batching: true,
      maxGenerateTokens: 64,
    });
    const row = await requireModel(database, 'gemma-tiny');
    const dicts = await Promise.all(DICTS.map((d) => requireDictionary(database, d.id)));
    const text = TEXTS[2];
    const out = await encoding.encodeText(row, dicts, text, 4);
    const loaded = (await registry.model(row)).value;
    const ids = loaded.tokenizer.encode(text, { bos: true });
    assert.equal(loaded.tokenizer.tokenText(ids[0]), '<bos>');
    const ref = gemmaReference(model.reference, ids);
    for (const [i, d] of DICTS.entries()) {
      const fx = saes.get(d.id)!;
      const acts = ref.hooks.get(d.hook)!;
      assert.equal(out[i].tokens.length, ids.length);
      out[i].tokens.forEach((tok, t) => {
        const codes = refForwardOne(fx.config, fx.params, Array.from(acts.subarray(t * d.dIn, (t + 1) * d.dIn))).codes;
        const want = refTopK(codes, 4);
        const wantActive = want.values.filter((v) => v > 0);
        assert.equal(tok.features.length, wantActive.length, `${d.id} token ${t}`);
        tok.features.forEach((f, j) => {
          assert.equal(f.index, want.indices[j], `${d.id} token ${t} rank ${j}`);
          assert.ok(
            Math.abs(f.activation - wantActive[j]) <= 1e-3 * Math.max(1, wantActive[j]),
            `${d.id} token ${t} rank ${j}: ${f.activation} vs ${wantActive[j]}`,
          );
        });
      });
    }
  });

  it('build: densities equal a plain loop over the reference, and the logit lens uses (1 + w) and W_Eᵀ', async () => {
    const corpus = join(files.dir, 'corpus.jsonl');
    writeFileSync(corpus, TEXTS.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    const result = await buildDashboards(database, registry, { modelId: 'gemma-tiny', corpus, context: 32, batch: 3 });
    assert.equal(result.contexts, TEXTS.length);
    const loaded = (await registry.model(await requireModel(database, 'gemma-tiny'))).value;
    const docs = TEXTS.map((t) => loaded.tokenizer.encode(t, { bos: false }));
    for (const d of DICTS) {
      const fx = saes.get(d.id)!;
      const count = new Array(D_SAE).fill(0);
      let tokens = 0;
      for (const doc of docs) {
        const acts = gemmaReference(model.reference, [loaded.tokenizer.bosId!, ...doc]).hooks.get(d.hook)!;
        for (let t = 1; t <= doc.length; t++) {
          refForwardOne(fx.config, fx.params, Array.from(acts.subarray(t * d.dIn, (t + 1) * d.dIn))).codes.forEach(
            (v, f) => v > 0 && count[f]++,
          );
          tokens++;
        }
      }
      assert.ok(
        count.some((c) => c > 0 && c < tokens),
        `${d.id}: some feature fires on some tokens only`,
      );
      const rows = await getFeatures(
        database,
        Array.from({ length: D_SAE }, (_, index) => ({ dictionaryId: d.id, index })),
      );
      for (let f = 0; f < D_SAE; f++) {
        const got = rows.get(`${d.id}:${f}`)!.density!;
        assert.ok(
          Math.abs(got - count[f] / tokens) <= 1.5 / tokens,
          `${d.id} feature ${f}: density ${got} vs ${count[f] / tokens}`,
        );
      }
    }
    // Logit lens, only for the d_model-wide dictionary: top promoted token of each feature.
    const E = model.reference.tensors.get('embed_tokens.weight')!;
    const g = model.reference.tensors.get('norm.weight')!;
    const { W_dec } = saes.get('resid')!.params;
    const lens = await getLogitTokens(
      database,
      Array.from({ length: D_SAE }, (_, index) => ({ dictionaryId: 'resid', index })),
    );
    assert.equal(lens.size, D_SAE);
    for (let f = 0; f < D_SAE; f++) {
      let best = -1;
      let bestW = -Infinity;
      for (let t = 0; t < 384; t++) {
        let s = 0;
        for (let i = 0; i < 24; i++) s += W_dec[f * 24 + i] * (1 + g[i]) * E[t * 24 + i];
        if (s > bestW) [best, bestW] = [t, s];
      }
      assert.equal(lens.get(`resid:${f}`)!.positive[0].tokenId, best, `feature ${f}`);
    }
    assert.equal(
      (await getLogitTokens(database, [{ dictionaryId: 'z', index: 0 }])).size,
      0,
      'no logit lens for a per-head dictionary',
    );
  });

  it('a per-head dictionary of the wrong width is refused at import, naming the hook and both widths', async () => {
    const fx = writeSaeFixture(join(files.dir, 'narrow'), {
      format: 'gemmascope',
      architecture: 'standard',
      dIn: 24,
      dSae: 8,
      hookName: null,
    });
    await assert.rejects(
      importDictionary(database, {
        path: fx.path,
        modelId: 'gemma-tiny',
        id: 'narrow',
        hook: 'blocks.0.attn.hook_z',
        dataDir,
      }),
      (e: unknown) =>
        e instanceof AtlasError &&
        e.code === 'DIMENSION_MISMATCH' &&
        e.message.includes('blocks.0.attn.hook_z') &&
        e.message.includes('width 24') &&
        e.message.includes('40 wide'),
    );
    assert.equal(
      (await listDictionaries(database)).some((d) => d.id === 'narrow'),
      false,
    );
  });
});
