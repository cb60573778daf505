/** `atlas export`: the stored encoder weights of a dictionary, written back out in SAELens format. */
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { ArtifactCache } from './artifacts.js';
import { requireDictionary } from '../db/catalog.js';
import { openSae } from '../engine/sae/open.js';
import { writeSaelens } from '../engine/sae/export.js';

export async function exportDictionary(
  database: Database,
  id: string,
  dir: string,
  config: Pick<Config, 'dataDir' | 'cacheDir'>,
): Promise<void> {
  const dict = await requireDictionary(database, id);
  const source = openSae(await new ArtifactCache(database, config).dictionary(dict));
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
