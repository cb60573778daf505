/**
 * Models and SAE encoders loaded on demand from catalog rows, kept in the server's resident set
 * (src/app/resident.ts, bounded by ATLAS_MAX_RESIDENT_MB): the first request for a model pays its load
 * (or ONNX conversion), later ones do not until it is evicted. Every use holds a lease (`model`,
 * `encoder`, or `withModel`/`withEncoder` for the span of a callback). Each is kept under its row's
 * artifact version (src/app/artifacts.ts), so a row replaced through another replica loads the new
 * files and retires the old ones.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { defaultMaxResidentMb, type Config } from '../config.js';
import type { Database } from '../db/client.js';
import type { ModelRow, DictionaryRow } from '../db/catalog.js';
import { ArtifactCache } from './artifacts.js';
import { residentKey } from './freshness.js';
import { loadModel } from '../engine/model/load.js';
import type { LoadedModel } from '../engine/model/types.js';
import { openSae } from '../engine/sae/open.js';
import { SaeEncoder } from '../engine/sae/encoder.js';
import type { SessionSettings } from '../engine/runtime/session.js';
import { ResidentSet, type Lease, type Loaded } from './resident.js';

/** Bytes under a path (a file, or a folder's files): what a loaded model's weights hold in memory. */
function bytesOnDisk(path: string): number {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((sum, name) => sum + bytesOnDisk(join(path, name)), 0);
}

export class EngineRegistry {
  readonly resident: ResidentSet;
  /** Where catalog rows' files are fetched to (src/app/artifacts.ts). */
  readonly artifacts: ArtifactCache;

  /** `database`: where PostgreSQL-stored files are fetched from (PGlite's live under config.dataDir). */
  constructor(
    private readonly config: Pick<Config, 'dataDir' | 'cacheDir' | 'device' | 'threads'> &
      Partial<Pick<Config, 'maxResidentBytes'>>,
    database?: Database,
    resident?: ResidentSet,
  ) {
    this.artifacts = new ArtifactCache(database, config);
    this.resident = resident ?? new ResidentSet(config.maxResidentBytes ?? defaultMaxResidentMb() * 2 ** 20);
  }

  /** A lease on the model of a catalog row; release it when done. */
  model(row: ModelRow): Promise<Lease<LoadedModel>> {
    return this.resident.lease(this.keyOf('model', row), () => this.loadModel(row));
  }

  /** A lease on a dictionary's encoder; release it when done. */
  encoder(dict: DictionaryRow): Promise<Lease<SaeEncoder>> {
    return this.resident.lease(this.keyOf('encoder', dict), () => this.openEncoder(dict));
  }

  withModel<R>(row: ModelRow, fn: (model: LoadedModel) => Promise<R> | R): Promise<R> {
    return this.resident.use(this.keyOf('model', row), () => this.loadModel(row), fn);
  }

  withEncoder<R>(dict: DictionaryRow, fn: (encoder: SaeEncoder) => Promise<R> | R): Promise<R> {
    return this.resident.use(this.keyOf('encoder', dict), () => this.openEncoder(dict), fn);
  }

  /** The local folder of a dictionary's encoder weights, fetched on first use. */
  weights(dict: DictionaryRow): Promise<string> {
    return this.artifacts.dictionary(dict);
  }

  /**
   * What another thread needs to load a row's model itself: its local files (fetched on first use),
   * their size, and the settings this registry loads models with.
   */
  async modelSource(
    row: ModelRow,
  ): Promise<{ path: string; tokenizerPath?: string; bytes: number; dataDir: string; session: SessionSettings }> {
    const { path, tokenizerPath } = await this.artifacts.model(row);
    const { dataDir, device, threads } = this.config;
    return { path, tokenizerPath, bytes: bytesOnDisk(path), dataDir, session: { device, threads } };
  }

  /** The resident key of a row's current version; other versions of the same row are retired. */
  private keyOf(kind: 'model' | 'encoder', row: ModelRow | DictionaryRow): string {
    const key = residentKey(kind, row);
    const prefix = `${kind}:${row.id}\0`;
    this.resident.retire((k) => k !== key && k.startsWith(prefix));
    return key;
  }

  private async loadModel(row: ModelRow): Promise<Loaded<LoadedModel>> {
    const { path, tokenizerPath } = await this.artifacts.model(row);
    const model = await loadModel(path, {
      tokenizerPath,
      dataDir: this.config.dataDir,
      device: this.config.device,
      threads: this.config.threads,
    });
    return { value: model, bytes: bytesOnDisk(path), close: () => model.close() };
  }

  private async openEncoder(dict: DictionaryRow): Promise<Loaded<SaeEncoder>> {
    const source = openSae(await this.weights(dict));
    try {
      const params = source.loadParams();
      const encoder = await SaeEncoder.create(source.config, params, {
        session: { device: this.config.device, threads: this.config.threads },
      });
      return { value: encoder, bytes: encoder.residentBytes, close: () => encoder.close() };
    } finally {
      source.close();
    }
  }

  close(): Promise<void> {
    return this.resident.close();
  }
}
