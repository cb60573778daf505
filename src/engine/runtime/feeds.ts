/**
 * Graph inputs for a right-padded batch of token sequences, for every graph the atlas runs: its own
 * (onnx/layers.ts) and ready `.onnx` files exported elsewhere. Known inputs: input_ids,
 * attention_mask (1 on tokens, 0 on padding), position_ids (0…len−1, 0 on padding), token_type_ids
 * (zeros), each int64 or int32 as the graph declares, and float32 KV caches past_key_values.* /
 * past_* [batch, heads, past_seq, head_dim] fed empty (past_seq 0), and the atlas graphs' steering inputs
 * steer.* [1, 1, d_model] fed zeros (no steering; they broadcast). Any other input is refused.
 */
import * as ort from 'onnxruntime-node';
import { AtlasError } from '../../errors.js';
import { STEER_PREFIX } from '../model/hooks.js';

type IntType = 'int64' | 'int32';

export interface InputPlan {
  ids: IntType;
  mask: IntType | null;
  positions: IntType | null;
  tokenTypes: IntType | null;
  /** Empty caches: name → dims with -1 for the batch axis and 0 for the past length. */
  pasts: Map<string, number[]>;
  /** Steering inputs: name → width. */
  steering: Map<string, number>;
}

export function metaShape(m: ort.InferenceSession.ValueMetadata): readonly (number | string)[] {
  return m.isTensor ? m.shape : [];
}

/** Reads the graph's inputs once; `source` names the graph in messages. */
export function planInputs(session: ort.InferenceSession, source: string): InputPlan {
  const plan: InputPlan = {
    ids: 'int64',
    mask: null,
    positions: null,
    tokenTypes: null,
    pasts: new Map(),
    steering: new Map(),
  };
  let hasIds = false;
  for (const m of session.inputMetadata) {
    const type = m.isTensor ? m.type : 'non-tensor';
    const int = (): IntType => {
      if (type !== 'int64' && type !== 'int32') {
        throw new AtlasError('UNSUPPORTED', `${source}: ${m.name} has type ${type}; int64 or int32 is needed.`);
      }
      return type;
    };
    if (m.name === 'input_ids') {
      plan.ids = int();
      hasIds = true;
    } else if (m.name === 'attention_mask') plan.mask = int();
    else if (m.name === 'position_ids') plan.positions = int();
    else if (m.name === 'token_type_ids') plan.tokenTypes = int();
    else if (m.name.startsWith(STEER_PREFIX)) {
      const width = metaShape(m)[2];
      if (type !== 'float32' || typeof width !== 'number')
        throw new AtlasError(
          'UNSUPPORTED',
          `${source}: steering input "${m.name}" must be float32 [batch, seq, width].`,
        );
      plan.steering.set(m.name, width);
    } else if (m.name.startsWith('past_key_values') || m.name.startsWith('past_')) {
      const shape = metaShape(m);
      if (type !== 'float32' || shape.length !== 4) {
        throw new AtlasError(
          'UNSUPPORTED',
          `${source}: cache input "${m.name}" must be float32 [batch, heads, past_seq, head_dim].`,
        );
      }
      // The batch axis is first; every other symbolic axis is the (empty) past length.
      plan.pasts.set(
        m.name,
        shape.map((d, i) => (i === 0 ? -1 : typeof d === 'number' ? d : 0)),
      );
    } else {
      throw new AtlasError(
        'UNSUPPORTED',
        `${source} has an input "${m.name}" the atlas cannot feed; supported inputs: input_ids, attention_mask, ` +
          'position_ids, token_type_ids, past_key_values.*, steer.*.',
      );
    }
  }
  if (!hasIds) {
    throw new AtlasError(
      'UNSUPPORTED',
      `${source} has no "input_ids" input (it has: ${session.inputNames.join(', ')}).`,
    );
  }
  return plan;
}

function intTensor(type: IntType, values: ArrayLike<number>, dims: number[]): ort.Tensor {
  return type === 'int32'
    ? new ort.Tensor('int32', Int32Array.from(values), dims)
    : new ort.Tensor(
        'int64',
        BigInt64Array.from(values as ArrayLike<number>, (v) => BigInt(v)),
        dims,
      );
}

/** The feeds of one right-padded batch. */
export function batchFeeds(plan: InputPlan, seqs: number[][]): Record<string, ort.Tensor> {
  const B = seqs.length;
  const S = Math.max(...seqs.map((s) => s.length));
  const ids = new Int32Array(B * S);
  const mask = new Int32Array(B * S);
  const positions = new Int32Array(B * S);
  seqs.forEach((seq, b) =>
    seq.forEach((id, i) => {
      ids[b * S + i] = id;
      mask[b * S + i] = 1;
      positions[b * S + i] = i;
    }),
  );
  const feeds: Record<string, ort.Tensor> = { input_ids: intTensor(plan.ids, ids, [B, S]) };
  if (plan.mask) feeds.attention_mask = intTensor(plan.mask, mask, [B, S]);
  if (plan.positions) feeds.position_ids = intTensor(plan.positions, positions, [B, S]);
  if (plan.tokenTypes) feeds.token_type_ids = intTensor(plan.tokenTypes, new Int32Array(B * S), [B, S]);
  for (const [name, dims] of plan.pasts) {
    feeds[name] = new ort.Tensor(
      'float32',
      new Float32Array(0),
      dims.map((d) => (d === -1 ? B : d)),
    );
  }
  for (const [name, width] of plan.steering)
    feeds[name] = new ort.Tensor('float32', new Float32Array(width), [1, 1, width]);
  return feeds;
}
