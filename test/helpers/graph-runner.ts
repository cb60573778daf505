/**
 * Runs a transformer GraphSpec (the interface of src/engine/onnx/layers.ts) on onnxruntime-node
 * directly, so graph tests do not depend on the engine's session and batching code: right-pads the
 * batch, feeds an empty KV cache, and cuts each sequence's rows back out.
 */
import * as ort from 'onnxruntime-node';
import { serializeModel, type GraphSpec } from '../../src/engine/onnx/proto.js';

export interface SequenceOutput {
  /** Hook name → [len, d] */
  hooks: Map<string, Float32Array>;
  /** [len, vocab] */
  logits: Float32Array;
}

/** max |a - b| / max |b|: the tolerance measure of the correctness tests. */
export function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

export async function createSession(modelBytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(modelBytes, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
}

/** Feeds for a right-padded batch with an empty KV cache and no steering; dims come from the graph's inputs. */
export function batchFeeds(spec: GraphSpec, batch: number[][]): Record<string, ort.Tensor> {
  const B = batch.length;
  const S = Math.max(...batch.map((s) => s.length));
  const ids = new BigInt64Array(B * S);
  const mask = new BigInt64Array(B * S);
  batch.forEach((seq, b) =>
    seq.forEach((t, i) => {
      ids[b * S + i] = BigInt(t);
      mask[b * S + i] = 1n;
    }),
  );
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', ids, [B, S]),
    attention_mask: new ort.Tensor('int64', mask, [B, S]),
  };
  for (const input of spec.inputs) {
    const dims = input.type!.tensorType!.shape!.dim!;
    // Steering inputs: zeros, broadcast over batch and positions (no steering).
    if (input.name!.startsWith('steer.')) {
      const width = Number(dims[2].dimValue);
      feeds[input.name!] = new ort.Tensor('float32', new Float32Array(width), [1, 1, width]);
    }
    if (!input.name!.startsWith('past_key_values.')) continue;
    feeds[input.name!] = new ort.Tensor('float32', new Float32Array(0), [
      B,
      Number(dims[1].dimValue),
      0,
      Number(dims[3].dimValue),
    ]);
  }
  return feeds;
}

/** Splits a [batch, seq, width] output into each sequence's first `len` rows. */
export function rowsOf(t: ort.Tensor, b: number, len: number): Float32Array {
  const [, S, width] = t.dims as number[];
  return (t.data as Float32Array).slice(b * S * width, (b * S + len) * width);
}

export async function runGraph(
  spec: GraphSpec,
  batch: number[][],
  session?: ort.InferenceSession,
): Promise<SequenceOutput[]> {
  const s = session ?? (await createSession(serializeModel(spec)));
  try {
    const hookNames = s.outputNames.filter((n) => n !== 'logits' && !n.startsWith('present.'));
    const results = await s.run(batchFeeds(spec, batch), [...hookNames, 'logits']);
    return batch.map((seq, b) => ({
      hooks: new Map(hookNames.map((n) => [n, rowsOf(results[n], b, seq.length)])),
      logits: rowsOf(results.logits, b, seq.length),
    }));
  } finally {
    if (!session) await s.release();
  }
}
