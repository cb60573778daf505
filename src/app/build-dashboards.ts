/**
 * `atlas build`: feature dashboards computed in one streaming pass over a corpus.
 *
 * Contexts are read and tokenized in batches; each batch runs through the model once for every
 * dictionary of the build that shares a BOS policy (LoadedModel.runHooks with all their hook points),
 * and each dictionary's SaeEncoder encodes the non-BOS rows. Dictionaries trained with and without BOS
 * take one pass over the corpus each, since BOS changes every activation.
 * onnxruntime-node runs a session synchronously on its caller's thread, so on one thread the model
 * and the accumulation never overlap. With forwardWorker the forward pass and the encode run in a
 * worker thread (src/engine/dashboards/encode-thread.ts) with its own copy of the model and encoders,
 * batches ahead of the main thread, which tokenizes and accumulates meanwhile; models over
 * WORKER_MAX_MODEL_BYTES (which a second copy would not fit beside) never do. It is off by default:
 * at GPT-2-small size on 2 cores (bench/build-overlap.ts) the main-thread pass already ran at 0.8–1.0
 * of bare forward + encode, and the worker's pass at 0.5–0.6 (its sessions start cold, 15 s for the
 * first batch, and its onnxruntime threads contend with the accumulating thread), for 1.3 GiB more.
 * Every accumulator has a size fixed by the dictionary (features × bins, heaps, samples), never by
 * the corpus. Nothing is written until the whole corpus is done; then every dictionary is published
 * in one transaction. An AbortSignal stops the build between batches, before anything is written.
 * The accumulators of each dictionary are src/engine/dashboards/dictionary-build.ts.
 *
 * Feature families: for every two dictionaries of the build at the same hook, the narrower one the
 * parent, each feature of the wider one is paired with its best-match parent (from the stored
 * comparison, computed first when there is none), and the tokens where both fire are counted
 * (src/engine/dashboards/co-activation.ts) and published with the dashboards.
 */
import type { Database } from '../db/client.js';
import { listDictionaries, requireDictionary, requireModel, type DictionaryRow, type ModelRow } from '../db/catalog.js';
import { publishDashboards } from '../db/dashboards.js';
import type { DictionaryStats } from '../db/schema.js';
import { AtlasError } from '../errors.js';
import { faultPoint } from '../faults.js';
import type { EngineRegistry } from './registry.js';
import type { Lease } from './resident.js';
import type { SaeEncoder } from '../engine/sae/encoder.js';
import type { SessionSettings } from '../engine/runtime/session.js';
import type { LoadedModel } from '../engine/model/types.js';
import { Corpus, type TokenContext } from '../engine/dashboards/corpus.js';
import {
  DictionaryBuild,
  type BatchEncoding,
  type DictionaryDashboard,
} from '../engine/dashboards/dictionary-build.js';
import { EncodeThread } from '../engine/dashboards/encode-thread.js';
import { CoActivation } from '../engine/dashboards/co-activation.js';
import { familyPairs, type CoActivationSet } from '../db/co-activations.js';
import { compareDictionaries } from './compare.js';

export const DEFAULT_CONTEXT = 64;
/** Default batch: about this many tokens per model run. */
const BATCH_TOKENS = 4096;
/** Largest model (bytes of weights on disk) loaded a second time in the encode thread. */
const WORKER_MAX_MODEL_BYTES = 1024 ** 3;
/** Batches run ahead of the one being accumulated: with the encode thread, one more while the main thread tokenizes. */
const AHEAD_WORKER = 2;
const AHEAD_MAIN = 1;

export interface BuildProgress {
  phase: 'compare' | 'corpus' | 'logits' | 'publish';
  /** Non-BOS corpus tokens processed. */
  tokens: number;
  contexts: number;
  /** Share of the corpus (or of --tokens) done, 0..1. */
  fraction: number;
}

export interface BuildOptions {
  /** Dictionaries to build, all of one model; or give modelId for every ready dictionary of a model. */
  dictionaryIds?: string[];
  modelId?: string;
  /** A text file, a folder of text files, or a .jsonl file with a `text` field. */
  corpus: string;
  /** Stop after this many non-BOS tokens. */
  tokens?: number;
  /** Tokens per context, BOS included (default 64, at most the model's context). */
  context?: number;
  /** Contexts per model run (default about 4096 tokens' worth). */
  batch?: number;
  onProgress?: (p: BuildProgress) => void;
  signal?: AbortSignal;
  /** Session settings for the logit-lens products (default: CPU, onnxruntime's threads). */
  session?: SessionSettings;
  /** Run the forward pass and encode in a worker thread when the model is small enough (default off, see above). */
  forwardWorker?: boolean;
}

export interface BuildResult {
  modelId: string;
  tokens: number;
  contexts: number;
  seconds: number;
  dictionaries: { id: string; stats: DictionaryStats }[];
}

interface Family {
  parent: DictionaryBuild;
  child: DictionaryBuild;
  counts: CoActivation;
}

