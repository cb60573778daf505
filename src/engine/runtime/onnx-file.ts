/**
 * A ready `.onnx` language model exported elsewhere, with a tokenizer.json beside it or given.
 * Its hook points come from its output names:
 *
 *   - outputs already named by TransformerLens hook points (`blocks.{L}.hook_resid_pre`,
 *     `ln_final.hook_normalized`, `hook_embed`, ...) of shape [batch, seq, width] are served as they are;
 *   - `hidden_states` of rank 4 [n_layers + 1, batch, seq, d], or per-layer outputs
 *     `hidden_states.{i}` / `hidden_states_{i}` / `hidden_states{i}` [batch, seq, d], follow
 *     Hugging Face's output_hidden_states: entry i < n_layers is the input of block i, so it is
 *     served as `blocks.{i}.hook_resid_pre` and, for i ≥ 1, `blocks.{i-1}.hook_resid_post`; the
 *     last entry has the final norm applied (GPT-2's ln_f, LLaMA's norm), so it is
 *     `ln_final.hook_normalized`, and the last block's resid_post is not available.
 *
 * Its inputs are fed by feeds.ts, like every graph the atlas runs; sequences are right-padded. A config.json beside the
 * file (as optimum writes it), when present,
 * supplies the context length and the BOS policy; options override both.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AtlasError } from '../../errors.js';
import type { HookBatch, LoadedModel, ModelInfo, RunHooksOptions } from '../model/types.js';
import { decodeModel } from '../onnx/prune.js';
import { validateBatch, validateHooks } from './forward.js';
import { batchFeeds, metaShape, planInputs } from './feeds.js';
import { createSession, type SessionSettings } from './session.js';
import { loadTokenizer } from '../tokenizers/load.js';
import type { Tokenizer } from '../tokenizers/types.js';

export interface OnnxFileOptions {
  /** tokenizer.json (or a folder holding one); default: tokenizer.json beside the model. */
  tokenizer?: string;
  /** Overrides config.json's max_position_embeddings / n_positions. */
  contextLength?: number;
  /** Overrides the BOS policy (default: config.json's model_type, else whether the tokenizer adds BOS). */
  prependBos?: boolean;
}

/** Where a hook's activations come from: an output, or one entry of a stacked `hidden_states`. */
export interface HookSource {
  output: string;
  /** Index along the leading axis of a rank-4 output. */
  index?: number;
}

export interface OutputMeta {
  name: string;
  /** Empty when the file does not say. */
  shape: readonly (number | string)[];
}

export interface OnnxHookLayout {
  sources: Map<string, HookSource>;
  nLayers: number;
  /** null when no output fixes it. */
  dModel: number | null;
  vocabSize: number | null;
  hasLogits: boolean;
}

const HOOK_OUTPUT = /^blocks\.(\d+)\.[A-Za-z0-9_.]+$/;
const PER_LAYER_HIDDEN = /^hidden_states[._]?(\d+)$/;
const FINAL_NORM_HOOK = 'ln_final.hook_normalized';
/** Hooks before the first block. */
const EMBED_HOOKS = new Set(['hook_embed', 'hook_pos_embed']);
const LEADING_LAYER = /^blocks\.(\d+)\./;

function layerOf(hook: string): number {
  if (EMBED_HOOKS.has(hook)) return -1;
  const m = LEADING_LAYER.exec(hook);
  return m ? Number(m[1]) : Number.POSITIVE_INFINITY;
}

