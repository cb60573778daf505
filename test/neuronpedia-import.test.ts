/**
 * `atlas neuronpedia import`: a Neuronpedia export folder written in the layout its
 * utils/neuronpedia-utils/export-data.py produces (features/, activations/, explanations/ of gzipped
 * batch-N.jsonl, one database row per line, `index` a string) served through the API: densities,
 * max activations, histograms, logit tokens, top examples (strongest 20) and explanations equal what
 * the files say; a bad line is refused with BAD_FILE and leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startTestAtlas, useTestAtlas } from './helpers/atlas-server.js';
import { writeTinyGpt2, type HfFixture } from './helpers/hf-fixtures.js';
import { writeSaeFixture, tempDir } from './helpers/sae-fixtures.js';
import { rng } from './helpers/rng.js';
import { registerModel } from '../src/app/register-model.js';
import { importDictionary } from '../src/app/import-dictionary.js';
import { importNeuronpedia } from '../src/app/import-neuronpedia.js';
import { loadTokenizer } from '../src/engine/tokenizers/load.js';

const MODEL = 'gpt2-small';
const SOURCE = '1-res-jb';

/** Writes rows as `dir/sub/batch-N.jsonl.gz`, `perBatch` rows a file, as export-data.py batches them. */
function writeBatches(dir: string, sub: string, rows: object[], perBatch: number): void {
  mkdirSync(join(dir, sub), { recursive: true });
  for (let b = 0; b * perBatch < rows.length; b++) {
    const text =
      rows
        .slice(b * perBatch, (b + 1) * perBatch)
        .map((r) => JSON.stringify(r))
        .join('\n') + '\n';
    writeFileSync(join(dir, sub, `batch-${b}.jsonl.gz`), gzipSync(text));
  }
}

const files = tempDir('atlas-np-');
let model: HfFixture;
let tokens: { text: string; id: number }[];
const rand = rng(3);
const featureRows = [0, 3, 7].map((i) => ({
  modelId: MODEL,
  layer: SOURCE,
  index: String(i),
  maxActApprox: 4 + i,
  frac_nonzero: 0.001 * (i + 1),
  creatorId: 'x',
  freq_hist_data_bar_values: [0.5, 1.5, 2.5, 3.5],
  freq_hist_data_bar_heights: [10, 5, 2, 1],
  pos_str: [] as string[],
  pos_values: [3.2, 2.1],
  neg_str: [] as string[],
  neg_values: [-1.5, -2.5],
  sourceSetName: 'res-jb',
  hookName: 'blocks.1.hook_resid_post',
}));
const activationRows: {
  index: string;
  tokens: string[];
  values: number[];
  maxValue: number;
  maxValueTokenIndex: number;
  binMin?: number;
  binMax?: number;
}[] = [];
/** Quantile-bin samples of feature 3 (max 7, so the bands are (4, 8], (2, 4], (1, 2], (0.5, 1], [0, 0.5]). */
const binRows = [3.5, 3.0, 2.5, 2.2, 2.1, 2.05, 1.5, 0.75, 0.2].map((maxValue, i) => ({
  index: '3',
  tokens: ['a', 'b'],
  values: [0, maxValue],
  maxValue,
  maxValueTokenIndex: 1,
  binMin: i,
  binMax: i + 1,
}));
const explanationRows = [
  {
    id: 'e1',
    modelId: MODEL,
    layer: SOURCE,
    index: '3',
    authorId: 'x',
    description: 'the word cat',
    typeName: 'oai_token-act-pair',
    explanationModelName: 'gpt-4o-mini',
  },
  {
    id: 'e2',
    modelId: MODEL,
    layer: SOURCE,
    index: '7',
    authorId: 'x',
    description: 'places to sit',
    typeName: 'np_max-act-logits',
    explanationModelName: 'claude-3-5-haiku',
  },
];

const test = useTestAtlas(
  'neuronpedia import',
  async () => {
    mkdirSync(join(files.dir, 'gpt2'));
    model = writeTinyGpt2(join(files.dir, 'gpt2'));
    const tokenizer = loadTokenizer(model.dir);
    tokens = tokenizer
      .encode('the cat sat on the mat and the dog ran to the park', { bos: false })
      .map((id) => ({ id, text: tokenizer.tokenText(id) }));
    for (const f of featureRows) {
      f.pos_str = [tokens[1].text, tokens[2].text];
      f.neg_str = [tokens[4].text, 'not-a-token-of-this-vocabulary'];
    }
    // Feature 3 has 25 examples (20 are kept), feature 7 two.
    for (const [index, n] of [
      ['3', 25],
      ['7', 2],
    ] as const) {
      for (let e = 0; e < n; e++) {
        const values = tokens.slice(0, 6).map(() => Math.round(rand() * 1000) / 100);
        const maxValue = Math.max(...values);
        // Top examples carry binMin -1, as Neuronpedia's do.
        activationRows.push({
          index,
          tokens: tokens.slice(0, 6).map((t) => t.text),
          values,
          maxValue,
          maxValueTokenIndex: values.indexOf(maxValue),
          binMin: -1,
        });
      }
    }
    return startTestAtlas('pglite', async (db, dataDir) => {
      await registerModel(db, { id: MODEL, path: model.dir, name: 'tiny gpt2', prependBos: true });
      const fx = writeSaeFixture(join(files.dir, 'sae'), {
        format: 'saelens',
        architecture: 'topk',
        dIn: 32,
        dSae: 128,
        k: 6,
        hookName: 'blocks.1.hook_resid_post',
      });
      await importDictionary(db, { path: fx.path, modelId: MODEL, id: SOURCE, dataDir });
    });
  },
  () => files.cleanup(),
);