/** Co-activation counters for every (narrower, wider) pair of dictionaries read at the same hook. */
async function familiesOf(
  database: Database,
  builds: DictionaryBuild[],
  session: SessionSettings,
  onCompare: () => void,
): Promise<Family[]> {
  const out: Family[] = [];
  for (const parent of builds) {
    for (const child of builds) {
      const p = parent.dict;
      const c = child.dict;
      // Co-firing is counted token by token, so both must read the same hook in the same model run.
      if (p.hookPoint !== c.hookPoint || p.dIn !== c.dIn || p.dSae >= c.dSae || p.prependBos !== c.prependBos) continue;
      let pairs = await familyPairs(database, p.id, c.id);
      if (!pairs) {
        onCompare();
        await compareDictionaries(database, { a: p.id, b: c.id, session });
        pairs = await familyPairs(database, p.id, c.id);
      }
      if (pairs) out.push({ parent, child, counts: new CoActivation(pairs, p.dSae, c.dSae) });
    }
  }
  return out;
}

async function resolveTargets(
  database: Database,
  opts: BuildOptions,
): Promise<{ model: ModelRow; dicts: DictionaryRow[] }> {
  if (opts.modelId !== undefined) {
    const model = await requireModel(database, opts.modelId);
    const dicts = await listDictionaries(database, model.id);
    if (dicts.length === 0)
      throw new AtlasError(
        'NOT_FOUND',
        `Model "${model.id}" has no dictionaries to build; import one with \`atlas import\`.`,
      );
    return { model, dicts };
  }
  const ids = [...new Set(opts.dictionaryIds ?? [])];
  if (ids.length === 0)
    throw new AtlasError('BAD_USER_INPUT', 'Name a dictionary to build, or a model with --model and --all.');
  const dicts = [];
  for (const id of ids) dicts.push(await requireDictionary(database, id));
  const models = [...new Set(dicts.map((d) => d.modelId))];
  if (models.length > 1) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      `The dictionaries belong to different models (${models.join(', ')}); build the dictionaries of one model at a ` +
        `time.`,
    );
  }
  return { model: await requireModel(database, models[0]), dicts };
}

function positiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1))
    throw new AtlasError('BAD_USER_INPUT', `${name} must be a positive integer, got ${v}.`);
}

export async function buildDashboards(
  database: Database,
  registry: EngineRegistry,
  opts: BuildOptions,
): Promise<BuildResult> {
  const started = performance.now();
  positiveInt('--tokens', opts.tokens);
  positiveInt('--context', opts.context);
  positiveInt('--batch', opts.batch);
  const { model: modelRow, dicts } = await resolveTargets(database, opts);
  const modelLease = await registry.model(modelRow);
  const encoderLeases: Lease<SaeEncoder>[] = [];
  try {
    const encoderOf = async (d: DictionaryRow) => {
      const lease = await registry.encoder(d);
      encoderLeases.push(lease);
      return lease.value;
    };
    // The logit lens reads the decoder from the local (fetched) copy of the weights.
    const local = (d: DictionaryRow) => registry.weights(d);
    const source = await registry.modelSource(modelRow);
    const thread =
      opts.forwardWorker && source.bytes <= WORKER_MAX_MODEL_BYTES
        ? (targets: DictionaryBuild[]) =>
            EncodeThread.start({
              model: { path: source.path, tokenizerPath: source.tokenizerPath, dataDir: source.dataDir },
              dicts: targets.map((b) => b.dict),
              session: source.session,
            })
        : null;
    return await buildWith(database, modelLease.value, modelRow, dicts, started, opts, encoderOf, local, thread);
  } finally {
    modelLease.release();
    for (const l of encoderLeases) l.release();
  }
}