/** Maps output names (and shapes) to hook points as documented above. */
export function hookLayout(outputs: OutputMeta[], file = 'the ONNX file'): OnnxHookLayout {
  const sources = new Map<string, HookSource>();
  let nLayers = 0;
  let dModel: number | null = null;
  const noteWidth = (shape: readonly (number | string)[]) => {
    const last = shape[shape.length - 1];
    if (typeof last === 'number' && last > 0) dModel ??= last;
  };

  for (const o of outputs) {
    const m = HOOK_OUTPUT.exec(o.name);
    if (m || o.name === FINAL_NORM_HOOK || EMBED_HOOKS.has(o.name)) {
      // per-head hooks ([b, s, h, d]) are not residual-width
      if (o.shape.length !== 0 && o.shape.length !== 3) continue;
      sources.set(o.name, { output: o.name });
      if (m) nLayers = Math.max(nLayers, Number(m[1]) + 1);
      if (o.name.endsWith('hook_resid_pre') || o.name.endsWith('hook_resid_post') || o.name.endsWith('hook_resid_mid'))
        noteWidth(o.shape);
    }
  }

  const stacked = outputs.find((o) => o.name === 'hidden_states');
  const perLayer = outputs
    .map((o) => ({ o, m: PER_LAYER_HIDDEN.exec(o.name) }))
    .filter((x) => x.m)
    .map((x) => ({ output: x.o, index: Number(x.m![1]) }))
    .sort((a, b) => a.index - b.index);
  let entries: { source: HookSource; index: number }[] = [];
  if (stacked) {
    if (stacked.shape.length !== 4 || typeof stacked.shape[0] !== 'number') {
      throw new AtlasError(
        'UNSUPPORTED',
        `${file}: output "hidden_states" has shape [${stacked.shape.join(', ')}]; a stacked [n_layers + 1, batch, ` +
          `seq, d] with a fixed first dimension is needed.`,
      );
    }
    noteWidth(stacked.shape);
    entries = Array.from({ length: stacked.shape[0] }, (_, i) => ({
      source: { output: 'hidden_states', index: i },
      index: i,
    }));
  } else if (perLayer.length > 0) {
    perLayer.forEach((p, i) => {
      if (p.index !== i)
        throw new AtlasError(
          'BAD_FILE',
          `${file}: per-layer hidden state outputs must be numbered 0..N without gaps; found ` +
            `${perLayer.map((x) => x.output.name).join(', ')}.`,
        );
      noteWidth(p.output.shape);
    });
    entries = perLayer.map((p) => ({ source: { output: p.output.name }, index: p.index }));
  }
  if (entries.length >= 2) {
    const n = entries.length - 1;
    nLayers = Math.max(nLayers, n);
    for (const { source, index } of entries) {
      const add = (hook: string) => {
        if (!sources.has(hook)) sources.set(hook, source);
      };
      if (index < n) add(`blocks.${index}.hook_resid_pre`);
      if (index >= 1 && index < n) add(`blocks.${index - 1}.hook_resid_post`);
      if (index === n) add(FINAL_NORM_HOOK);
    }
  }

  const logits = outputs.find((o) => o.name === 'logits');
  const vocab = logits?.shape[logits.shape.length - 1];
  return {
    sources,
    nLayers,
    dModel,
    vocabSize: typeof vocab === 'number' ? vocab : null,
    hasLogits: logits !== undefined,
  };
}

function readConfig(modelPath: string): Record<string, unknown> {
  const path = join(dirname(modelPath), 'config.json');
  if (!existsSync(path)) return {};
  try {
    const v = JSON.parse(readFileSync(path, 'utf8'));
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    throw new AtlasError('BAD_FILE', `${path} (beside the ONNX model) is not valid JSON.`);
  }
}

function tokenizerFor(path: string, opts: OnnxFileOptions): Tokenizer {
  const tokenizerPath = opts.tokenizer ?? join(dirname(path), 'tokenizer.json');
  if (!existsSync(tokenizerPath)) {
    throw new AtlasError(
      'BAD_FILE',
      `No tokenizer for ${path}: ${tokenizerPath} does not exist; pass the model's tokenizer.json (--tokenizer).`,
    );
  }
  return loadTokenizer(tokenizerPath);
}

