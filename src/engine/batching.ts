/**
 * Dynamic batching without a waiting window: a request that finds the batcher idle runs at once,
 * alone; requests that arrive while a run is busy queue and go together in the next run, up to a
 * budget (tokens for models, vectors for encoders). One batch runs at a time per batcher, since a
 * session already uses every core. So a lone request pays no wait, and under load batches grow to
 * what arrives during one run. The queue is bounded (OVERLOADED with a retry hint) and every request
 * has a deadline (DEADLINE_EXCEEDED).
 * With `gather`, a run starts on the event loop's next turn (setImmediate, no timer) instead of inside
 * submit(), so that requests submitted in the same turn share it: the requests of one model batch
 * submitting to an encoder one after another, or HTTP requests read together. onnxruntime-node starts
 * its runs on the next turn anyway, so a lone request waits no longer for its result.
 */
import { AtlasError } from '../errors.js';

/** Guess of a batch's run time before any has run. */
const INITIAL_RUN_MS = 50;
/** Floor of the retry hint, so clients never spin. */
const MIN_RETRY_MS = 10;
/** Weight of the newest batch in the moving averages. */
const EMA = 0.2;

export interface BatcherOptions {
  /** Budget of one batch, in the units of `size` (a single larger request still runs, alone). */
  budget: number;
  /** Requests waiting or running before new ones are refused. */
  maxQueue: number;
  /** Per-request deadline from submission. */
  timeoutMs: number;
  /** false: every request runs alone (for measuring what batching buys). */
  merge: boolean;
  /** Start runs on the next turn of the event loop, gathering what is submitted in this one (see above). */
  gather?: boolean;
}

interface Pending<I, O> {
  item: I;
  size: number;
  resolve(o: O): void;
  reject(e: unknown): void;
  timer: NodeJS.Timeout;
  settled: boolean;
}

/** What a batcher has run so far: batches, the requests in them, and the most requests in one batch. */
export interface BatchCounts {
  runs: number;
  requests: number;
  largest: number;
}

export class Batcher<I, O> {
  readonly counts: BatchCounts = { runs: 0, requests: 0, largest: 0 };
  private queue: Pending<I, O>[] = [];
  private running = 0;
  private busy = false;
  /** A gathered start is pending (setImmediate). */
  private starting = false;
  /** Moving averages of a batch's run time and its number of requests, for the retry hint. */
  private avgRunMs = INITIAL_RUN_MS;
  private avgBatchRequests = 1;

  constructor(
    private readonly run: (items: I[]) => Promise<O[]>,
    private readonly size: (item: I) => number,
    private readonly opts: BatcherOptions,
  ) {}

  get depth(): number {
    return this.queue.length + this.running;
  }

  submit(item: I): Promise<O> {
    if (this.depth >= this.opts.maxQueue) {
      // The queue drains one batch per run: wait about (batches ahead) × (time per batch).
      const batchesAhead = Math.ceil(this.depth / Math.max(1, this.avgBatchRequests));
      const retryAfterMs = Math.max(MIN_RETRY_MS, Math.round(this.avgRunMs * batchesAhead));
      return Promise.reject(
        new AtlasError(
          'OVERLOADED',
          `The server is busy (${this.depth} requests queued); retry in about ${retryAfterMs} ms.`,
          { retryAfterMs },
        ),
      );
    }
    return new Promise<O>((resolve, reject) => {
      const p: Pending<I, O> = {
        item,
        size: this.size(item),
        resolve,
        reject,
        settled: false,
        timer: setTimeout(() => {
          this.settle(p, () =>
            reject(
              new AtlasError(
                'DEADLINE_EXCEEDED',
                `The request did not finish within ${this.opts.timeoutMs} ms (ATLAS_REQUEST_TIMEOUT_MS); try a ` +
                  `shorter input or retry later.`,
              ),
            ),
          );
          this.queue = this.queue.filter((q) => q !== p);
        }, this.opts.timeoutMs),
      };
      this.queue.push(p);
      this.schedule();
    });
  }

