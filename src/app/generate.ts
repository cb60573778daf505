/**
 * Text generation: `atlas generate` from a checkpoint on disk (run.c semantics for llama2.c files),
 * and the API's `generate` on a catalog model, steered by dictionary features (engine/generate.ts has
 * the methods' formulas) beside the same sampling without steering. Model calls go through the
 * encoding service's per-model queue, one decoding step at a time.
 */
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { requireDictionary, requireModel, type DictionaryRow, type ModelRow } from '../db/catalog.js';
import { getDecoders } from '../db/features.js';
import { AtlasError } from '../errors.js';
import {
  generate,
  sampleTokens,
  tokenLogprobs,
  type GenerateOptions,
  type Intervention,
  type SteeringMethod,
} from '../engine/generate.js';
import { loadModel } from '../engine/model/load.js';
import type { LoadedModel } from '../engine/model/types.js';
import type { EncodingService } from './encode.js';

/** Alternatives listed per generated token. */
const TOP_ALTERNATIVES = 5;

export async function generateFromCheckpoint(
  config: Pick<Config, 'dataDir' | 'device' | 'threads'>,
  checkpoint: { path: string; tokenizerPath?: string },
  opts: GenerateOptions,
): Promise<string> {
  const model = await loadModel(checkpoint.path, {
    tokenizerPath: checkpoint.tokenizerPath,
    dataDir: config.dataDir,
    device: config.device,
    threads: config.threads,
  });
  try {
    return (await generate(model, opts)).text;
  } finally {
    await model.close();
  }
}

export interface SteeringRequest {
  dictionary: string;
  index: number;
  strength: number;
  method: SteeringMethod;
}

export interface GenerateRequest {
  model: string;
  prompt: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed?: number | null;
  steering?: SteeringRequest[] | null;
  withDefault: boolean;
}

export interface TokenChoice {
  tokenId: number;
  text: string;
  logprob: number;
}

export interface GeneratedToken extends TokenChoice {
  /** The most likely tokens at this step, most likely first. */
  topAlternatives: TokenChoice[];
}

export interface GenerationResult {
  /** The generated continuation (the prompt not included). */
  text: string;
  tokens: GeneratedToken[];
  /** The same sampling without steering, when asked for. */
  default: GenerationResult | null;
}

/** Which run a streamed token belongs to. */
export type GenerationRun = 'STEERED' | 'DEFAULT';

interface GenerateHooks {
  /** Stops the runs before their next model call. */
  signal?: AbortSignal;
  /** Hears each token as it is sampled. */
  onToken?: (run: GenerationRun, token: GeneratedToken, index: number) => void;
}

function checkRequest(req: GenerateRequest, maxTokens: number): number {
  if (!Number.isInteger(req.maxTokens) || req.maxTokens < 1)
    throw new AtlasError('BAD_USER_INPUT', `maxTokens must be a positive integer, got ${req.maxTokens}.`);
  if (req.maxTokens > maxTokens)
    throw new AtlasError(
      'INPUT_TOO_LONG',
      `maxTokens is ${req.maxTokens}; at most ${maxTokens} tokens per generation (ATLAS_MAX_GENERATE_TOKENS).`,
      { maxTokens: req.maxTokens, limit: maxTokens },
    );
  if (!Number.isFinite(req.temperature) || req.temperature < 0)
    throw new AtlasError('BAD_USER_INPUT', `temperature must be a finite number >= 0, got ${req.temperature}.`);
  if (!Number.isFinite(req.topP) || req.topP <= 0 || req.topP > 1)
    throw new AtlasError('BAD_USER_INPUT', `topP must be in (0, 1], got ${req.topP}.`);
  if (req.seed !== undefined && req.seed !== null && (!Number.isInteger(req.seed) || req.seed < 1))
    throw new AtlasError('BAD_USER_INPUT', `seed must be a positive integer, got ${req.seed}.`);
  return req.seed ?? 1 + Math.floor(Math.random() * 0x7fffffff);
}

/** The interventions of a request, checked against the model: features that exist, hooks it can steer. */
async function interventionsOf(
  database: Database,
  encoding: EncodingService,
  modelId: string,
  model: LoadedModel,
  steering: SteeringRequest[],
): Promise<Intervention[]> {
  const dicts = new Map<string, DictionaryRow>();
  const steerable = model.decoder?.().steerableHooks ?? [];
  for (const s of steering) {
    if (!Number.isFinite(s.strength))
      throw new AtlasError('BAD_USER_INPUT', `Steering strength must be a finite number, got ${s.strength}.`);
    const dict = dicts.get(s.dictionary) ?? (await requireDictionary(database, s.dictionary));
    dicts.set(dict.id, dict);
    if (dict.modelId !== modelId)
      throw new AtlasError(
        'BAD_USER_INPUT',
        `Dictionary "${dict.id}" reads ${dict.hookPoint} of model "${dict.modelId}", not of "${modelId}"; steer ` +
          `a model with its own dictionaries.`,
        { dictionary: dict.id, model: dict.modelId },
      );
    if (!Number.isInteger(s.index) || s.index < 0 || s.index >= dict.dSae)
      throw new AtlasError(
        'NOT_FOUND',
        `Dictionary "${dict.id}" has no feature ${s.index}; indices run 0..${dict.dSae - 1}.`,
      );
    if (!steerable.includes(dict.hookPoint))
      throw new AtlasError(
        'UNSUPPORTED',
        `Dictionary "${dict.id}" reads ${dict.hookPoint}, which generation cannot steer; steerable hooks are the ` +
          `residual-stream ones: ${steerable.join(', ') || 'none on this model'}.`,
      );
  }
  const rows = await getDecoders(
    database,
    steering.map((s) => ({ dictionaryId: s.dictionary, index: s.index })),
  );
  return steering.map((s) => {
    const dict = dicts.get(s.dictionary)!;
    const row = rows.get(`${s.dictionary}:${s.index}`);
    if (!row) throw new AtlasError('NOT_FOUND', `No decoder row stored for feature ${s.dictionary}:${s.index}.`);
    return {
      hook: dict.hookPoint,
      method: s.method,
      strength: s.strength,
      direction: Float32Array.from(row),
      measure: (h, n) => encoding.featureActivation(dict, s.index, h, n),
    };
  });
}

