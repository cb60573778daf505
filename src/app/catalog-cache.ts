/**
 * Catalog rows (models, ready dictionaries) for the encode paths, kept CATALOG_TTL_MS after they were
 * read, so that a request does not pay its catalog lookups every time. Invalidation is by age: rows
 * are written by other processes (`atlas import`, `atlas model add`), so a change is seen within the
 * TTL. Missing ids and failed reads are not kept (a fresh import is visible at once), and a missing
 * id is reported (`onMissing`: the server drops what it loaded for it, src/app/freshness.ts). Rows are
 * kept per database, so one service used with two databases never mixes them; a database is known by
 * its drizzle instance, which every per-request view of it (Database.forRequest) shares, so requests
 * hit the cache (keyed by the view, every request would read both rows again).
 */
import type { Database } from '../db/client.js';
import { requireDictionary, requireModel, type DictionaryRow, type ModelRow } from '../db/catalog.js';
import { AtlasError } from '../errors.js';

export const CATALOG_TTL_MS = 1000;

interface Entry<T> {
  row: Promise<T>;
  readAt: number;
}

export interface CatalogReads {
  model(database: Database, id: string): Promise<ModelRow>;
  dictionary(database: Database, id: string): Promise<DictionaryRow>;
}

/** Rows of one kind, per database. */
class RowCache<T> {
  private readonly rows = new WeakMap<Database['db'], Map<string, Entry<T>>>();

  constructor(
    private readonly read: (database: Database, id: string) => Promise<T>,
    private readonly ttlMs: number,
    private readonly now: () => number,
    private readonly onMissing: (id: string) => void,
  ) {}

  get(database: Database, id: string): Promise<T> {
    let byId = this.rows.get(database.db);
    if (!byId) this.rows.set(database.db, (byId = new Map()));
    const cached = byId.get(id);
    const now = this.now();
    if (cached && now - cached.readAt < this.ttlMs) return cached.row;
    const entry: Entry<T> = { row: this.read(database, id), readAt: now };
    byId.set(id, entry);
    entry.row.catch((e) => {
      if (byId.get(id) === entry) byId.delete(id);
      if (e instanceof AtlasError && e.code === 'NOT_FOUND') this.onMissing(id);
    });
    return entry.row;
  }
}

export class CatalogCache implements CatalogReads {
  private readonly models: RowCache<ModelRow>;
  private readonly dictionaries: RowCache<DictionaryRow>;

  constructor(
    reads: CatalogReads = { model: requireModel, dictionary: requireDictionary },
    ttlMs = CATALOG_TTL_MS,
    now: () => number = Date.now,
    onMissing: (kind: 'model' | 'dictionary', id: string) => void = () => undefined,
  ) {
    this.models = new RowCache(reads.model, ttlMs, now, (id) => onMissing('model', id));
    this.dictionaries = new RowCache(reads.dictionary, ttlMs, now, (id) => onMissing('dictionary', id));
  }

  model(database: Database, id: string): Promise<ModelRow> {
    return this.models.get(database, id);
  }

  dictionary(database: Database, id: string): Promise<DictionaryRow> {
    return this.dictionaries.get(database, id);
  }
}
