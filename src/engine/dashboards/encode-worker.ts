/**
 * The worker thread of ./encode-thread.ts: opens the model and the dictionaries' encoders named in
 * workerData, then answers requests one at a time, in order: runHooks on the contexts, then
 * encodeBatch per dictionary asked for (each keeping its encoder width from batch to batch, as
 * DictionaryBuild does). The answer's arrays are transferred; an array that shares its buffer with
 * another or is a view into a larger one is copied first, so a transfer never detaches anything else.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isAtlasError } from '../../errors.js';
import { loadModel } from '../model/load.js';
import type { LoadedModel } from '../model/types.js';
import { SaeEncoder } from '../sae/encoder.js';
import { openSae } from '../sae/open.js';
import { encodeBatch, initialTopK, type BatchEncoding } from './dictionary-build.js';
import type { EncodeReply, EncodeRequest, EncodeThreadData } from './encode-thread.js';

const data = workerData as EncodeThreadData;
const port = parentPort!;

interface Loaded {
  model: LoadedModel;
  encoders: { encoder: SaeEncoder; topK: number }[];
}

async function open(): Promise<Loaded> {
  const { device, threads } = data.session;
  const model = await loadModel(data.model.path, { ...data.model, device, threads });
  const encoders: Loaded['encoders'] = [];
  try {
    for (const d of data.dicts) {
      const source = openSae(d.weightsPath!);
      try {
        // The build's batches (thousands of tokens) are far above the sizes an 8-bit screen pays for.
        const encoder = await SaeEncoder.create(source.config, source.loadParams(), {
          session: data.session,
          screen: 'never',
        });
        encoders.push({ encoder, topK: initialTopK(encoder, d.dSae) });
      } finally {
        source.close();
      }
    }
  } catch (e) {
    await model.close();
    for (const { encoder } of encoders) await encoder.close();
    throw e;
  }
  return { model, encoders };
}

const loaded = open();
loaded.catch(() => undefined); // reported in the answer to every request

/** The arrays of the encodings, each on a buffer of its own, and those buffers. */
function transferable(encodings: BatchEncoding[]): ArrayBuffer[] {
  const seen = new Set<ArrayBufferLike>();
  const own = <T extends Int32Array | Float32Array>(a: T): T => {
    const whole = a.byteOffset === 0 && a.byteLength === a.buffer.byteLength;
    if (whole && !seen.has(a.buffer) && a.buffer instanceof ArrayBuffer) {
      seen.add(a.buffer);
      return a;
    }
    const copy = a.slice() as T;
    seen.add(copy.buffer);
    return copy;
  };
  for (const e of encodings) {
    e.indices = own(e.indices);
    e.values = own(e.values);
    e.xHat = own(e.xHat);
    e.reference = own(e.reference);
  }
  return [...seen] as ArrayBuffer[];
}

async function handle(req: EncodeRequest): Promise<void> {
  const { model, encoders } = await loaded;
  if (req.close) {
    await model.close();
    for (const { encoder } of encoders) await encoder.close();
    port.postMessage({ id: req.id } satisfies EncodeReply);
    return;
  }
  const contexts = req.contexts!;
  const acts = await model.runHooks(
    contexts.map((c) => c.ids),
    req.hooks!,
  );
  const encodings: BatchEncoding[] = [];
  for (const i of req.dicts!) {
    const d = data.dicts[i];
    const e = encoders[i];
    const enc = await encodeBatch(
      e.encoder,
      d,
      e.topK,
      contexts,
      acts.get(d.hookPoint)!,
      d.hookPointOut ? acts.get(d.hookPointOut) : undefined,
    );
    e.topK = enc.width;
    encodings.push(enc);
  }
  port.postMessage({ id: req.id, encodings } satisfies EncodeReply, transferable(encodings));
}

let chain: Promise<void> = Promise.resolve();
port.on('message', (req: EncodeRequest) => {
  chain = chain.then(() =>
    handle(req).catch((e: unknown) => {
      const err = e as Error;
      const error: EncodeReply['error'] = isAtlasError(e)
        ? { code: e.code, message: e.message, details: e.details }
        : { message: String(err?.message ?? e), stack: err?.stack };
      port.postMessage({ id: req.id, error } satisfies EncodeReply);
    }),
  );
});
