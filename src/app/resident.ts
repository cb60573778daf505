/**
 * What a server keeps loaded (models, SAE encoders, decoder matrices for exact search), bounded by
 * bytes: a least-recently-used set of at most ATLAS_MAX_RESIDENT_MB. Every use holds a lease; an entry
 * is evicted (and closed) only when no lease holds it, so a request in flight keeps what it uses and a
 * later request for an evicted entry loads it again. While leases pin more than the bound, the set is
 * over it until they end. The set knows nothing of where an entry's files come from: `load` does.
 */

export interface Loaded<V> {
  value: V;
  /** What the entry holds in memory (native and JS), as estimated by its loader. */
  bytes: number;
  close(): Promise<void>;
}

export interface Lease<V> {
  value: V;
  /** Ends this use; the entry may be evicted once no lease holds it. Idempotent. */
  release(): void;
}

export interface ResidentEntry {
  key: string;
  bytes: number;
  leases: number;
}

export interface ResidentCounts {
  hits: number;
  misses: number;
  evictions: number;
}

interface Entry {
  key: string;
  loading: Promise<Loaded<unknown>>;
  loaded: Loaded<unknown> | null;
  leases: number;
  lastUsed: number;
  /** The clock when the entry was created (see `mark`). */
  born: number;
  /** Replaced by another version (retire): closed when its last lease ends. */
  retired?: boolean;
}

export class ResidentSet {
  readonly counts: ResidentCounts = { hits: 0, misses: 0, evictions: 0 };
  /** Hears every key `retire` drops (src/app/freshness.ts removes their cache folders later). */
  onRetire: ((key: string) => void) | null = null;
  private entries = new Map<string, Entry>();
  /** Retired entries still leased: their files stay in use until they close. */
  private retiring = new Set<Entry>();
  private clock = 0;

  constructor(
    readonly maxBytes: number,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /** Bytes of the loaded entries. */
  get bytes(): number {
    let sum = 0;
    for (const e of this.entries.values()) sum += e.loaded?.bytes ?? 0;
    return sum;
  }

  /** Loaded entries, most recently used first. */
  list(): ResidentEntry[] {
    return [...this.entries.values()]
      .filter((e) => e.loaded)
      .sort((a, b) => b.lastUsed - a.lastUsed)
      .map((e) => ({ key: e.key, bytes: e.loaded!.bytes, leases: e.leases }));
  }

  /** Keys of every entry not yet closed: loading, loaded, or retired and still leased. */
  liveKeys(): Set<string> {
    return new Set([...this.entries.keys(), ...[...this.retiring].map((e) => e.key)]);
  }

  /**
   * A point in the set's history: `retire(stale, mark)` spares entries created after it, so a check
   * against catalog rows read after the mark never retires what a newer row loaded meanwhile.
   */
  mark(): number {
    return ++this.clock;
  }

  /**
   * A lease on `key`, loading it with `load` when it is not resident (concurrent requests share one
   * load). A failed load is not kept, so fixing the files and retrying works without a restart.
   */
  async lease<V>(key: string, load: () => Promise<Loaded<V>>): Promise<Lease<V>> {
    let entry = this.entries.get(key);
    if (entry) this.counts.hits++;
    else {
      this.counts.misses++;
      const created: Entry = { key, loading: load(), loaded: null, leases: 0, lastUsed: 0, born: ++this.clock };
      entry = created;
      this.entries.set(key, created);
      created.loading.then(
        (l) => {
          created.loaded = l;
        },
        () => {
          if (this.entries.get(key) === created) this.entries.delete(key);
        },
      );
    }
    entry.leases++;
    entry.lastUsed = ++this.clock;
    let loaded: Loaded<unknown>;
    try {
      loaded = await entry.loading;
    } catch (e) {
      entry.leases--;
      throw e;
    }
    // The entry's own .then has run (it was attached first), so loaded bytes count from here on.
    this.evict();
    const held = entry;
    let released = false;
    return {
      value: loaded.value as V,
      release: () => {
        if (released) return;
        released = true;
        held.leases--;
        if (held.retired && held.leases === 0) {
          this.retiring.delete(held);
          this.closeEntry(held);
        }
        this.evict();
      },
    };
  }

  /** Runs `fn` with a lease on `key` held for its whole duration. */
  async use<V, R>(key: string, load: () => Promise<Loaded<V>>, fn: (value: V) => Promise<R> | R): Promise<R> {
    const lease = await this.lease(key, load);
    try {
      return await fn(lease.value);
    } finally {
      lease.release();
    }
  }

  /**
   * Drops the entries `stale` names (a newer version of their row replaced them, or the row is gone):
   * a new lease loads afresh; idle ones close now, leased ones when their last lease ends. With
   * `before` (a `mark`), only entries created before it. Returns the keys retired.
   */
  retire(stale: (key: string) => boolean, before = Infinity): string[] {
    const retired: string[] = [];
    for (const e of [...this.entries.values()]) {
      if (e.born > before || !stale(e.key)) continue;
      this.entries.delete(e.key);
      e.retired = true;
      retired.push(e.key);
      this.onRetire?.(e.key);
      if (e.leases === 0) this.closeEntry(e);
      else this.retiring.add(e);
    }
    return retired;
  }

  private closeEntry(e: Entry): void {
    const fail = (err: unknown) => this.log(`closing ${e.key} failed: ${(err as Error).message}`);
    // Loaded: closed now; still loading: closed once its load ends.
    if (e.loaded) e.loaded.close().catch(fail);
    else e.loading.then((l) => l.close()).catch(fail);
  }

  /** Evicts least recently used unleased entries until the set fits its bound. */
  private evict(): void {
    let total = this.bytes;
    if (total <= this.maxBytes) return;
    const idle = [...this.entries.values()]
      .filter((e) => e.loaded && e.leases === 0)
      .sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of idle) {
      if (total <= this.maxBytes) break;
      this.entries.delete(e.key);
      total -= e.loaded!.bytes;
      this.counts.evictions++;
      this.closeEntry(e);
    }
  }

  /** Closes every entry, leased or not (the process is ending). */
  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.allSettled(all.map(async (e) => (await e.loading).close()));
  }
}
