/**
 * Incremental decoding with the graph's KV cache (inputs past_key_values.*, outputs present.*, as in
 * onnx/layers.ts): each feed() runs only the new tokens and keeps the presents as the next past.
 * Steering adds a vector per new position at residual-stream hooks through the graph's steer.* inputs,
 * in the same run; peek() reads a hook's value for the new positions (steering at earlier hooks applied)
 * on a graph pruned at that hook, without appending them, for interventions that depend on it.
 */
import * as ort from 'onnxruntime-node';
import { AtlasError } from '../../errors.js';
import { STEER_PREFIX, steeringInputName } from '../model/hooks.js';
import type { Decoder, SteeringFeed } from '../model/types.js';
import { batchFeeds, planInputs } from './feeds.js';
import type { HookRunner } from './forward.js';

const PAST_PREFIX = 'past_key_values.';

export class KvDecoder implements Decoder {
  private past: Record<string, ort.Tensor> = {};
  private fed = 0;
  readonly steerableHooks: string[];

  constructor(
    private readonly runner: HookRunner,
    private readonly contextLength: number,
    private readonly vocabSize: number,
  ) {
    const { session } = runner.full;
    if (!session.inputNames.some((n) => n.startsWith(PAST_PREFIX))) {
      throw new AtlasError(
        'UNSUPPORTED',
        'This model graph has no KV-cache inputs (past_key_values.*), so it cannot decode incrementally.',
      );
    }
    this.steerableHooks = session.inputNames
      .filter((n) => n.startsWith(STEER_PREFIX))
      .map((n) => n.slice(STEER_PREFIX.length));
  }

  get length(): number {
    return this.fed;
  }

  /** Feeds for `tokens` after the cache, on `session` (the full graph or a pruned one). */
  private feeds(session: ort.InferenceSession, tokens: number[], steering: SteeringFeed): Record<string, ort.Tensor> {
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
    const plan = planInputs(session, 'the decoder graph');
    const feeds = batchFeeds(plan, [tokens]);
    for (const p of plan.pasts.keys()) feeds[p] = this.past[p] ?? feeds[p];
    const total = this.fed + tokens.length;
    // A graph pruned at an early hook may not read the mask.
    if (plan.mask) feeds.attention_mask = new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]);
    if (feeds.position_ids) {
      feeds.position_ids = new ort.Tensor(
        'int64',
        BigInt64Array.from(tokens, (_, i) => BigInt(this.fed + i)),
        [1, tokens.length],
      );
    }
    for (const [hook, values] of steering) {
      const width = plan.steering.get(steeringInputName(hook));
      if (!this.steerableHooks.includes(hook))
        throw new AtlasError(
          'UNSUPPORTED',
          `Hook ${hook} cannot be steered; steerable hooks: ${this.steerableHooks.join(', ')}.`,
        );
      // A pruned graph ends before later hooks: their steering cannot change what it computes.
      if (width === undefined) continue;
      if (values.length !== tokens.length * width)
        throw new AtlasError(
          'DIMENSION_MISMATCH',
          `Steering at ${hook} needs ${tokens.length} × ${width} values, got ${values.length}.`,
        );
      feeds[steeringInputName(hook)] = new ort.Tensor('float32', values, [1, tokens.length, width]);
    }
    return feeds;
  }

  async feed(tokens: number[], steering: SteeringFeed = new Map()): Promise<Float32Array> {
    const { session } = this.runner.full;
    const feeds = this.feeds(session, tokens, steering);
    const pastNames = session.inputNames.filter((n) => n.startsWith(PAST_PREFIX));
    const presentName = (past: string) => `present.${past.slice(PAST_PREFIX.length)}`;
    const out = await session.run(feeds, ['logits', ...pastNames.map(presentName)]);
    for (const p of pastNames) this.past[p] = out[presentName(p)];
    this.fed += tokens.length;
    const logits = out.logits.data as Float32Array;
    return logits.slice(logits.length - this.vocabSize);
  }

  async peek(tokens: number[], hook: string, steering: SteeringFeed = new Map()): Promise<Float32Array> {
    return this.runner.withSession([hook], async (session) => {
      const out = await session.run(this.feeds(session, tokens, steering), [hook]);
      return out[hook].data as Float32Array;
    });
  }
}
