/**
 * `atlas build`: feature dashboards computed in one streaming pass over a corpus.
 *
 * Contexts are read and tokenized in batches; each batch runs through the model once for every
 * dictionary of the build (LoadedModel.runHooks with all their hook points), and each dictionary's
 * SaeEncoder encodes the non-BOS rows. The model run of the next batch is started before the
 * current one is encoded and accumulated, so the JavaScript bookkeeping overlaps onnxruntime's work.
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
import type { SessionSettings } from '../engine/runtime/session.js';
import { Corpus, type TokenContext } from '../engine/dashboards/corpus.js';
import { DictionaryBuild, type DictionaryDashboard } from '../engine/dashboards/dictionary-build.js';
import { CoActivation } from '../engine/dashboards/co-activation.js';
import { familyPairs, type CoActivationSet } from '../db/co-activations.js';
import { compareDictionaries } from './compare.js';

export const DEFAULT_CONTEXT = 64;
/** Default batch: about this many tokens per model run. */
const BATCH_TOKENS = 4096;

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
  database: Database, builds: DictionaryBuild[], session: SessionSettings, onCompare: () => void,
): Promise<Family[]> {
  const out: Family[] = [];
  for (const parent of builds) {
    for (const child of builds) {
      const p = parent.dict;
      const c = child.dict;
      if (p.hookPoint !== c.hookPoint || p.dIn !== c.dIn || p.dSae >= c.dSae) continue;
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

async function resolveTargets(database: Database, opts: BuildOptions): Promise<{ model: ModelRow; dicts: DictionaryRow[] }> {
  if (opts.modelId !== undefined) {
    const model = await requireModel(database, opts.modelId);
    const dicts = await listDictionaries(database, model.id);
    if (dicts.length === 0) throw new AtlasError('NOT_FOUND', `Model "${model.id}" has no dictionaries to build; import one with \`atlas import\`.`);
    return { model, dicts };
  }
  const ids = [...new Set(opts.dictionaryIds ?? [])];
  if (ids.length === 0) throw new AtlasError('BAD_USER_INPUT', 'Name a dictionary to build, or a model with --model and --all.');
  const dicts = [];
  for (const id of ids) dicts.push(await requireDictionary(database, id));
  const models = [...new Set(dicts.map((d) => d.modelId))];
  if (models.length > 1) {
    throw new AtlasError('BAD_USER_INPUT', `The dictionaries belong to different models (${models.join(', ')}); build the dictionaries of one model at a time.`);
  }
  return { model: await requireModel(database, models[0]), dicts };
}

function positiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new AtlasError('BAD_USER_INPUT', `${name} must be a positive integer, got ${v}.`);
}

export async function buildDashboards(database: Database, registry: EngineRegistry, opts: BuildOptions): Promise<BuildResult> {
  const started = performance.now();
  positiveInt('--tokens', opts.tokens);
  positiveInt('--context', opts.context);
  positiveInt('--batch', opts.batch);
  const { model: modelRow, dicts } = await resolveTargets(database, opts);
  const model = await registry.model(modelRow);
  const context = opts.context ?? Math.min(DEFAULT_CONTEXT, model.info.contextLength);
  if (context > model.info.contextLength) {
    throw new AtlasError('BAD_USER_INPUT', `--context ${context} is longer than model "${modelRow.id}"'s context of ${model.info.contextLength} tokens.`);
  }
  const batch = opts.batch ?? Math.max(1, Math.floor(BATCH_TOKENS / context));
  // The catalog row says whether the model is run with BOS (it may be registered against the checkpoint's default).
  const corpus = new Corpus(opts.corpus, { tokenizer: model.tokenizer, prependBos: modelRow.prependBos, context, maxTokens: opts.tokens });
  const builds = await Promise.all(dicts.map(async (d) => new DictionaryBuild(d, await registry.encoder(d))));
  const hooks = [...new Set(dicts.map((d) => d.hookPoint))];
  const progress = (phase: BuildProgress['phase'], contexts: number) =>
    opts.onProgress?.({
      phase, tokens: corpus.tokens, contexts, fraction: phase === 'corpus' ? corpus.fraction : phase === 'compare' ? 0 : 1,
    });
  const session = opts.session ?? { device: 'cpu', threads: 0 };
  const families = await familiesOf(database, builds, session, () => progress('compare', 0));

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
  const run = (contexts: TokenContext[]) => {
    if (contexts.length === 0) return null;
    const p = model.runHooks(contexts.map((c) => c.ids), hooks);
    p.catch(() => undefined); // awaited below; this only keeps an abandoned run from being unhandled
    return p;
  };

  let contexts = 0;
  try {
    let current = await readBatch();
    let running = run(current);
    while (running) {
      const acts = await running;
      opts.signal?.throwIfAborted();
      const next = await readBatch();
      running = run(next);
      for (const b of builds) await b.consume(current, acts.get(b.dict.hookPoint)!);
      for (const f of families) f.counts.add(f.parent.lastCodes!, f.child.lastCodes!);
      contexts += current.length;
      current = next;
      progress('corpus', contexts);
      faultPoint('build:corpus');
    }
  } finally {
    await source.return?.(undefined);
  }
  if (corpus.tokens === 0) throw new AtlasError('BAD_USER_INPUT', `The corpus ${opts.corpus} holds no text to build from.`);

  progress('logits', contexts);
  const builtAt = new Date().toISOString();
  const dashboards: DictionaryDashboard[] = [];
  for (const b of builds) {
    opts.signal?.throwIfAborted();
    dashboards.push(await b.finish(model, { corpus: opts.corpus, builtAt, session }));
  }
  opts.signal?.throwIfAborted();
  progress('publish', contexts);
  const coActivations: CoActivationSet[] = families.map((f) => ({
    parentDictionaryId: f.parent.dict.id,
    childDictionaryId: f.child.dict.id,
    pairs: f.counts.pairs,
    ...f.counts.counts(),
  }));
  await publishDashboards(database, dashboards, coActivations);
  return {
    modelId: modelRow.id,
    tokens: corpus.tokens,
    contexts,
    seconds: (performance.now() - started) / 1000,
    dictionaries: dashboards.map((d) => ({ id: d.dictionaryId, stats: d.stats })),
  };
}

