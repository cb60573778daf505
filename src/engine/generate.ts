/**
 * Text generation with llama2.c run.c's semantics: the prompt starts with BOS, `steps` counts
 * positions run through the model (prompt included), generation stops when BOS comes out,
 * temperature 0 is greedy, otherwise top-p (nucleus) sampling with run.c's xorshift RNG, so a seed
 * gives the same choices as run.c wherever float rounding agrees.
 */
import { AtlasError } from '../errors.js';
import type { LoadedModel } from './model/types.js';

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

export async function generate(model: LoadedModel, options: GenerateOptions = {}): Promise<Generation> {
  const o = checkOptions(options);
  if (!model.decoder)
    throw new AtlasError('UNSUPPORTED', 'This model has no KV-cache graph, so it cannot generate text.');
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

  const sampler = new Sampler(o.temperature, o.topp, o.seed);
  const decoder = model.decoder();
  let logits = await decoder.feed(tokens);
  for (;;) {
    const next = sampler.sample(logits);
    if (next === boundary) break;
    tokens.push(next);
    // tokens.length - 1 positions have been run; the newest token would be position `steps`.
    if (tokens.length > steps) break;
    logits = await decoder.feed([next]);
  }
  return { tokens, text: tok.decode(tokens) };
}