/** A checked request, ready to run: the model loaded, the interventions resolved, the prompt tokenized. */
export interface PreparedGeneration {
  run(hooks?: GenerateHooks): Promise<GenerationResult>;
}

export async function prepareGeneration(
  database: Database,
  encoding: EncodingService,
  req: GenerateRequest,
): Promise<PreparedGeneration> {
  const seed = checkRequest(req, encoding.maxGenerateTokens);
  const row = await requireModel(database, req.model);
  // The model stays resident (leased) until the one run ends: its KV decoder holds its sessions.
  const lease = await encoding.registry.model(row);
  try {
    const run = await prepareWith(database, encoding, req, seed, row, lease.value);
    return { run: (hooks) => run(hooks).finally(() => lease.release()) };
  } catch (e) {
    lease.release();
    throw e;
  }
}

async function prepareWith(
  database: Database,
  encoding: EncodingService,
  req: GenerateRequest,
  seed: number,
  row: ModelRow,
  model: LoadedModel,
): Promise<(hooks?: GenerateHooks) => Promise<GenerationResult>> {
  const interventions = await interventionsOf(database, encoding, row.id, model, req.steering ?? []);
  const prompt = encoding.tokenize(model, row.prependBos, req.prompt).ids;
  const room = model.info.contextLength - prompt.length;
  if (room < 1)
    throw new AtlasError(
      'INPUT_TOO_LONG',
      `The prompt fills the model's context of ${model.info.contextLength} tokens; shorten it.`,
    );
  const tok = model.tokenizer;
  const promptText = tok.decode(prompt);
  const choice = (tokenId: number, logprob: number): TokenChoice => ({
    tokenId,
    text: tok.tokenText(tokenId),
    logprob,
  });
  const one = async (which: GenerationRun, steer: Intervention[], hooks: GenerateHooks): Promise<GenerationResult> => {
    const tokens: GeneratedToken[] = [];
    const sampled = sampleTokens(model, prompt, {
      maxTokens: Math.min(req.maxTokens, room),
      temperature: req.temperature,
      topp: req.topP,
      seed,
      interventions: steer,
      schedule: (n, step) => encoding.modelStep(row, n, step),
      signal: hooks.signal,
    });
    for await (const { id, logits } of sampled) {
      const { logprob, top } = tokenLogprobs(logits, id, TOP_ALTERNATIVES);
      const token = { ...choice(id, logprob), topAlternatives: top.map((t) => choice(t.id, t.logprob)) };
      hooks.onToken?.(which, token, tokens.length);
      tokens.push(token);
    }
    // Decoding the whole sequence keeps a tokenizer's joins (leading spaces, byte pieces) right.
    const whole = tok.decode([...prompt, ...tokens.map((t) => t.tokenId)]);
    const text = whole.startsWith(promptText)
      ? whole.slice(promptText.length)
      : tok.decode(tokens.map((t) => t.tokenId));
    return { text, tokens, default: null };
  };
  return async (hooks = {}) => {
    const [steered, plain] = await Promise.all([
      one('STEERED', interventions, hooks),
      req.withDefault ? one('DEFAULT', [], hooks) : Promise.resolve(null),
    ]);
    return { ...steered, default: plain };
  };
}

/** generate: the steered sampling and, when asked, the same sampling without steering (same seed). */
export async function generateWith(
  database: Database,
  encoding: EncodingService,
  req: GenerateRequest,
): Promise<GenerationResult> {
  return (await prepareGeneration(database, encoding, req)).run();
}

/** One event of generateStream: a token of one run as it is sampled, or (last) the whole generation. */
export interface GenerationEvent {
  run: GenerationRun;
  index: number;
  token: GeneratedToken | null;
  done: GenerationResult | null;
  /** Set on a last event when the runs failed after the stream began (the resolver raises it as the event's error). */
  error?: unknown;
}

/**
 * generateStream: checks the request first (errors before any event), then yields tokens as the runs
 * sample them and finally the finished generation (or the error that stopped them). Leaving the
 * iteration early (a client that unsubscribes) aborts the runs before their next model call.
 */
export async function streamGeneration(
  database: Database,
  encoding: EncodingService,
  req: GenerateRequest,
): Promise<AsyncGenerator<GenerationEvent, void, undefined>> {
  const prepared = await prepareGeneration(database, encoding, req);
  return (async function* () {
    const stop = new AbortController();
    const events: GenerationEvent[] = [];
    let wake: (() => void) | null = null;
    let finished = false;
    let failure: unknown = null;
    const push = (e: GenerationEvent) => {
      events.push(e);
      wake?.();
    };
    const work = prepared
      .run({ signal: stop.signal, onToken: (run, token, index) => push({ run, index, token, done: null }) })
      .then(
        (g) => push({ run: 'STEERED', index: g.tokens.length, token: null, done: g }),
        (e: unknown) => {
          failure = e;
        },
      )
      .finally(() => {
        finished = true;
        wake?.();
      });
    try {
      for (;;) {
        const next = events.shift();
        if (next) {
          yield next;
          continue;
        }
        if (finished) {
          if (failure) yield { run: 'STEERED', index: 0, token: null, done: null, error: failure };
          return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      stop.abort();
      await work;
    }
  })();
}
