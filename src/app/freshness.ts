/**
 * How a replica lets go of rows that changed through another process (docs/decisions/0005): what it
 * loads is kept in the resident set under `<kind>:<id>\0<version>` (model and encoder: the row's
 * artifact version, src/app/artifacts.ts; decoders: the row's created_at, new with every `--replace`).
 * Every CATALOG_TTL_MS, on a timer that does not keep the process alive, one query reads the current
 * version of the rows behind the resident entries (`rowVersions`, by id, so its cost follows what is
 * loaded, not the catalog); an entry whose row is gone or names another version is retired (closed
 * once no request uses it), and the cache folder of a version no row names any more is removed once
 * nothing in this process uses it. A catalog lookup that finds a row missing retires its entries at
 * once. So a deleted or replaced dictionary's encoder leaves every replica within about one interval
 * after the change, plus the longest request still using it.
 */
import type { Database } from '../db/client.js';
import { referencedVersions, rowVersions, type DictionaryRow, type ModelRow, type RowVersion } from '../db/catalog.js';
import { artifactKey, type ArtifactCache } from './artifacts.js';
import { CATALOG_TTL_MS } from './catalog-cache.js';
import type { ResidentSet } from './resident.js';

/** The resident key of what a model or dictionary row loads: its model, or its encoder. */
export function residentKey(kind: 'model' | 'encoder', row: ModelRow | DictionaryRow | RowVersion): string {
  return `${kind}:${artifactKey(row)}`;
}

/** The resident key of a dictionary's decoder matrix (exact search), read from its feature rows. */
export function decodersKey(dict: Pick<DictionaryRow, 'id' | 'createdAt'>): string {
  return `decoders:${dict.id}\0${new Date(dict.createdAt).getTime()}`;
}

const VERSION = /^[0-9a-f]{64}$/;

/** A resident key's parts; `version` only for keys of artifact-stored rows. */
function parseKey(key: string): { kind: string; id: string; version: string | null } | null {
  const colon = key.indexOf(':');
  const nul = key.indexOf('\0', colon);
  if (colon < 0 || nul < 0) return null;
  const rest = key.slice(nul + 1);
  return { kind: key.slice(0, colon), id: key.slice(colon + 1, nul), version: VERSION.test(rest) ? rest : null };
}

export class Freshness {
  /** Versions retired here whose cache folders wait until no row names them and nothing here uses them. */
  private readonly unusedFolders = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly database: Database,
    private readonly resident: ResidentSet,
    private readonly artifacts: ArtifactCache,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    // Versions retired here, by a sweep or by a request that read a newer row (src/app/registry.ts).
    resident.onRetire = (key) => {
      const version = parseKey(key)?.version;
      if (version) this.unusedFolders.add(version);
    };
  }

  /** Sweeps every `intervalMs` until `stop`; the timer never keeps the process alive. */
  start(intervalMs = CATALOG_TTL_MS): void {
    if (this.timer) return;
    let failing: string | null = null;
    this.timer = setInterval(() => {
      this.sweep().then(
        () => (failing = null),
        (e: Error) => {
          // Once per distinct failure, not every second while the database is away.
          if (e.message !== failing) this.log(`checking resident rows against the catalog failed: ${e.message}`);
          failing = e.message;
        },
      );
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  /** One check of every resident entry against its row; concurrent calls share one run. */
  sweep(): Promise<void> {
    this.running ??= this.check().finally(() => (this.running = null));
    return this.running;
  }

  /** A lookup found no model or dictionary `id`: what was loaded for it goes now. */
  missing(kind: 'model' | 'dictionary', id: string): void {
    const kinds = kind === 'model' ? ['model'] : ['encoder', 'decoders'];
    this.resident.retire((k) => {
      const p = parseKey(k);
      return p !== null && p.id === id && kinds.includes(p.kind);
    });
  }

  private async check(): Promise<void> {
    const mark = this.resident.mark();
    const keys = new Map<string, { kind: string; id: string }>();
    for (const key of this.resident.liveKeys()) {
      const parts = parseKey(key);
      if (parts) keys.set(key, parts);
    }
    if (keys.size > 0) {
      const ids = (kinds: string[]) => [
        ...new Set([...keys.values()].filter((p) => kinds.includes(p.kind)).map((p) => p.id)),
      ];
      const rows = await rowVersions(this.database, ids(['model']), ids(['encoder', 'decoders']));
      const current = new Set(
        rows.flatMap((r) =>
          r.kind === 'model' ? [residentKey('model', r)] : [residentKey('encoder', r), decodersKey(r)],
        ),
      );
      this.resident.retire((k) => keys.has(k) && !current.has(k), mark);
    }
    await this.removeFolders();
  }

  /** Removes the cache folders of retired versions that no row names and no live entry here uses. */
  private async removeFolders(): Promise<void> {
    if (this.unusedFolders.size === 0) return;
    const named = await referencedVersions(this.database);
    const inUse = new Set([...this.resident.liveKeys()].map((k) => parseKey(k)?.version));
    for (const version of [...this.unusedFolders]) {
      if (inUse.has(version)) continue;
      this.unusedFolders.delete(version);
      if (!named.has(version)) this.artifacts.removeVersion(version);
    }
  }
}