/** Catalog facts from the output names and shapes, config.json beside the file, and the tokenizer. */
function describe(
  path: string,
  outputs: OutputMeta[],
  tokenizer: Tokenizer,
  opts: OnnxFileOptions,
): { info: ModelInfo; layout: OnnxHookLayout } {
  const layout = hookLayout(outputs, path);
  if (layout.sources.size === 0) {
    throw new AtlasError(
      'UNSUPPORTED',
      `${path} has no output named by a hook point (blocks.{L}.hook_*) or hidden_states; its outputs are: ` +
        `${outputs.map((o) => o.name).join(', ')}.`,
    );
  }
  const config = readConfig(path);
  const num = (...keys: string[]) =>
    keys.map((k) => config[k]).find((v): v is number => typeof v === 'number' && v > 0);
  const contextLength = opts.contextLength ?? num('max_position_embeddings', 'n_positions', 'n_ctx');
  if (!contextLength) {
    throw new AtlasError(
      'BAD_FILE',
      `The context length of ${path} is unknown: put the model's config.json beside it or pass the context length.`,
    );
  }
  const dModel = layout.dModel ?? num('hidden_size', 'n_embd', 'd_model');
  if (!dModel)
    throw new AtlasError(
      'BAD_FILE',
      `The residual width of ${path} is unknown: its hook outputs have no fixed last dimension and no config.json ` +
        `says hidden_size.`,
    );
  const modelType = config.model_type;
  const prependBos =
    opts.prependBos ??
    (modelType === 'llama'
      ? true
      : modelType === 'gpt2'
        ? false
        : tokenizer.bosId !== null && tokenizer.encode('a')[0] === tokenizer.bosId);
  const hookPoints = [...layout.sources.keys()].sort((a, b) => layerOf(a) - layerOf(b) || a.localeCompare(b));
  const declaredWidth = new Map<string, number>();
  for (const o of outputs) {
    const last = o.shape[o.shape.length - 1];
    if (typeof last === 'number' && last > 0) declaredWidth.set(o.name, last);
  }
  const info: ModelInfo = {
    architecture: 'onnx',
    format: 'onnx',
    dModel,
    nLayers: layout.nLayers || (num('num_hidden_layers', 'n_layer') ?? 0),
    vocabSize: layout.vocabSize ?? num('vocab_size') ?? tokenizer.vocabSize,
    contextLength,
    prependBos,
    hookPoints,
    // An output's declared last dimension where fixed; hooks read from hidden states are d_model wide.
    hookWidths: Object.fromEntries(hookPoints.map((h) => [h, declaredWidth.get(h) ?? dModel])),
  };
  return { info, layout };
}

/** Catalog facts without a session: reads the graph's declared outputs with onnx-proto. */
export function inspectOnnxFile(path: string, opts: OnnxFileOptions = {}): ModelInfo {
  if (!existsSync(path)) throw new AtlasError('BAD_FILE', `ONNX model ${path} does not exist.`);
  let model;
  try {
    model = decodeModel(readFileSync(path));
  } catch (e) {
    throw new AtlasError('BAD_FILE', `${path} is not a readable ONNX model: ${(e as Error).message}`);
  }
  const outputs = (model.graph?.output ?? []).map((o) => ({
    name: o.name ?? '',
    shape: (o.type?.tensorType?.shape?.dim ?? []).map((d) =>
      d.dimParam ? d.dimParam : d.dimValue != null ? Number(d.dimValue) : '?',
    ),
  }));
  return describe(path, outputs, tokenizerFor(path, opts), opts).info;
}

/** Opens a ready ONNX model and its tokenizer as a LoadedModel. */
export async function loadOnnxFile(
  path: string,
  settings: SessionSettings,
  opts: OnnxFileOptions = {},
): Promise<LoadedModel> {
  if (!existsSync(path)) throw new AtlasError('BAD_FILE', `ONNX model ${path} does not exist.`);
  const tokenizer = tokenizerFor(path, opts);
  const { session, provider } = await createSession(path, settings);
  try {
    const plan = planInputs(session, path);
    const { info, layout } = describe(
      path,
      session.outputMetadata.map((m) => ({ name: m.name, shape: metaShape(m) })),
      tokenizer,
      opts,
    );

    const runHooks = async (
      batch: number[][],
      hooks: string[],
      runOpts: RunHooksOptions = {},
    ): Promise<Map<string, HookBatch>> => {
      const wanted = validateHooks(hooks, info);
      const seqs = validateBatch(batch, info, runOpts);
      const B = seqs.length;
      const S = Math.max(...seqs.map((s) => s.length));
      const feeds = batchFeeds(plan, seqs);
      const outputs = [...new Set(wanted.map((h) => layout.sources.get(h)!.output))];
      const results = await session.run(feeds, outputs);
      const out = new Map<string, HookBatch>();
      for (const h of wanted) {
        const src = layout.sources.get(h)!;
        const t = results[src.output];
        const data = t.data as Float32Array;
        const dims = t.dims as readonly number[];
        if (src.index === undefined) {
          if (dims.length !== 3 || dims[0] !== B || dims[1] !== S)
            throw new AtlasError(
              'BAD_FILE',
              `${path}: output "${src.output}" has shape [${dims.join(', ')}], not [${B}, ${S}, d].`,
            );
          out.set(h, { dims: [B, S, dims[2]], data });
        } else {
          const size = B * S * dims[3];
          out.set(h, { dims: [B, S, dims[3]], data: data.slice(src.index * size, (src.index + 1) * size) });
        }
      }
      return out;
    };

    return {
      info,
      tokenizer,
      executionProvider: provider,
      runHooks,
      unembedding: () => null,
      close: () => session.release(),
    };
  } catch (e) {
    await session.release();
    throw e;
  }
}
