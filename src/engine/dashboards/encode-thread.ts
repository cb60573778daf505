/**
 * The forward pass and SAE encode of `atlas build` in a worker thread, so that they overlap the
 * accumulation on the main thread: onnxruntime-node runs a session synchronously on the thread that
 * calls it (its async run only defers the call with setImmediate), so on one thread the model waits
 * for JavaScript and JavaScript for the model.
 *
 * The worker (./encode-worker.ts) opens its own copy of the model (from the converted cache) and of
 * each dictionary's encoder, takes batches of contexts in order, and answers each with one
 * BatchEncoding per dictionary asked for: the same calls (encodeBatch) as the main-thread path, so the
 * same numbers. Every array of an answer is transferred, not copied. Requests queue in the worker; the
 * caller bounds how many are in flight (the memory of one batch each: n · (8 K + 8 dIn) bytes).
 */
import { Worker } from 'node:worker_threads';
import { AtlasError, type ErrorCode } from '../../errors.js';
import type { SessionSettings } from '../runtime/session.js';
import type { TokenContext } from './corpus.js';
import type { BatchEncoding, BuildTarget } from './dictionary-build.js';

export interface EncodeThreadData {
  model: { path: string; tokenizerPath?: string; dataDir: string };
  /** Dictionaries by position: requests name them by index. weightsPath must be set. */
  dicts: Pick<BuildTarget, 'id' | 'dIn' | 'dSae' | 'hookPoint' | 'hookPointOut' | 'weightsPath'>[];
  session: SessionSettings;
}

export interface EncodeRequest {
  id: number;
  contexts?: TokenContext[];
  hooks?: string[];
  dicts?: number[];
  close?: true;
}

export interface EncodeReply {
  id: number;
  encodings?: BatchEncoding[];
  error?: { code?: ErrorCode; message: string; details?: Record<string, unknown>; stack?: string };
}

interface Pending {
  resolve: (r: BatchEncoding[]) => void;
  reject: (e: Error) => void;
}

function errorOf(e: NonNullable<EncodeReply['error']>): Error {
  if (e.code) return new AtlasError(e.code, e.message, e.details);
  const err = new Error(e.message);
  if (e.stack) err.stack = e.stack;
  return err;
}

export class EncodeThread {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  /** Set once the worker is gone; every later request fails with it. */
  private failure: Error | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (r: EncodeReply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.error) p.reject(errorOf(r.error));
      else p.resolve(r.encodings ?? []);
    });
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) => this.fail(new Error(`The build's encode thread exited (code ${code}).`)));
  }

  static start(data: EncodeThreadData): EncodeThread {
    const url = new URL(`./encode-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
    // From the TypeScript sources (the CLI registers tsx in-process, which a worker does not inherit) the
    // worker registers tsx itself before loading its module.
    const worker = url.pathname.endsWith('.ts')
      ? new Worker(
          `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`,
          { eval: true, workerData: data },
        )
      : new Worker(url, { workerData: data });
    return new EncodeThread(worker);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  private call(req: Omit<EncodeRequest, 'id'>): Promise<BatchEncoding[]> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id } satisfies EncodeRequest);
    });
  }

  /** Runs the model to `hooks` on the contexts and encodes them with the dictionaries at these indices. */
  encode(contexts: TokenContext[], hooks: string[], dicts: number[]): Promise<BatchEncoding[]> {
    return this.call({ contexts, hooks, dicts });
  }

  /** Closes the worker's sessions and ends it; requests still queued fail. */
  async close(): Promise<void> {
    if (!this.failure) await this.call({ close: true }).catch(() => undefined);
    this.failure ??= new Error("The build's encode thread is closed.");
    await this.worker.terminate();
  }
}
