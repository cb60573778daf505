/**
 * Catalog rows for synthetic dictionaries (tests and benches): a model of width d with one hook
 * (blocks.0.hook_resid_post) and no files, and a standard dictionary on it whose weights are nowhere
 * (only its decoder rows, written by the caller, are stored).
 */
import type { Database } from '../../src/db/client.js';
import { upsertModel, type NewDictionary } from '../../src/db/catalog.js';

export async function syntheticModel(database: Database, id: string, name: string, d: number): Promise<void> {
  await upsertModel(database, {
    id,
    name,
    architecture: 'gpt2',
    dModel: d,
    nLayers: 1,
    vocabSize: 1,
    contextLength: 1,
    prependBos: false,
    hookPoints: ['blocks.0.hook_resid_post'],
    sourcePath: '/nonexistent',
    sourceFormat: 'huggingface',
    tokenizerPath: null,
  });
}

export function syntheticDictionary(
  id: string,
  modelId: string,
  dIn: number,
  dSae: number,
): Omit<NewDictionary, 'state'> {
  return {
    id,
    modelId,
    name: id,
    hookPoint: 'blocks.0.hook_resid_post',
    hookPointOut: null,
    prependBos: false,
    dIn,
    dSae,
    architecture: 'standard',
    k: null,
    params: {},
    sourceFormat: 'saelens',
    sourcePath: '/nonexistent',
    weightsPath: '/nonexistent',
  };
}
