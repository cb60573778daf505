/**
 * Models and SAE encoders loaded on demand from catalog rows and kept for the life of the process,
 * so the first request for a model pays its load (or ONNX conversion) and later ones do not.
 */
import type { Config } from '../config.js';
import type { ModelRow, DictionaryRow } from '../db/catalog.js';
import { AtlasError } from '../errors.js';
import { loadModel } from '../engine/model/load.js';
import type { LoadedModel } from '../engine/model/types.js';
import { openSae } from '../engine/sae/open.js';
import { SaeEncoder } from '../engine/sae/encoder.js';

export class EngineRegistry {
  private models = new Map<string, Promise<LoadedModel>>();
  private encoders = new Map<string, Promise<SaeEncoder>>();

  constructor(private readonly config: Pick<Config, 'dataDir' | 'device' | 'threads'>) {}

  model(row: ModelRow): Promise<LoadedModel> {
    let loading = this.models.get(row.id);
    if (!loading) {
      loading = loadModel(row.sourcePath, {
        tokenizerPath: row.tokenizerPath ?? undefined,
        dataDir: this.config.dataDir,
        device: this.config.device,
        threads: this.config.threads,
      });
      // A failed load is not cached, so fixing the files and retrying works without a restart.
      loading.catch(() => this.models.delete(row.id));
      this.models.set(row.id, loading);
    }
    return loading;
  }

  encoder(dict: DictionaryRow): Promise<SaeEncoder> {
    let loading = this.encoders.get(dict.id);
    if (!loading) {
      loading = this.openEncoder(dict);
      loading.catch(() => this.encoders.delete(dict.id));
      this.encoders.set(dict.id, loading);
    }
    return loading;
  }

  private async openEncoder(dict: DictionaryRow): Promise<SaeEncoder> {
    if (!dict.weightsPath) {
      throw new AtlasError(
        'UNSUPPORTED',
        `Dictionary "${dict.id}" has no encoder weights on this server (it was stored without them); re-import it ` +
          `with \`atlas import\`.`,
      );
    }
    const source = openSae(dict.weightsPath);
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
