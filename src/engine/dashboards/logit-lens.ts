/**
 * Logit lens of decoder directions: which tokens a feature's output promotes and suppresses.
 *
 * weights = (d ⊙ g) · W_U, where d is the feature's decoder row, g the final norm's scale and W_U
 * the unembedding. The final norm's input-dependent parts are left out on purpose: RMSNorm's
 * division by the RMS and LayerNorm's division by the standard deviation are positive scalars that
 * do not change the ranking, and LayerNorm's mean subtraction and bias (gpt2) act on the whole
 * residual stream, not on the direction a feature adds, so for gpt2 only the LayerNorm weight is
 * applied, as a direction. b_U is a constant per token and is left out too. The products run in
 * onnxruntime (MatMul + TopK) over decoder rows streamed from the dictionary's weights.
 */
import * as ort from 'onnxruntime-node';
import { floatTensor, int64Tensor, node, serializeModel, valueInfo } from '../onnx/proto.js';
import { createSession, type SessionSettings } from '../runtime/session.js';
import type { Unembedding } from '../model/types.js';
import type { DecoderBatch } from '../sae/types.js';

export const LOGIT_TOKENS = 10;
const ROWS_PER_RUN = 512;

export interface LogitToken {
  tokenId: number;
  weight: number;
}

export interface FeatureLogits {
  positive: LogitToken[];
  negative: LogitToken[];
}

/** W_U with each row i scaled by the final norm's weight g[i]: [d, vocab]. */
export function scaledUnembedding(u: Unembedding, d: number): Float32Array {
  const vocab = u.W_U.length / d;
  const w = Float32Array.from(u.W_U);
  const g = u.finalNorm?.weight;
  if (g) for (let i = 0; i < d; i++) for (let v = 0; v < vocab; v++) w[i * vocab + v] *= g[i];
  return w;
}

/**
 * Top `n` promoted (highest weight first) and suppressed (lowest first) tokens of every decoder
 * row, in feature order.
 */
export async function logitLens(
  u: Unembedding,
  d: number,
  rows: Iterable<DecoderBatch>,
  settings: SessionSettings,
  onRows?: (n: number) => void,
  n = LOGIT_TOKENS,
): Promise<FeatureLogits[]> {
  const vocab = u.W_U.length / d;
  const k = Math.min(n, vocab);
  const graph = serializeModel({
    name: 'logit_lens',
    nodes: [
      node('MatMul', ['dec', 'W'], ['logits']),
      node('TopK', ['logits', 'k'], ['pos_values', 'pos_indices'], { axis: -1, largest: 1, sorted: 1 }),
      node('TopK', ['logits', 'k'], ['neg_values', 'neg_indices'], { axis: -1, largest: 0, sorted: 1 }),
    ],
    initializers: [floatTensor('W', [d, vocab], scaledUnembedding(u, d)), int64Tensor('k', [1], [k])],
    inputs: [valueInfo('dec', 'float', ['n', d])],
    outputs: [
      valueInfo('pos_values', 'float', ['n', k]),
      valueInfo('pos_indices', 'int64', ['n', k]),
      valueInfo('neg_values', 'float', ['n', k]),
      valueInfo('neg_indices', 'int64', ['n', k]),
    ],
  });
  const { session } = await createSession(graph, settings);
  try {
    const out: FeatureLogits[] = [];
    const runRows = async (block: Float32Array) => {
      const m = block.length / d;
      const r = await session.run({ dec: new ort.Tensor('float32', block, [m, d]) });
      const pick = (values: string, indices: string, row: number): LogitToken[] => {
        const vs = r[values].data as Float32Array;
        const is = r[indices].data as BigInt64Array;
        return Array.from({ length: k }, (_, j) => ({ tokenId: Number(is[row * k + j]), weight: vs[row * k + j] }));
      };
      for (let i = 0; i < m; i++)
        out.push({ positive: pick('pos_values', 'pos_indices', i), negative: pick('neg_values', 'neg_indices', i) });
      onRows?.(m);
    };
    for (const batch of rows) {
      for (let s = 0; s < batch.rows.length; s += ROWS_PER_RUN * d)
        await runRows(batch.rows.subarray(s, s + ROWS_PER_RUN * d));
    }
    return out;
  } finally {
    await session.release();
  }
}
