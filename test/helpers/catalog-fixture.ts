/**
 * A deterministic small catalog written through the db layer: one model, two dictionaries of the same
 * width (d_in 32, 300 features) and one of another width, with statistics on some features only.
 */
import type { Database } from '../../src/db/client.js';
import { upsertModel } from '../../src/db/catalog.js';
import { writeDictionary } from '../../src/db/dictionary-write.js';
import { clusteredRows, rng } from './rng.js';

export const FIXTURE = {
  model: 'tiny-model',
  dict: 'tiny-dict',
  twin: 'tiny-dict-b',
  wide: 'wide-dict',
  dIn: 32,
  dSae: 300,
  wideDIn: 48,
};

export interface SeededCatalog {
  decoders: Map<string, Float32Array>;
  density: (number | null)[];
  maxActivation: (number | null)[];
}

export async function seedCatalog(database: Database): Promise<SeededCatalog> {
  await upsertModel(database, {
    id: FIXTURE.model,
    name: 'Tiny test model',
    architecture: 'llama',
    dModel: FIXTURE.dIn,
    nLayers: 2,
    vocabSize: 64,
    contextLength: 128,
    prependBos: true,
    hookPoints: ['blocks.0.hook_resid_post', 'blocks.1.hook_resid_post'],
    sourcePath: '/nonexistent/tiny.bin',
    sourceFormat: 'llama2c',
    tokenizerPath: null,
  });
  const decoders = new Map<string, Float32Array>();
  const specs = [
    { id: FIXTURE.dict, dIn: FIXTURE.dIn, seed: 1 },
    { id: FIXTURE.twin, dIn: FIXTURE.dIn, seed: 2 },
    { id: FIXTURE.wide, dIn: FIXTURE.wideDIn, seed: 3 },
  ];
  for (const s of specs) {
    const rows = clusteredRows(s.seed, FIXTURE.dSae, s.dIn);
    decoders.set(s.id, rows);
    const blocks = [rows.subarray(0, 128 * s.dIn), rows.subarray(128 * s.dIn)];
    await writeDictionary(
      database,
      {
        id: s.id,
        modelId: FIXTURE.model,
        name: s.id,
        hookPoint: 'blocks.1.hook_resid_post',
        prependBos: true,
        dIn: s.dIn,
        dSae: FIXTURE.dSae,
        architecture: 'topk',
        k: 8,
        params: { normalization: 'none' },
        sourceFormat: 'saelens',
      },
      blocks,
    );
  }
  // Statistics for two thirds of the features, with ties, so ordering and NULLS LAST are exercised.
  const rand = rng(7);
  const density: (number | null)[] = [];
  const maxActivation: (number | null)[] = [];
  for (let i = 0; i < FIXTURE.dSae; i++) {
    const has = i % 3 !== 2;
    density.push(has ? Math.round(rand() * 50) / 1000 : null);
    maxActivation.push(has ? Math.fround(rand() * 10) : null);
  }
  await database.query(
    `UPDATE features f SET density = s.d, max_activation = s.m, label = 'feature ' || f.idx
     FROM unnest($1::int[], $2::real[], $3::real[]) AS s(i, d, m) WHERE f.dictionary_id = $4 AND f.idx = s.i`,
    [density.map((_, i) => i), density, maxActivation, FIXTURE.dict],
  );
  return { decoders, density, maxActivation };
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}
