/** `atlas export`: the stored encoder weights of a dictionary, written back out in SAELens format. */
import type { Database } from '../db/client.js';
import { requireDictionary } from '../db/catalog.js';
import { openSae } from '../engine/sae/open.js';
import { writeSaelens } from '../engine/sae/export.js';
import { AtlasError } from '../errors.js';

export async function exportDictionary(database: Database, id: string, dir: string): Promise<void> {
  const dict = await requireDictionary(database, id);
  if (!dict.weightsPath)
    throw new AtlasError(
      'UNSUPPORTED',
      `Dictionary "${id}" was stored without its encoder weights, so it cannot be exported.`,
    );
  const source = openSae(dict.weightsPath);
  try {
    const { transcoder } = source.config;
    writeSaelens(
      dir,
      {
        ...source.config,
        hookName: dict.hookPoint,
        modelName: dict.modelId,
        prependBos: dict.prependBos,
        ...(transcoder && { transcoder: { ...transcoder, hookNameOut: dict.hookPointOut } }),
      },
      source.loadParams(),
    );
  } finally {
    source.close();
  }
}
