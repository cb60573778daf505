/**
 * Text generation with llama2.c run.c's semantics: the prompt starts with BOS, `steps` counts
 * positions run through the model (prompt included), generation stops when BOS comes out,
 * temperature 0 is greedy, otherwise top-p (nucleus) sampling with run.c's xorshift RNG, so a seed
 * gives the same choices as run.c wherever float rounding agrees. Every model samples this way.
 *
 * Steering (sampleTokens) intervenes at residual-stream hooks, at every position (prompt and generated),
 * with d a feature's decoder row and s its strength:
 *   ADD             h ← h + s·d
 *   CLAMP           h ← h + (s − f(h))·d, f the dictionary's own encoder (the SAE error term is kept)
 *   PROJECTION_CAP  h ← h − max(0, h·u − s)·u, u = d/|d| (the component along u capped at s)
 * Interventions on one hook apply in the order given; hooks in forward order. ADD-only hooks cost
 * nothing beyond the steered run itself (the graph's steer.* inputs); a hook with CLAMP or
 * PROJECTION_CAP first reads h for the new positions on a graph pruned at that hook.
 */
import { AtlasError } from '../errors.js';
import type { Decoder, LoadedModel, SteeringFeed } from './model/types.js';

export interface GenerateOptions {
  prompt?: string;
  /** Positions to run, prompt included; 0 or more than the context means the whole context (default 256). */
  steps?: number;
  /** 0 = greedy (default 1). */
  temperature?: number;
  /** Nucleus mass; outside (0, 1) samples from the whole distribution (default 0.9). */
  topp?: number;
  /** RNG seed; default: the current time in seconds. */
  seed?: number;
}

export interface Generation {
  /** The whole sequence: BOS, prompt, generated tokens. */
  tokens: number[];
  text: string;
}

const U64 = (1n << 64n) - 1n;

/** run.c's xorshift* generator. */
export class XorShiftRng {
  private state: bigint;

  constructor(seed: number) {
    this.state = BigInt.asUintN(64, BigInt(Math.trunc(seed)));
  }

  u32(): number {
    let s = this.state;
    s ^= s >> 12n;
    s ^= (s << 25n) & U64;
    s ^= s >> 27n;
    this.state = s;
    return Number(((s * 0x2545f4914f6cdd1dn) & U64) >> 32n);
  }

  /** Uniform in [0, 1) from the top 24 bits. */
  f32(): number {
    return (this.u32() >>> 8) / 16777216;
  }
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

function softmaxInPlace(x: Float32Array): void {
  let max = -Infinity;
  for (const v of x) if (v > max) max = v;
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i] = Math.exp(x[i] - max);
  for (let i = 0; i < x.length; i++) x[i] /= sum;
}

/** Samples an index from probabilities `p` with coin in [0, 1). */
function sampleMult(p: Float32Array, coin: number): number {
  let cdf = 0;
  for (let i = 0; i < p.length; i++) {
    cdf += p[i];
    if (coin < cdf) return i;
  }
  return p.length - 1;
}

/** Samples from the smallest set of most likely tokens whose mass exceeds topp. */
function sampleTopp(p: Float32Array, topp: number, coin: number): number {
  // Tokens below this can never be part of the nucleus; dropping them first keeps the sort short.
  const cutoff = (1 - topp) / (p.length - 1);
  const candidates: Array<{ i: number; p: number }> = [];
  for (let i = 0; i < p.length; i++) if (p[i] >= cutoff) candidates.push({ i, p: p[i] });
  candidates.sort((a, b) => b.p - a.p);
  let mass = 0;
  let last = candidates.length - 1;
  for (let k = 0; k < candidates.length; k++) {
    mass += candidates[k].p;
    if (mass > topp) {
      last = k;
      break;
    }
  }
  const r = coin * mass;
  let cdf = 0;
  for (let k = 0; k <= last; k++) {
    cdf += candidates[k].p;
    if (r < cdf) return candidates[k].i;
  }
  return candidates[last].i;
}

export class Sampler {
  private readonly rng: XorShiftRng;

  constructor(
    private readonly temperature: number,
    private readonly topp: number,
    seed: number,
  ) {
    this.rng = new XorShiftRng(seed);
  }