  private settle(p: Pending<I, O>, fn: () => void): void {
    if (p.settled) return;
    p.settled = true;
    clearTimeout(p.timer);
    fn();
  }

  private take(): Pending<I, O>[] {
    if (!this.opts.merge) return this.queue.splice(0, 1);
    const batch: Pending<I, O>[] = [];
    let used = 0;
    while (this.queue.length > 0 && (batch.length === 0 || used + this.queue[0].size <= this.opts.budget)) {
      const p = this.queue.shift()!;
      used += p.size;
      batch.push(p);
    }
    return batch;
  }

  /** Starts a run of what is queued unless one is busy (it calls this again when it ends). */
  private schedule(): void {
    if (this.busy || this.queue.length === 0 || this.starting) return;
    if (this.opts.gather) {
      this.starting = true;
      setImmediate(() => {
        this.starting = false;
        this.start();
      });
    } else this.start();
  }

  private start(): void {
    if (this.busy || this.queue.length === 0) return;
    const batch = this.take();
    this.busy = true;
    this.running = batch.length;
    this.counts.runs++;
    this.counts.requests += batch.length;
    this.counts.largest = Math.max(this.counts.largest, batch.length);
    const started = Date.now();
    this.run(batch.map((p) => p.item))
      .then(
        (outs) => batch.forEach((p, i) => this.settle(p, () => p.resolve(outs[i]))),
        (e) => batch.forEach((p) => this.settle(p, () => p.reject(e))),
      )
      .finally(() => {
        this.avgRunMs = (1 - EMA) * this.avgRunMs + EMA * (Date.now() - started);
        this.avgBatchRequests = (1 - EMA) * this.avgBatchRequests + EMA * batch.length;
        this.busy = false;
        this.running = 0;
        this.schedule();
      });
  }
}

/** What a set of batchers (one per model or dictionary) has run, and the requests waiting or running now. */
export interface QueueStats extends BatchCounts {
  depth: number;
}

export function queueStats(batchers: Iterable<{ counts: BatchCounts; depth: number }>): QueueStats {
  const total: QueueStats = { runs: 0, requests: 0, largest: 0, depth: 0 };
  for (const b of batchers) {
    total.runs += b.counts.runs;
    total.requests += b.counts.requests;
    total.largest = Math.max(total.largest, b.counts.largest);
    total.depth += b.depth;
  }
  return total;
}

/**
 * Batchers by key, one per model or dictionary version. A batcher whose key is no longer among the
 * `live` ones (the version was replaced, deleted or evicted) is dropped once idle, so a long-running
 * server does not keep one for every version it ever served; its counts stay in the totals, which never
 * go backwards. Pruning runs when a batcher is made and when the totals are read, not on every request.
 */
export class BatcherPool<I, O> {
  private readonly batchers = new Map<string, Batcher<I, O>>();
  private readonly dropped: BatchCounts = { runs: 0, requests: 0, largest: 0 };

  constructor(private readonly live: () => ReadonlySet<string>) {}

  /** The key's batcher, made by `make` if there is none; submit to it before yielding to the event loop. */
  get(key: string, make: () => Batcher<I, O>): Batcher<I, O> {
    let b = this.batchers.get(key);
    if (!b) {
      this.prune();
      b = make();
      this.batchers.set(key, b);
    }
    return b;
  }

  get size(): number {
    return this.batchers.size;
  }

  stats(): QueueStats {
    this.prune();
    return queueStats([...this.batchers.values(), { counts: this.dropped, depth: 0 }]);
  }

  private prune(): void {
    const live = this.live();
    for (const [key, b] of this.batchers) {
      if (b.depth > 0 || live.has(key)) continue;
      this.dropped.runs += b.counts.runs;
      this.dropped.requests += b.counts.requests;
      this.dropped.largest = Math.max(this.dropped.largest, b.counts.largest);
      this.batchers.delete(key);
    }
  }
}
