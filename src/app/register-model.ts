/**
 * Adding a model to the catalog: reads its facts from the checkpoint, stores its files by content on
 * PostgreSQL (src/app/artifacts.ts) and upserts the row; given a data dir, it also converts the checkpoint
 * to its cached ONNX graph first, so that this machine's first request for the model does not pay for it,
 * and on PostgreSQL stores that graph too, so that no other replica's does either.
 */
import type { Database } from '../db/client.js';
import { upsertModel, type ModelRow } from '../db/catalog.js';
import { inspectModel } from '../engine/model/load.js';
import { loadTokenizer } from '../engine/tokenizers/load.js';
import { convertAndStoreGraph, storeModelArtifacts, type ConvertTo } from './artifacts.js';

export interface RegisterModel {
  id: string;
  path: string;
  tokenizerPath?: string;
  name: string;
  /**
   * Overrides the checkpoint's default (llama: BOS first; gpt2: none, though TransformerLens-trained SAEs expect one).
   */
  prependBos?: boolean;
  /** Convert the graph now into this data dir's cache (ATLAS_DATA_DIR), reporting to onProgress. */
  convert?: ConvertTo;
}

export async function registerModel(database: Database, req: RegisterModel): Promise<ModelRow> {
  const info = inspectModel(req.path, req.tokenizerPath);
  // Fail now, not at the first request, when the given tokenizer cannot be read.
  if (req.tokenizerPath) loadTokenizer(req.tokenizerPath);
  let artifacts = await storeModelArtifacts(database, req.path, req.tokenizerPath);
  if (req.convert) {
    // Replicas fetch the converted graph instead of each converting the checkpoint on first use.
    const converted = await convertAndStoreGraph(database, req.path, info.architecture, req.convert);
    if (artifacts && converted) artifacts = { ...artifacts, converted };
  }
  return upsertModel(database, {
    id: req.id,
    name: req.name,
    architecture: info.architecture,
    dModel: info.dModel,
    nLayers: info.nLayers,
    vocabSize: info.vocabSize,
    contextLength: info.contextLength,
    prependBos: req.prependBos ?? info.prependBos,
    hookPoints: info.hookPoints,
    hookWidths: info.hookWidths,
    sourcePath: req.path,
    sourceFormat: info.format,
    tokenizerPath: req.tokenizerPath ?? null,
    artifacts,
  });
}