const QUERY = (i: number) => `{ feature(dictionary: "${SOURCE}", index: ${i}) {
  density maxActivation histogram { edges counts }
  topActivations { tokens tokenIds values maxValue maxPosition }
  logits { positive { token tokenId weight } negative { token tokenId weight } }
  quantileExamples { band minActivation maxActivation examples { maxValue } }
  explanations { text source author } } }`;

test('a bad line is refused with BAD_FILE, naming it, and nothing is written', async (a) => {
  const dir = join(files.dir, 'bad');
  writeBatches(dir, 'features', [...featureRows, { ...featureRows[0], index: '999' }], 2);
  writeBatches(dir, 'explanations', explanationRows, 1024);
  await assert.rejects(
    importNeuronpedia(a.database, a.services.registry, dir, SOURCE),
    (e: any) => e.code === 'BAD_FILE' && /batch-1\.jsonl\.gz line 2/.test(e.message) && /"999"/.test(e.message),
  );
  const r = await a.gql(QUERY(3));
  assert.equal(r.data.feature.density, null);
  assert.deepEqual(r.data.feature.explanations, []);
});

test('features, activations and explanations are served as the export says', async (a) => {
  const dir = join(files.dir, 'exports', MODEL, SOURCE);
  writeBatches(dir, 'features', featureRows, 2);
  writeBatches(dir, 'activations', [...activationRows, ...binRows], 10);
  writeBatches(dir, 'explanations', explanationRows, 1024);
  const result = await importNeuronpedia(a.database, a.services.registry, dir, SOURCE);
  assert.deepEqual(result, { features: 3, examples: 22 + 8, logits: 12, explanations: 2 });

  const r = await a.gql(QUERY(3));
  assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  const f = r.data.feature;
  assert.ok(Math.abs(f.density - 0.004) < 1e-9);
  assert.equal(f.maxActivation, 7);
  assert.deepEqual(f.histogram, { edges: [0, 1, 2, 3, 4], counts: [10, 5, 2, 1] });
  assert.deepEqual(f.logits.positive, [
    { token: tokens[1].text, tokenId: tokens[1].id, weight: 3.2 },
    { token: tokens[2].text, tokenId: tokens[2].id, weight: 2.1 },
  ]);
  assert.deepEqual(f.logits.negative, [
    { token: tokens[4].text, tokenId: tokens[4].id, weight: -1.5 },
    { token: 'not-a-token-of-this-vocabulary', tokenId: -1, weight: -2.5 },
  ]);
  const want = activationRows
    .filter((x) => x.index === '3')
    .sort((p, q) => q.maxValue - p.maxValue)
    .slice(0, 20);
  assert.equal(f.topActivations.length, 20);
  f.topActivations.forEach((ex: any, i: number) => {
    assert.deepEqual(ex.tokens, want[i].tokens);
    assert.deepEqual(
      ex.tokenIds,
      tokens.slice(0, 6).map((t) => t.id),
    );
    assert.deepEqual(ex.values, want[i].values);
    assert.equal(ex.maxValue, want[i].maxValue);
    assert.equal(ex.maxPosition, want[i].maxValueTokenIndex);
  });
  assert.deepEqual(f.explanations, [{ text: 'the word cat', source: 'oai_token-act-pair', author: 'gpt-4o-mini' }]);
  // Bin samples land in the octave below max 7 they fall in, at most 5 a band, strongest first.
  assert.deepEqual(
    f.quantileExamples.map((b: any) => [
      b.band,
      b.minActivation,
      b.maxActivation,
      b.examples.map((e: any) => e.maxValue),
    ]),
    [
      [0, 0, 0.5, [0.2]],
      [1, 0.5, 1, [0.75]],
      [2, 1, 2, [1.5]],
      [3, 2, 4, [3.5, 3.0, 2.5, 2.2, 2.1]],
      [4, 4, 8, []],
    ],
  );
  const seven = (await a.gql(QUERY(7))).data.feature;
  assert.equal(seven.topActivations.length, 2);
  assert.deepEqual(seven.explanations, [
    { text: 'places to sit', source: 'np_max-act-logits', author: 'claude-3-5-haiku' },
  ]);
});