/** The build itself, with the model and each dictionary's encoder leased by the caller. */
async function buildWith(
  database: Database,
  model: LoadedModel,
  modelRow: ModelRow,
  dicts: DictionaryRow[],
  started: number,
  opts: BuildOptions,
  encoderOf: (d: DictionaryRow) => Promise<SaeEncoder>,
  weightsOf: (d: DictionaryRow) => Promise<string>,
  /** Starts the encode thread for these dictionaries; null: encode on this thread. */
  startThread: ((builds: DictionaryBuild[]) => EncodeThread) | null,
): Promise<BuildResult> {
  const context = opts.context ?? Math.min(DEFAULT_CONTEXT, model.info.contextLength);
  if (context > model.info.contextLength) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      `--context ${context} is longer than model "${modelRow.id}"'s context of ${model.info.contextLength} tokens.`,
    );
  }
  const batch = opts.batch ?? Math.max(1, Math.floor(BATCH_TOKENS / context));
  const builds = await Promise.all(
    dicts.map(async (d) => new DictionaryBuild({ ...d, weightsPath: await weightsOf(d) }, await encoderOf(d))),
  );
  const session = opts.session ?? { device: 'cpu', threads: 0 };
  const families = await familiesOf(database, builds, session, () =>
    opts.onProgress?.({ phase: 'compare', tokens: 0, contexts: 0, fraction: 0 }),
  );
  const policies = [...new Set(dicts.map((d) => d.prependBos))];
  let tokens = 0;
  let contexts = 0;
  const thread = startThread?.(builds) ?? null;
  try {
    for (const [pass, prependBos] of policies.entries()) {
      const group = builds.filter((_, i) => dicts[i].prependBos === prependBos);
      const groupIdx = group.map((b) => builds.indexOf(b));
      const groupFamilies = families.filter((f) => group.includes(f.parent) && group.includes(f.child));
      const corpus = new Corpus(opts.corpus, {
        tokenizer: model.tokenizer,
        prependBos,
        context,
        maxTokens: opts.tokens,
      });
      const hooks = [
        ...new Set(
          group.flatMap((b) => (b.dict.hookPointOut ? [b.dict.hookPoint, b.dict.hookPointOut] : [b.dict.hookPoint])),
        ),
      ];
      const before = contexts;
      const accumulated = (done: number) => {
        for (const f of groupFamilies) f.counts.add(f.parent.lastCodes!, f.child.lastCodes!);
        opts.onProgress?.({
          phase: 'corpus',
          tokens: corpus.tokens,
          contexts: before + done,
          fraction: (pass + corpus.fraction) / policies.length,
        });
      };
      contexts += thread
        ? await corpusPass<BatchEncoding[]>(
            corpus,
            batch,
            AHEAD_WORKER,
            (current) => thread.encode(current, hooks, groupIdx),
            async (current, encodings, done) => {
              group.forEach((b, i) => b.accumulate(current, encodings[i]));
              accumulated(done);
            },
            opts.signal,
          )
        : await corpusPass(
            corpus,
            batch,
            AHEAD_MAIN,
            (current) =>
              model.runHooks(
                current.map((c) => c.ids),
                hooks,
              ),
            async (current, acts, done) => {
              for (const b of group)
                await b.consume(
                  current,
                  acts.get(b.dict.hookPoint)!,
                  b.dict.hookPointOut ? acts.get(b.dict.hookPointOut) : undefined,
                );
              accumulated(done);
            },
            opts.signal,
          );
      if (corpus.tokens === 0)
        throw new AtlasError('BAD_USER_INPUT', `The corpus ${opts.corpus} holds no text to build from.`);
      tokens = Math.max(tokens, corpus.tokens);
    }
  } finally {
    await thread?.close();
  }
  const progress = (phase: BuildProgress['phase']) => opts.onProgress?.({ phase, tokens, contexts, fraction: 1 });

  progress('logits');
  const builtAt = new Date().toISOString();
  const dashboards: DictionaryDashboard[] = [];
  for (const b of builds) {
    opts.signal?.throwIfAborted();
    dashboards.push(await b.finish(model, { corpus: opts.corpus, builtAt, session }));
  }
  opts.signal?.throwIfAborted();
  progress('publish');
  const coActivations: CoActivationSet[] = families.map((f) => ({
    parentDictionaryId: f.parent.dict.id,
    childDictionaryId: f.child.dict.id,
    pairs: f.counts.pairs,
    ...f.counts.counts(),
  }));
  await publishDashboards(database, dashboards, coActivations);
  return {
    modelId: modelRow.id,
    tokens,
    contexts,
    seconds: (performance.now() - started) / 1000,
    dictionaries: dashboards.map((d) => ({ id: d.dictionaryId, stats: d.stats })),
  };
}

/**
 * One streaming pass: batches of contexts through `run`, up to `ahead` batches' runs started before the
 * current one is consumed (its results must not depend on a consume). Returns the number of contexts consumed.
 */
async function corpusPass<T>(
  corpus: Corpus,
  batch: number,
  ahead: number,
  run: (contexts: TokenContext[]) => Promise<T>,
  /** Called with each batch, its run's result and the number of contexts consumed once it is. */
  consume: (contexts: TokenContext[], result: T, done: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<number> {
  const source = corpus.contexts()[Symbol.asyncIterator]();
  const readBatch = async (): Promise<TokenContext[]> => {
    const out: TokenContext[] = [];
    while (out.length < batch) {
      const r = await source.next();
      if (r.done) break;
      out.push(r.value);
    }
    return out;
  };
  const running: { contexts: TokenContext[]; result: Promise<T> }[] = [];
  let contexts = 0;
  try {
    let next = await readBatch();
    for (;;) {
      while (running.length <= ahead && next.length > 0) {
        const result = run(next);
        result.catch(() => undefined); // awaited below; this only keeps an abandoned run from being unhandled
        running.push({ contexts: next, result });
        next = await readBatch();
      }
      const current = running.shift();
      if (!current) break;
      const result = await current.result;
      signal?.throwIfAborted();
      contexts += current.contexts.length;
      await consume(current.contexts, result, contexts);
      faultPoint('build:corpus');
    }
  } finally {
    await source.return?.(undefined);
  }
  return contexts;
}
