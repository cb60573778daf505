/**
 * Loads a model for running: recognises the checkpoint format, converts the weights to an ONNX graph
 * once (cached on disk under the data dir; `atlas model add` does it through convertModel, so the
 * first request does not), opens the session and returns a LoadedModel.
 *
 * Formats: a llama2.c `.bin` checkpoint (tokenizer: --tokenizer, else `tokenizer.bin`, else the only
 * `tok*.bin` beside the checkpoint); a Hugging Face folder with config.json (tokenizer: the folder's
 * tokenizer.json unless given).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { DeviceSetting } from '../../config.js';
import { AtlasError } from '../../errors.js';
import { isHfCheckpointDir, loadHfCheckpoint, readHfModelInfo } from '../checkpoints/huggingface.js';
import { openLlama2c } from '../checkpoints/llama2c.js';
import { inspectOnnxFile, loadOnnxFile } from '../runtime/onnx-file.js';
import { buildGpt2Graph, GPT2_GRAPH_VERSION } from '../onnx/gpt2-graph.js';
import { buildLlamaGraph, LLAMA_GRAPH_VERSION } from '../onnx/llama-graph.js';
import { buildNeoxGraph, NEOX_GRAPH_VERSION } from '../onnx/neox-graph.js';
import { addsBos, hookInfo } from './hooks.js';
import { GEMMA_GRAPH_VERSION, writeGemmaModel } from '../onnx/gemma-graph.js';
import type { GraphSpec } from '../onnx/proto.js';
import { writeOnnxModel } from '../onnx/write-model.js';
import { KvDecoder } from '../runtime/decoder.js';
import { HookRunner } from '../runtime/forward.js';
import { cacheKey, cachedEntry, holdEntry, MODEL_FILE } from '../runtime/onnx-cache.js';
import { loadTokenizer } from '../tokenizers/load.js';
import type {
  Architecture,
  CheckpointFormat,
  LoadedModel,
  ModelInfo,
  TransformerConfig,
  TransformerWeights,
  Unembedding,
} from './types.js';

export interface LoadModelOptions {
  tokenizerPath?: string;
  dataDir: string;
  device?: DeviceSetting;
  /** Intra-op threads; 0 or absent lets onnxruntime decide. */
  threads?: number;
  /** External weight bytes above which the model runs hooks only (default HOOKS_ONLY_BYTES). */
  hooksOnlyAboveBytes?: number;
  /** Hears conversion progress; by default it goes to stderr for checkpoints over PROGRESS_BYTES. */
  onProgress?: (message: string) => void;
}

/** Checkpoints from this size on report their conversion on stderr. */
const PROGRESS_BYTES = 256 * 1024 ** 2;
/**
 * Above this much external weight data the hook runner runs one hooks-only graph: pruned copies
 * would each load the weights again (a 2B model's 10 GB twice does not fit most machines), and
 * logits of a full batch would take gigabytes. Such models do not generate.
 */
const HOOKS_ONLY_BYTES = 1024 ** 3;

type WriteGraph = (w: TransformerWeights, path: string, progress: (message: string) => void) => void;
/**
 * Converted graphs keep their weights in external data (`model.onnx.data`), whatever their size: the
 * graphs cut at a hook (runtime/forward.ts) then reference the same data file, so cutting one reads
 * and writes only the small graph file (milliseconds, where re-encoding GPT-2 small's inline weights
 * took seconds) and takes no disk for weights.
 */
const inMemory =
  (build: (w: TransformerWeights) => GraphSpec): WriteGraph =>
  (w, path) => {
    writeOnnxModel(build(w), path, { externalDataThresholdBytes: 0 });
  };
const streamed: WriteGraph = (w, path, progress) =>
  writeGemmaModel(w, path, (done, total, bytes) =>
    progress(`converted layer ${done}/${total} (${(bytes / 1024 ** 3).toFixed(2)} GiB written)`),
  );

/** Graph builders per architecture; the version is part of the cache key. */
const LLAMA = { write: inMemory(buildLlamaGraph), version: `llama-graph-${LLAMA_GRAPH_VERSION}` };
const GEMMA = { write: streamed, version: `gemma-graph-${GEMMA_GRAPH_VERSION}` };
const BUILDERS: Record<Architecture, { write: WriteGraph; version: string }> = {
  llama: LLAMA,
  mistral: LLAMA,
  qwen2: LLAMA,
  qwen3: LLAMA,
  gpt2: { write: inMemory(buildGpt2Graph), version: `gpt2-graph-${GPT2_GRAPH_VERSION}` },
  gpt_neox: { write: inMemory(buildNeoxGraph), version: `neox-graph-${NEOX_GRAPH_VERSION}` },
  gemma2: GEMMA,
  gemma3: GEMMA,
};

/** A recognised checkpoint: what it is, its weights on demand, and the files its bytes live in. */
interface Checkpoint {
  format: CheckpointFormat;
  info: ModelInfo;
  weights(): TransformerWeights;
  /** Files whose bytes define the converted graph (hashed for the cache key). */
  files: string[];
  /** Tokenizer to use when none is given; null when it cannot be guessed. */
  defaultTokenizer: string | null;
}

