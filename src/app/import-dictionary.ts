/**
 * `atlas import`: a dictionary file → checked against its model → encoder weights stored by content
 * (src/app/artifacts.ts: in PostgreSQL, or under the PGlite data dir) → decoder rows streamed into the
 * features table → HNSW index → state 'ready'. Everything is validated before the database is touched,
 * and the write itself is all-or-nothing, a `--replace` included (src/db/dictionary-write.ts).
 */
import type { Database } from '../db/client.js';
import { requireModel, type DictionaryRow, type ModelRow } from '../db/catalog.js';
import { checkDictionaryId, writeDictionary } from '../db/dictionary-write.js';
import { mlpOutputHook } from '../engine/model/hooks.js';
import { dictionaryName, openSae } from '../engine/sae/open.js';
import type { SaeSource } from '../engine/sae/types.js';
import { AtlasError } from '../errors.js';
import { faultPoint } from '../faults.js';
import { storeDictionaryArtifacts } from './artifacts.js';

export interface ImportRequest {
  path: string;
  modelId: string;
  id?: string;
  hook?: string;
  /** Transcoders: the hook the decoder reconstructs (default: the file's, else the MLP output of an MLP-input hook). */
  hookOut?: string;
  replace?: boolean;
  /** PGlite: the data dir whose artifacts/ folder stores the weights (PostgreSQL stores them in the database). */
  dataDir: string;
  /** Called with (rows written, total) as decoder rows stream in, and once before indexing. */
  progress?: { start(total: number): void; rows(n: number): void; indexing(): void };
}

const DECODER_BATCH = 1024;

/** Default id: the dictionary's name (engine/sae/open.ts), made safe. */
function defaultId(path: string): string {
  return (
    dictionaryName(path)
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .replace(/^[^A-Za-z0-9]+/, '') || 'dictionary'
  );
}

function validate(source: SaeSource, req: ImportRequest, model: ModelRow): { hook: string; hookOut: string | null } {
  const { hookPoints, dModel, id: modelId } = model;
  const cfg = source.config;
  const hook = req.hook ?? cfg.hookName;
  if (!hook)
    throw new AtlasError(
      'BAD_USER_INPUT',
      `${req.path} does not name its hook point; pass --hook (one of: ${hookPoints.join(', ')}).`,
    );
  if (!hookPoints.includes(hook)) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      `Model "${modelId}" has no hook point "${hook}"; it has: ${hookPoints.join(', ')}. Pass --hook to choose one.`,
    );
  }
  const widthOf = (h: string) => model.hookWidths[h] ?? dModel;
  // Hooks are as wide as their vectors (attn.hook_z: heads·d_head, mlp.hook_post: d_mlp); rows registered
  // before widths were kept hold only d_model-wide hooks.
  const width = widthOf(hook);
  if (cfg.dIn !== width) {
    throw new AtlasError(
      'DIMENSION_MISMATCH',
      `The dictionary reads vectors of width ${cfg.dIn} (d_in) but model "${modelId}" is ${width} wide at ${hook}; ` +
        `it was trained on another model or another hook.`,
      {
        dictionaryDIn: cfg.dIn,
        modelWidth: width,
      },
    );
  }
  let hookOut: string | null = null;
  if (cfg.transcoder) {
    hookOut = req.hookOut ?? cfg.transcoder.hookNameOut ?? mlpOutputHook(hook);
    if (!hookOut)
      throw new AtlasError(
        'BAD_USER_INPUT',
        `${req.path} is a transcoder that does not name the hook it reconstructs; pass --hook-out (one of: ` +
          `${hookPoints.join(', ')}).`,
      );
    if (!hookPoints.includes(hookOut)) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        `Model "${modelId}" has no hook point "${hookOut}" for the transcoder's output; it has: ` +
          `${hookPoints.join(', ')}. Pass --hook-out to choose one.`,
      );
    }
    if (widthOf(hookOut) !== cfg.dIn) {
      throw new AtlasError(
        'DIMENSION_MISMATCH',
        `The transcoder reconstructs vectors of width ${cfg.dIn} but model "${modelId}" is ${widthOf(hookOut)} wide ` +
          `at ${hookOut}.`,
        {
          dictionaryDIn: cfg.dIn,
          modelWidth: widthOf(hookOut),
        },
      );
    }
  } else if (req.hookOut) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      `${req.path} is an autoencoder, which reconstructs its own hook; --hook-out is for transcoders.`,
    );
  }
  // Reads and checks every parameter (shapes, NaN/Inf) before anything is written.
  source.loadParams();
  return { hook, hookOut };
}

export async function importDictionary(database: Database, req: ImportRequest): Promise<DictionaryRow> {
  const model = await requireModel(database, req.modelId);
  const source = openSae(req.path);
  try {
    const { hook, hookOut } = validate(source, req, model);
    const density = source.density();
    const cfg = source.config;
    const id = req.id ?? defaultId(req.path);
    await checkDictionaryId(database, id, req.replace ?? false);
    const artifacts = await storeDictionaryArtifacts(database, req.dataDir, req.path);
    faultPoint('import:staged');

    req.progress?.start(cfg.dSae);
    const rows = (function* () {
      for (const batch of source.decoderRows(DECODER_BATCH)) yield batch.rows;
    })();
    return await writeDictionary(
      database,
      {
        id,
        modelId: model.id,
        name: id,
        hookPoint: hook,
        hookPointOut: hookOut,
        // A dictionary trained with BOS first sees other activations without it (and vice versa), so
        // each one keeps its own policy; the model's is only the default for files that do not say.
        prependBos: cfg.prependBos ?? model.prependBos,
        dIn: cfg.dIn,
        dSae: cfg.dSae,
        architecture: cfg.architecture,
        k: cfg.k,
        params: {
          normalization: cfg.normalization.kind,
          normalizationScalingFactor: cfg.normalization.scalingFactor,
          applyBDecToInput: cfg.applyBDecToInput,
          ...(cfg.transcoder && { skipConnection: cfg.transcoder.skip }),
          dtype: cfg.dtype,
          sourceConfig: cfg.extra,
        },
        sourceFormat: cfg.sourceFormat,
        sourcePath: req.path,
        artifacts,
      },
      rows,
      {
        replace: req.replace ?? false,
        density,
        onRows: (n) => {
          req.progress?.rows(n);
          faultPoint('import:rows');
        },
        onIndexing: () => {
          req.progress?.indexing();
          faultPoint('import:indexing');
        },
      },
    );
  } finally {
    source.close();
  }
}
