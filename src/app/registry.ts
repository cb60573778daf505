/**
 * Models and SAE encoders loaded on demand from catalog rows and kept for the life of the process,
 * so the first request for a model pays its load (or ONNX conversion) and later ones do not. Each is
 * kept under its row's artifact version (src/app/artifacts.ts), so a row replaced through another
 * replica loads the new files and drops the old ones.
 */
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import type { ModelRow, DictionaryRow } from '../db/catalog.js';
import { ArtifactCache, artifactKey } from './artifacts.js';
import { loadModel } from '../engine/model/load.js';
import type { LoadedModel } from '../engine/model/types.js';
import { openSae } from '../engine/sae/open.js';
import { SaeEncoder } from '../engine/sae/encoder.js';

export class EngineRegistry {
  private models = new Map<string, Promise<LoadedModel>>();
  private encoders = new Map<string, Promise<SaeEncoder>>();
  private readonly artifacts: ArtifactCache;

  /** `database`: where PostgreSQL-stored files are fetched from (PGlite's live under config.dataDir). */
  constructor(
    private readonly config: Pick<Config, 'dataDir' | 'cacheDir' | 'device' | 'threads'>,
    database?: Database,
  ) {
    this.artifacts = new ArtifactCache(database, config);
  }

  model(row: ModelRow): Promise<LoadedModel> {
    const key = artifactKey(row);
    let loading = this.models.get(key);
    if (!loading) {
      dropOtherVersions(this.models, row.id, key);
      loading = this.artifacts.model(row).then(({ path, tokenizerPath }) =>
        loadModel(path, {
          tokenizerPath,
          dataDir: this.config.dataDir,
          device: this.config.device,
          threads: this.config.threads,
        }),
      );
      // A failed load is not cached, so fixing the files and retrying works without a restart.
      loading.catch(() => this.models.delete(key));
      this.models.set(key, loading);
    }
    return loading;
  }

  encoder(dict: DictionaryRow): Promise<SaeEncoder> {
    const key = artifactKey(dict);
    let loading = this.encoders.get(key);
    if (!loading) {
      dropOtherVersions(this.encoders, dict.id, key);
      loading = this.openEncoder(dict);
      loading.catch(() => this.encoders.delete(key));
      this.encoders.set(key, loading);
    }
    return loading;
  }

  /** The local folder of a dictionary's encoder weights, fetched on first use. */
  weights(dict: DictionaryRow): Promise<string> {
    return this.artifacts.dictionary(dict);
  }

  private async openEncoder(dict: DictionaryRow): Promise<SaeEncoder> {
    const source = openSae(await this.weights(dict));
    try {
      const params = source.loadParams();
      return await SaeEncoder.create(source.config, params, {
        session: { device: this.config.device, threads: this.config.threads },
      });
    } finally {
      source.close();
    }
  }

  async close(): Promise<void> {
    const models = [...this.models.values()];
    const encoders = [...this.encoders.values()];
    this.models.clear();
    this.encoders.clear();
    await Promise.allSettled([
      ...models.map(async (m) => (await m).close()),
      ...encoders.map(async (e) => (await e).close()),
    ]);
  }
}

/** Another version of the same row was loaded before: it is stale now, so it is dropped and closed. */
function dropOtherVersions<T extends { close(): unknown }>(
  map: Map<string, Promise<T>>,
  id: string,
  key: string,
): void {
  for (const [k, loading] of map) {
    if (k !== key && k.startsWith(`${id}\0`)) {
      map.delete(k);
      loading.then((v) => v.close()).catch(() => undefined);
    }
  }
}