function infoFromConfig(c: TransformerConfig, format: CheckpointFormat): ModelInfo {
  return {
    architecture: c.architecture,
    format,
    dModel: c.dModel,
    nLayers: c.nLayers,
    vocabSize: c.vocabSize,
    contextLength: c.contextLength,
    prependBos: addsBos(c),
    ...hookInfo(c),
  };
}

/** llama2.c tokenizers are named tokenizer.bin, or tok<vocab>.bin for custom vocabularies. */
function llama2cTokenizerBeside(path: string): string | null {
  const dir = dirname(path);
  if (existsSync(join(dir, 'tokenizer.bin'))) return join(dir, 'tokenizer.bin');
  const candidates = readdirSync(dir).filter((f) => /^tok.*\.bin$/.test(f) && join(dir, f) !== path);
  return candidates.length === 1 ? join(dir, candidates[0]) : null;
}

/** The dispatch point: recognises the format of `path`. */
function openCheckpoint(path: string): Checkpoint {
  if (!existsSync(path)) throw new AtlasError('NOT_FOUND', `Model path ${path} does not exist.`);
  if (statSync(path).isDirectory()) {
    if (!isHfCheckpointDir(path)) {
      throw new AtlasError(
        'UNSUPPORTED',
        `Folder ${path} has no config.json; a model folder must be a Hugging Face checkpoint (config.json + ` +
          `model.safetensors).`,
      );
    }
    const info = readHfModelInfo(path);
    const files = [
      'config.json',
      ...readdirSync(path)
        .filter((f) => f.endsWith('.safetensors') || f === 'model.safetensors.index.json')
        .sort(),
    ];
    return {
      format: 'huggingface',
      info,
      weights: () => loadHfCheckpoint(path),
      files: files.map((f) => join(path, f)),
      defaultTokenizer: existsSync(join(path, 'tokenizer.json')) ? path : null,
    };
  }
  if (path.endsWith('.bin')) {
    const { weights } = openLlama2c(path);
    return {
      format: 'llama2c',
      info: infoFromConfig(weights.config, 'llama2c'),
      weights: () => weights,
      files: [path],
      defaultTokenizer: llama2cTokenizerBeside(path),
    };
  }
  throw new AtlasError(
    'UNSUPPORTED',
    `Cannot tell the format of ${basename(path)}: pass a llama2.c .bin checkpoint, a Hugging Face folder with ` +
      `config.json, or a ready .onnx file.`,
  );
}

/** ONNX files read the model's config, tokenizer and external weights from beside themselves. */
const ONNX_COMPANIONS = ['config.json', 'tokenizer.json', 'tokenizer_config.json'];

/**
 * Every file loadModel reads for `path` when no tokenizer is given (the checkpoint's own files, the
 * tokenizer found beside it, an ONNX file's external data), so the set can be stored and loaded elsewhere.
 */
export function modelFiles(path: string): string[] {
  if (path.endsWith('.onnx')) {
    if (!existsSync(path)) throw new AtlasError('BAD_FILE', `ONNX model ${path} does not exist.`);
    const dir = dirname(path);
    const data = readdirSync(dir).filter((f) => f !== basename(path) && f.startsWith(basename(path)));
    return [path, ...[...ONNX_COMPANIONS, ...data].map((f) => join(dir, f)).filter((f) => existsSync(f))];
  }
  const ckpt = openCheckpoint(path);
  const beside = ckpt.format === 'huggingface' ? ['tokenizer.json', 'tokenizer_config.json'] : [];
  const tokenizer = ckpt.format === 'llama2c' && ckpt.defaultTokenizer ? [ckpt.defaultTokenizer] : [];
  return [...ckpt.files, ...beside.map((f) => join(path, f)).filter((f) => existsSync(f)), ...tokenizer];
}

/** Catalog facts without building a graph or a session (reads headers and config only). */
export function inspectModel(path: string, tokenizerPath?: string): ModelInfo {
  if (path.endsWith('.onnx')) return inspectOnnxFile(path, { tokenizer: tokenizerPath });
  return openCheckpoint(path).info;
}

function unembeddingOf(w: TransformerWeights): Unembedding {
  const c = w.config;
  if (c.gemma) {
    // Gemma's final norm gains 1 + w; tied logits use W_Eᵀ. The final soft-cap is monotonic, so the
    // logit lens ranks tokens as the model does without it.
    let W_U: Float32Array;
    if (c.tiedEmbeddings) {
      const W_E = w.tensor('embed.W_E');
      W_U = new Float32Array(W_E.length);
      for (let t = 0; t < c.vocabSize; t++)
        for (let i = 0; i < c.dModel; i++) W_U[i * c.vocabSize + t] = W_E[t * c.dModel + i];
    } else {
      W_U = w.tensor('unembed.W_U');
    }
    return {
      finalNorm: { kind: 'rms', weight: w.tensor('ln_final.w').map((v) => v + 1), bias: null, eps: c.normEps },
      W_U,
      b_U: null,
    };
  }
  return {
    finalNorm: {
      kind: c.architecture === 'gpt2' || c.architecture === 'gpt_neox' ? 'layer' : 'rms',
      weight: w.tensor('ln_final.w'),
      bias: w.has('ln_final.b') ? w.tensor('ln_final.b') : null,
      eps: c.normEps,
    },
    W_U: w.tensor('unembed.W_U'),
    b_U: w.has('unembed.b_U') ? w.tensor('unembed.b_U') : null,
  };
}