  sample(logits: Float32Array): number {
    if (this.temperature === 0) return argmax(logits);
    const p = logits.map((v) => v / this.temperature);
    softmaxInPlace(p);
    const coin = this.rng.f32();
    return this.topp <= 0 || this.topp >= 1 ? sampleMult(p, coin) : sampleTopp(p, this.topp, coin);
  }
}

function checkOptions(o: GenerateOptions): Required<GenerateOptions> {
  const steps = o.steps ?? 256;
  const temperature = o.temperature ?? 1;
  const topp = o.topp ?? 0.9;
  const seed = o.seed ?? Math.floor(Date.now() / 1000);
  if (!Number.isInteger(steps) || steps < 0)
    throw new AtlasError('BAD_USER_INPUT', `steps must be a non-negative integer, got ${o.steps}.`);
  if (!Number.isFinite(temperature) || temperature < 0)
    throw new AtlasError('BAD_USER_INPUT', `temperature must be a number >= 0, got ${o.temperature}.`);
  if (!Number.isFinite(topp)) throw new AtlasError('BAD_USER_INPUT', `topp must be a number, got ${o.topp}.`);
  if (!Number.isInteger(seed) || seed <= 0)
    throw new AtlasError('BAD_USER_INPUT', `seed must be a positive integer, got ${o.seed}.`);
  return { prompt: o.prompt ?? '', steps, temperature, topp, seed };
}

export type SteeringMethod = 'ADD' | 'CLAMP' | 'PROJECTION_CAP';

export interface Intervention {
  hook: string;
  method: SteeringMethod;
  strength: number;
  /** The feature's decoder row, [d_model]. */
  direction: Float32Array;
  /** CLAMP: the feature's activation f(h) for each of n rows of h [n, d_model]. */
  measure?: (h: Float32Array, n: number) => Promise<Float32Array>;
}

export interface SampleOptions {
  /** Most tokens to sample (the boundary token ends sooner and is not returned). */
  maxTokens: number;
  temperature: number;
  topp: number;
  seed: number;
  interventions?: Intervention[];
  /** Runs each model call, `tokens` long (a shared queue); default: at once. */
  schedule?: <T>(tokens: number, run: () => Promise<T>) => Promise<T>;
  /** Stops sampling (with an AbortError) before the next model call. */
  signal?: AbortSignal;
}

export interface SampledToken {
  id: number;
  /** The model's logits [vocab] the token was sampled from. */
  logits: Float32Array;
}

const runNow = <T>(_tokens: number, run: () => Promise<T>): Promise<T> => run();

/** Applies the interventions on one hook to h [n, d] in place. */
async function intervene(h: Float32Array, n: number, list: Intervention[]): Promise<void> {
  for (const iv of list) {
    const d = iv.direction;
    const width = d.length;
    let norm = 0;
    for (const v of d) norm += v * v;
    norm = Math.sqrt(norm);
    const f = iv.method === 'CLAMP' ? await iv.measure!(h, n) : null;
    for (let r = 0; r < n; r++) {
      const row = h.subarray(r * width, (r + 1) * width);
      let coef = iv.strength;
      if (f) coef = iv.strength - f[r];
      else if (iv.method === 'PROJECTION_CAP') {
        let along = 0;
        for (let i = 0; i < width; i++) along += row[i] * d[i];
        along /= norm;
        coef = norm === 0 ? 0 : -Math.max(0, along - iv.strength) / norm;
      }
      for (let i = 0; i < width; i++) row[i] += coef * d[i];
    }
  }
}

/** What to add at each steered hook for `tokens` about to be fed, hooks in forward order. */
async function steeringFeed(
  decoder: Decoder,
  tokens: number[],
  byHook: [string, Intervention[]][],
  schedule: NonNullable<SampleOptions['schedule']>,
): Promise<SteeringFeed> {
  const feed: SteeringFeed = new Map();
  for (const [hook, list] of byHook) {
    const n = tokens.length;
    const width = list[0].direction.length;
    const readsH = list.some((iv) => iv.method !== 'ADD');
    // Only ADD: the delta does not depend on h, so h = 0 gives it without reading the hook.
    const before = readsH ? await schedule(n, () => decoder.peek(tokens, hook, feed)) : new Float32Array(n * width);
    const after = before.slice();
    await intervene(after, n, list);
    for (let i = 0; i < after.length; i++) after[i] -= before[i];
    feed.set(hook, after);
  }
  return feed;
}

