/**
 * `atlas import`: a dictionary file → checked against its model → encoder weights copied where the
 * server loads them (<data dir>/dictionaries/<id>/) → decoder rows streamed into the features table
 * → HNSW index → state 'ready'. Everything is validated before the database is touched, and the
 * write itself is all-or-nothing (src/db/dictionary-write.ts).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Database } from './client.js';
import { requireModel, type DictionaryRow, type ModelRow } from './catalog.js';
import { prepareDictionaryId, writeDictionary } from './dictionary-write.js';
import { openSae } from '../engine/sae/open.js';
import type { SaeSource } from '../engine/sae/types.js';
import { hasModelWidth } from '../engine/model/types.js';
import { AtlasError } from '../errors.js';

export interface ImportRequest {
  path: string;
  modelId: string;
  id?: string;
  hook?: string;
  replace?: boolean;
  dataDir: string;
  /** Called with (rows written, total) as decoder rows stream in, and once before indexing. */
  progress?: { start(total: number): void; rows(n: number): void; indexing(): void };
}

const DECODER_BATCH = 1024;

/** Default id: the dictionary folder's (or npz file's) name, made safe. */
function defaultId(path: string): string {
  const name = statSync(path).isFile() ? basename(dirname(path)) : basename(path);
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '') || 'dictionary';
}

/** The files a reader needs, so the server keeps a copy independent of where the user's files live. */
function weightFiles(path: string): string[] {
  if (statSync(path).isFile()) {
    return path.endsWith('.npz') ? [path] : weightFiles(dirname(path));
  }
  return readdirSync(path)
    .filter((f) => /\.(json|safetensors|npz)$/.test(f))
    .map((f) => join(path, f));
}

function validate(source: SaeSource, req: ImportRequest, model: ModelRow): string {
  const { hookPoints, dModel, id: modelId } = model;
  const cfg = source.config;
  const hook = req.hook ?? cfg.hookName;
  if (!hook) throw new AtlasError('BAD_USER_INPUT', `${req.path} does not name its hook point; pass --hook (one of: ${hookPoints.join(', ')}).`);
  if (!hookPoints.includes(hook)) {
    throw new AtlasError('BAD_USER_INPUT', `Model "${modelId}" has no hook point "${hook}"; it has: ${hookPoints.join(', ')}. Pass --hook to choose one.`);
  }
  // Hooks of another width (per-head, MLP hidden) are checked against the model's run on first use.
  if (hasModelWidth(hook) && cfg.dIn !== dModel) {
    throw new AtlasError('DIMENSION_MISMATCH', `The dictionary reads vectors of width ${cfg.dIn} (d_in) but model "${modelId}" is ${dModel} wide at ${hook}; it was trained on another model.`, {
      dictionaryDIn: cfg.dIn,
      modelWidth: dModel,
    });
  }
  // A dictionary trained with BOS first sees different activations without it (and vice versa).
  const metadata = (cfg.extra.metadata ?? {}) as Record<string, unknown>;
  const trainedWithBos = cfg.extra.prepend_bos ?? metadata.prepend_bos;
  if (typeof trainedWithBos === 'boolean' && trainedWithBos !== model.prependBos) {
    throw new AtlasError('BAD_USER_INPUT', `The dictionary was trained with prepend_bos=${trainedWithBos} but model "${modelId}" is registered ${model.prependBos ? 'with' : 'without'} BOS; re-register it with \`atlas model add … --id ${modelId} ${trainedWithBos ? '--bos' : '--no-bos'}\`.`);
  }
  // Reads and checks every parameter (shapes, NaN/Inf) before anything is written.
  source.loadParams();
  return hook;
}

export async function importDictionary(database: Database, req: ImportRequest): Promise<DictionaryRow> {
  const model = await requireModel(database, req.modelId);
  const source = openSae(req.path);
  try {
    const hook = validate(source, req, model);
    const cfg = source.config;
    const id = req.id ?? defaultId(req.path);
    await prepareDictionaryId(database, id, req.replace ?? false);

    const root = join(req.dataDir, 'dictionaries');
    const finalDir = join(root, id);
    const stagingDir = join(root, `.${id}.importing`);
    rmSync(stagingDir, { recursive: true, force: true });
    mkdirSync(stagingDir, { recursive: true });
    for (const f of weightFiles(req.path)) copyFileSync(f, join(stagingDir, basename(f)));

    req.progress?.start(cfg.dSae);
    const rows = (function* () {
      for (const batch of source.decoderRows(DECODER_BATCH)) yield batch.rows;
    })();
    const row = await writeDictionary(database, {
      id,
      modelId: model.id,
      name: id,
      hookPoint: hook,
      dIn: cfg.dIn,
      dSae: cfg.dSae,
      architecture: cfg.architecture,
      k: cfg.k,
      params: {
        normalization: cfg.normalization.kind,
        normalizationScalingFactor: cfg.normalization.scalingFactor,
        applyBDecToInput: cfg.applyBDecToInput,
        dtype: cfg.dtype,
        sourceConfig: cfg.extra,
      },
      sourceFormat: cfg.sourceFormat,
      sourcePath: req.path,
      weightsPath: finalDir,
    }, rows, {
      replace: false,
      onRows: (n) => req.progress?.rows(n),
      onIndexing: () => {
        // The weights move into place before the row turns ready, so a ready row always has them.
        rmSync(finalDir, { recursive: true, force: true });
        renameSync(stagingDir, finalDir);
        req.progress?.indexing();
      },
    }).catch((e) => {
      rmSync(stagingDir, { recursive: true, force: true });
      if (existsSync(finalDir)) rmSync(finalDir, { recursive: true, force: true });
      throw e;
    });
    return row;
  } finally {
    source.close();
  }
}