/** The cache folder of the checkpoint's converted graph, converting it first when absent. */
async function convertedFolder(path: string, ckpt: Checkpoint, opts: LoadModelOptions): Promise<string> {
  const builder = BUILDERS[ckpt.info.architecture as Architecture];
  const key = await cacheKey(ckpt.files, builder.version);
  const big = ckpt.files.reduce((sum, f) => sum + statSync(f).size, 0) >= PROGRESS_BYTES;
  const progress =
    opts.onProgress ??
    (big ? (m: string) => process.stderr.write(`atlas: ${basename(path)}: ${m}\n`) : () => undefined);
  return cachedEntry(opts.dataDir, key, (dir) => {
    const started = Date.now();
    progress('converting to ONNX once (cached for later loads)');
    builder.write(ckpt.weights(), join(dir, MODEL_FILE), progress);
    progress(`converted in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
}

/**
 * Converts a checkpoint to its ONNX graph in the cache now (nothing for a ready .onnx file, or when
 * the cache has it), so that loading it later only opens the session. Returns the graph's cache
 * folder (<dataDir>/onnx/<key>, holding MODEL_FILE and its external data), or null for a .onnx file.
 */
export async function convertModel(
  path: string,
  opts: Pick<LoadModelOptions, 'dataDir' | 'onProgress'>,
): Promise<string | null> {
  if (path.endsWith('.onnx')) return null;
  return convertedFolder(path, openCheckpoint(path), opts);
}

/**
 * The name of the cache folder a checkpoint's converted graph has (<dataDir>/onnx/<key>), read from its
 * bytes without converting; null for a ready .onnx file, which is run as it is.
 */
export async function convertedGraphKey(path: string): Promise<string | null> {
  if (path.endsWith('.onnx')) return null;
  const ckpt = openCheckpoint(path);
  return cacheKey(ckpt.files, BUILDERS[ckpt.info.architecture as Architecture].version);
}

/** The version of the graph builder of an architecture: part of every converted graph's cache key. */
export function graphBuilderVersion(architecture: string): string | null {
  return BUILDERS[architecture as Architecture]?.version ?? null;
}

export async function loadModel(path: string, opts: LoadModelOptions): Promise<LoadedModel> {
  // A ready ONNX file is run as exported: no weights to convert, its outputs name the hooks.
  if (path.endsWith('.onnx'))
    return loadOnnxFile(
      path,
      { device: opts.device ?? 'auto', threads: opts.threads ?? 0 },
      { tokenizer: opts.tokenizerPath },
    );
  const ckpt = openCheckpoint(path);
  const tokenizerPath = opts.tokenizerPath ?? ckpt.defaultTokenizer;
  if (!tokenizerPath) {
    throw new AtlasError(
      'BAD_USER_INPUT',
      `No tokenizer found beside ${path} (looked for tokenizer.bin, a single tok*.bin, or tokenizer.json); pass one ` +
        `with --tokenizer.`,
    );
  }
  const tokenizer = loadTokenizer(tokenizerPath);
  if (tokenizer.vocabSize > ckpt.info.vocabSize) {
    throw new AtlasError(
      'BAD_FILE',
      `Tokenizer ${tokenizerPath} has ${tokenizer.vocabSize} tokens but the model ${path} only ` +
        `${ckpt.info.vocabSize}; they do not belong together.`,
    );
  }

  const folder = await convertedFolder(path, ckpt, opts);
  const dataFile = join(folder, `${MODEL_FILE}.data`);
  const hooksOnly =
    (existsSync(dataFile) ? statSync(dataFile).size : 0) > (opts.hooksOnlyAboveBytes ?? HOOKS_ONLY_BYTES);
  // Pruning in this process spares the folder while the model is loaded: the runner cuts graphs from it later.
  const release = holdEntry(folder);
  const runner = await HookRunner.open({
    folder,
    info: ckpt.info,
    settings: { device: opts.device ?? 'auto', threads: opts.threads ?? 0 },
    hooksOnly,
  }).catch((e: unknown) => {
    release();
    throw e;
  });

  let unembedding: Unembedding | null = null;
  return {
    info: ckpt.info,
    tokenizer,
    executionProvider: runner.provider,
    runHooks: (batch, hooks, runOpts) => runner.run(batch, hooks, runOpts),
    ...(hooksOnly ? {} : { decoder: () => new KvDecoder(runner, ckpt.info.contextLength, ckpt.info.vocabSize) }),
    // Read from the checkpoint when first asked (the logit lens), not at every load.
    unembedding: () => (unembedding ??= unembeddingOf(ckpt.weights())),
    close: () => runner.close().finally(release),
  };
}
