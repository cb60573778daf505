/**
 * Incremental decoding with the graph's KV cache (inputs past_key_values.*, outputs present.*, as in
 * onnx/layers.ts): each feed() runs only the new tokens and keeps the presents as the next past.
 */
import * as ort from 'onnxruntime-node';
import { AtlasError } from '../../errors.js';
import type { Decoder } from '../model/types.js';
import { batchFeeds, planInputs } from './feeds.js';

const PAST_PREFIX = 'past_key_values.';

export class KvDecoder implements Decoder {
  private past: Record<string, ort.Tensor> = {};
  private fed = 0;

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly contextLength: number,
    private readonly vocabSize: number,
  ) {
    if (!session.inputNames.some((n) => n.startsWith(PAST_PREFIX))) {
      throw new AtlasError(
        'UNSUPPORTED',
        'This model graph has no KV-cache inputs (past_key_values.*), so it cannot decode incrementally.',
      );
    }
  }

  get length(): number {
    return this.fed;
  }

  async feed(tokens: number[]): Promise<Float32Array> {
    if (tokens.length === 0) throw new AtlasError('BAD_USER_INPUT', 'feed() needs at least one token.');
    if (this.fed + tokens.length > this.contextLength) {
      throw new AtlasError(
        'INPUT_TOO_LONG',
        `Decoding would reach ${this.fed + tokens.length} tokens but the model's context holds ${this.contextLength}.`,
      );
    }
    for (const id of tokens) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
        throw new AtlasError('BAD_USER_INPUT', `Token id ${id} is outside the vocabulary of ${this.vocabSize}.`);
    }
    const feeds = { ...batchFeeds(planInputs(this.session, 'the decoder graph'), [tokens]), ...this.past };
    const total = this.fed + tokens.length;
    feeds.attention_mask = new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]);
    if (feeds.position_ids) {
      feeds.position_ids = new ort.Tensor(
        'int64',
        BigInt64Array.from(tokens, (_, i) => BigInt(this.fed + i)),
        [1, tokens.length],
      );
    }
    const pastNames = this.session.inputNames.filter((n) => n.startsWith(PAST_PREFIX));
    const presentName = (past: string) => `present.${past.slice(PAST_PREFIX.length)}`;
    const out = await this.session.run(feeds, ['logits', ...pastNames.map(presentName)]);
    for (const p of pastNames) this.past[p] = out[presentName(p)];
    this.fed = total;
    const logits = out.logits.data as Float32Array;
    return logits.slice(logits.length - this.vocabSize);
  }
}