/**
 * Samples up to maxTokens tokens after `prompt` (token ids, at least one), steered by the
 * interventions, yielding each with the logits it came from; stops at the boundary token (BOS, else EOS).
 */
export async function* sampleTokens(
  model: LoadedModel,
  prompt: number[],
  o: SampleOptions,
): AsyncGenerator<SampledToken, void, undefined> {
  if (!model.decoder)
    throw new AtlasError('UNSUPPORTED', 'This model has no KV-cache graph, so it cannot generate text.');
  const decoder = model.decoder();
  const schedule = o.schedule ?? runNow;
  const order = decoder.steerableHooks;
  const byHook = new Map<string, Intervention[]>();
  for (const iv of o.interventions ?? []) {
    if (!order.includes(iv.hook))
      throw new AtlasError('UNSUPPORTED', `Hook ${iv.hook} cannot be steered; steerable hooks: ${order.join(', ')}.`);
    byHook.set(iv.hook, [...(byHook.get(iv.hook) ?? []), iv]);
  }
  const hooks = [...byHook].sort(([a], [b]) => order.indexOf(a) - order.indexOf(b));
  const boundary = model.tokenizer.bosId ?? model.tokenizer.eosId;
  const sampler = new Sampler(o.temperature, o.topp, o.seed);
  const feed = async (tokens: number[]): Promise<Float32Array> => {
    o.signal?.throwIfAborted();
    const steering = await steeringFeed(decoder, tokens, hooks, schedule);
    const logits = await schedule(tokens.length, () => decoder.feed(tokens, steering));
    if (!logits.every(Number.isFinite))
      throw new AtlasError(
        'BAD_USER_INPUT',
        'The steering overflows the model (its logits are not finite); use a smaller strength.',
      );
    return logits;
  };
  let logits = await feed(prompt);
  for (let count = 0; count < o.maxTokens;) {
    const id = sampler.sample(logits);
    if (id === boundary) return;
    yield { id, logits };
    if (++count < o.maxTokens) logits = await feed([id]);
  }
}

/** log softmax of the logits at `id`, and the k most likely tokens with theirs, most likely first. */
export function tokenLogprobs(
  logits: Float32Array,
  id: number,
  k: number,
): { logprob: number; top: { id: number; logprob: number }[] } {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const logZ = max + Math.log(sum);
  const top: { id: number; logprob: number }[] = [];
  for (let i = 0; i < logits.length; i++) {
    if (top.length < k || logits[i] > top[top.length - 1].logprob + logZ) {
      top.push({ id: i, logprob: logits[i] - logZ });
      top.sort((a, b) => b.logprob - a.logprob);
      if (top.length > k) top.pop();
    }
  }
  return { logprob: logits[id] - logZ, top };
}

export async function generate(model: LoadedModel, options: GenerateOptions = {}): Promise<Generation> {
  const o = checkOptions(options);
  const tok = model.tokenizer;
  const steps = o.steps === 0 || o.steps > model.info.contextLength ? model.info.contextLength : o.steps;
  // The token that starts a sequence also ends generation (run.c: BOS; GPT-2: <|endoftext|>).
  const boundary = tok.bosId ?? tok.eosId;
  const tokens = tok.encode(o.prompt, { bos: model.info.prependBos });
  if (tokens.length === 0) {
    if (boundary === null)
      throw new AtlasError(
        'BAD_USER_INPUT',
        'The prompt is empty and the tokenizer has no BOS or EOS token to start from; pass --prompt.',
      );
    tokens.push(boundary);
  }
  // A prompt longer than the steps is cut, as run.c prints only `steps` tokens after the first.
  if (tokens.length > steps)
    return { tokens: tokens.slice(0, steps + 1), text: tok.decode(tokens.slice(0, steps + 1)) };
  // run.c stops once the newest token would be position `steps`: steps − prompt + 1 new tokens at most.
  const maxTokens = steps - tokens.length + 1;
  for await (const t of sampleTokens(model, [...tokens], {
    maxTokens,
    temperature: o.temperature,
    topp: o.topp,
    seed: o.seed,
  }))
    tokens.push(t.id);
  return { tokens, text: tok.decode(tokens) };
}
