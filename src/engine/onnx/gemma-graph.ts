/**
 * ONNX graph (opset 17) of Gemma 2 and Gemma 3 text models, with the inputs and KV-cache outputs of
 * layers.ts and TransformerLens's Gemma hook points. Semantics from transformers' modeling_gemma2.py
 * and modeling_gemma3.py:
 *
 *   h = W_E[ids] · embedScale                         (√d_model rounded to the weights' dtype)
 *   RMSNorm_w(x) = x / √(mean(x²) + eps) · (1 + w)
 *   per block:  q, k, v = x·W_Q, x·W_K, x·W_V with x = RMSNorm_ln1(h)      (attn.hook_q/k/v, [heads·d_head])
 *               gemma3: q, k ← RMSNorm over each head's d_head (q_norm, k_norm)
 *               q, k rotated (rotate_half) with the layer's base θ, positions / linear factor
 *               s = q·kᵀ · query_pre_attn_scalar^-½;  s ← tanh(s / cap)·cap when attn soft-capped;
 *               causal mask, on sliding layers also q − k < sliding_window; softmax; z = p·v (attn.hook_z)
 *               a = RMSNorm_ln1_post(z·W_O)                                (hook_attn_out)
 *               m = h + a                                                  (hook_resid_mid)
 *               n = m / √(mean(m²) + eps)                                  (ln2.hook_normalized)
 *               g = (n·(1 + w_ln2))·W_gate (mlp.hook_pre), u = (n·(1 + w_ln2))·W_in
 *               f = gelu_tanh(g) ⊙ u                                       (mlp.hook_post)
 *               h = m + RMSNorm_ln2_post(f·W_out)                          (hook_mlp_out, hook_resid_post)
 *   logits = RMSNorm_final(h)·W_Eᵀ (tied) or ·W_U;  logits ← tanh(logits / cap)·cap when final soft-capped
 *
 * As in TransformerLens: hook_q/k/v are the projections before q/k norm and rotation (hook_k, hook_v
 * have the key/value heads' width under GQA), ln2.hook_normalized excludes the norm's gain (which
 * TransformerLens folds into W_gate/W_in), and hook_attn_out / hook_mlp_out follow the post-norms.
 * Each residual-stream hook adds its steering input (layers.ts) before the layers after it read it.
 * Large weights stream into external data when the builder has an ExternalDataWriter, as float32
 * whatever the checkpoint's dtype: onnxruntime's CPU MatMul on float16 weights measured 25% slower
 * than on float32 here (2304×9216, 128 rows) and would round activations to float16.
 */
import { writeFileSync } from 'node:fs';
import { AtlasError } from '../../errors.js';
import type { TransformerWeights } from '../model/types.js';
import { hookLayout, type GemmaHookKind } from '../model/hooks.js';
import { serializeModel, valueInfo, type GraphSpec } from './proto.js';
import {
  GraphBuilder,
  attention,
  checkedTensor,
  gelu,
  positionsAndMask,
  splitHeads,
  steered,
  transformerIO,
} from './layers.js';
import { ExternalDataWriter } from './write-model.js';

/** Bump when the graph changes: it is part of the on-disk cache key. */
export const GEMMA_GRAPH_VERSION = 2;

/** Rows of the embedding written per chunk when streaming it. */
const EMBED_CHUNK_ROWS = 8192;

/**
 * Builds the graph. With `g.external` set, every large initializer is already in the data file
 * when this returns; `onProgress` hears once per layer.
 */
export function buildGemmaGraph(
  w: TransformerWeights,
  g = new GraphBuilder(),
  onProgress?: (done: number, total: number) => void,
): GraphSpec {
  const c = w.config;
  const gm = c.gemma;
  if (!gm || (c.architecture !== 'gemma2' && c.architecture !== 'gemma3')) {
    throw new AtlasError('UNSUPPORTED', `The gemma graph builder cannot build architecture "${c.architecture}".`);
  }
  const { dModel: d, nHeads, nKvHeads, dHead, dMlp, vocabSize } = c;
  const scalar = (hint: string, v: number) => g.float(g.t(hint), [], new Float32Array([v]));
  const matrix = (name: string, rows: number, cols: number) =>
    g.float(name, [rows, cols], checkedTensor(w, name, [rows, cols]));
  const masks = positionsAndMask(g);
  const { positions } = masks;
  const eps = g.float('const.eps', [], new Float32Array([c.normEps]));

  /** x / √(mean(x²) + eps), over the last axis. */
  const normalize = (x: string, name?: string): string => {
    const meanSq = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    return g.op('Div', [x, g.op('Sqrt', [g.op('Add', [meanSq, eps])])], {}, name);
  };
  /** Gemma's gain is 1 + w, added in float32 as HF does. */
  const gain = (weightName: string, n: number): string =>
    g.float(
      `${weightName}+1`,
      [n],
      checkedTensor(w, weightName, [n]).map((v) => v + 1),
    );
  const rmsNorm = (x: string, weightName: string, n: number, output?: string): string =>
    g.op('Mul', [normalize(x), gain(weightName, n)], {}, output);

  // cos/sin of position · inverse frequency [seq, dHead/2], once per distinct (θ, factor).
  const ropeTables = new Map<string, { cos: string; sin: string }>();
  const positionsF = g.op('Unsqueeze', [
    g.op('Cast', [positions], { to: 1 /* FLOAT */ }),
    g.ints('const.rope_axis', [1]),
  ]);
  const ropeFor = (theta: number, factor: number) => {
    const key = `${theta}/${factor}`;
    let t = ropeTables.get(key);
    if (!t) {
      const inv = Float32Array.from({ length: dHead / 2 }, (_, i) => Math.pow(theta, (-2 * i) / dHead) / factor);
      const angles = g.op('Mul', [positionsF, g.float(g.t('rope.inv_freq'), [dHead / 2], inv)]);
      t = { cos: g.op('Cos', [angles]), sin: g.op('Sin', [angles]) };
      ropeTables.set(key, t);
    }
    return t;
  };
  /** rotate_half rotation of x [batch, heads, seq, dHead]. */
  const rope = (x: string, r: { cos: string; sin: string }): string => {
    const [a, b] = g.ops('Split', [x], [g.t('rope_a'), g.t('rope_b')], { axis: 3 });
    const first = g.op('Sub', [g.op('Mul', [a, r.cos]), g.op('Mul', [b, r.sin])]);
    const second = g.op('Add', [g.op('Mul', [b, r.cos]), g.op('Mul', [a, r.sin])]);
    return g.op('Concat', [first, second], { axis: 3 });
  };

  // The embedding is the largest tensor (256k × d): streamed by rows when it goes to external data.
  if (g.external && w.rows) {
    const rows = w.rows.bind(w);
    const chunks = function* () {
      for (let r = 0; r < vocabSize; r += EMBED_CHUNK_ROWS)
        yield rows('embed.W_E', r, Math.min(EMBED_CHUNK_ROWS, vocabSize - r));
    };
    g.initializers.push(g.external.fromChunks('embed.W_E', [vocabSize, d], chunks()));
  } else {
    matrix('embed.W_E', vocabSize, d);
  }
  const hook = (l: number, kind: GemmaHookKind) => `blocks.${l}.${kind}`;
  let resid = g.op(
    'Mul',
    [g.op('Gather', ['embed.W_E', 'input_ids']), scalar('const.embed_scale', gm.embedScale)],
    {},
    hook(0, 'hook_resid_pre'),
  );

  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}`;
    if (l > 0) g.op('Identity', [resid], {}, hook(l, 'hook_resid_pre'));
    resid = steered(g, hook(l, 'hook_resid_pre'));

    const x = rmsNorm(resid, `${b}.ln1.w`, d);
    let q = splitHeads(
      g,
      g.op('MatMul', [x, matrix(`${b}.attn.W_Q`, d, nHeads * dHead)], {}, hook(l, 'attn.hook_q')),
      nHeads,
      dHead,
    );
    let k = splitHeads(
      g,
      g.op('MatMul', [x, matrix(`${b}.attn.W_K`, d, nKvHeads * dHead)], {}, hook(l, 'attn.hook_k')),
      nKvHeads,
      dHead,
    );
    const v = splitHeads(
      g,
      g.op('MatMul', [x, matrix(`${b}.attn.W_V`, d, nKvHeads * dHead)], {}, hook(l, 'attn.hook_v')),
      nKvHeads,
      dHead,
    );
    if (gm.qkNorm) {
      q = rmsNorm(q, `${b}.attn.q_norm.w`, dHead);
      k = rmsNorm(k, `${b}.attn.k_norm.w`, dHead);
    }
    const r = ropeFor(gm.rope[l].theta, gm.rope[l].linearFactor);
    const window = gm.slidingWindow[l];
    const z = attention(g, {
      layer: l,
      q: rope(q, r),
      k: rope(k, r),
      v,
      nHeads,
      nKvHeads,
      dHead,
      maskBias: window === null ? masks.maskBias : masks.windowMask(window),
      scale: gm.attnScale,
      softcap: gm.attnSoftcap,
      output: hook(l, 'attn.hook_z'),
    });
    const attnOut = rmsNorm(
      g.op('MatMul', [z, matrix(`${b}.attn.W_O`, nHeads * dHead, d)]),
      `${b}.ln1_post.w`,
      d,
      hook(l, 'hook_attn_out'),
    );
    g.op('Add', [resid, steered(g, attnOut)], {}, hook(l, 'hook_resid_mid'));
    const mid = steered(g, hook(l, 'hook_resid_mid'));

    const x2 = g.op('Mul', [normalize(mid, hook(l, 'ln2.hook_normalized')), gain(`${b}.ln2.w`, d)]);
    const pre = g.op('MatMul', [x2, matrix(`${b}.mlp.W_gate`, d, dMlp)], {}, hook(l, 'mlp.hook_pre'));
    const up = g.op('MatMul', [x2, matrix(`${b}.mlp.W_in`, d, dMlp)]);
    // Decomposed: per-node overhead is nothing at Gemma's sizes, and a fused node would mean a new graph
    // version, i.e. converting every cached Gemma checkpoint (10 GB for gemma-2-2b) again.
    const post = g.op('Mul', [gelu(g, pre, 'gelu_new', undefined, true), up], {}, hook(l, 'mlp.hook_post'));
    const mlpOut = rmsNorm(
      g.op('MatMul', [post, matrix(`${b}.mlp.W_out`, dMlp, d)]),
      `${b}.ln2_post.w`,
      d,
      hook(l, 'hook_mlp_out'),
    );
    g.op('Add', [mid, steered(g, mlpOut)], {}, hook(l, 'hook_resid_post'));
    resid = steered(g, hook(l, 'hook_resid_post'));
    onProgress?.(l + 1, c.nLayers);
  }

  const final = rmsNorm(resid, 'ln_final.w', d);
  const cap = gm.finalSoftcap;
  const logitsName = cap ? undefined : 'logits';
  let logits: string;
  if (c.tiedEmbeddings) {
    // Gemm with transB multiplies by W_Eᵀ without materialising a transposed copy of the embedding.
    const flat = g.op('Reshape', [final, g.ints('const.shape_rows', [-1, d])]);
    const product = g.op('Gemm', [flat, 'embed.W_E'], { transB: 1 });
    const shape = g.op('Concat', [g.op('Shape', [final], { start: 0, end: 2 }), g.ints('const.vocab', [vocabSize])], {
      axis: 0,
    });
    logits = g.op('Reshape', [product, shape], {}, logitsName);
  } else {
    logits = g.op('MatMul', [final, matrix('unembed.W_U', d, vocabSize)], {}, logitsName);
  }
  if (cap)
    g.op(
      'Mul',
      [
        g.op('Tanh', [g.op('Mul', [logits, scalar('const.final_softcap_inv', 1 / cap)])]),
        scalar('const.final_softcap', cap),
      ],
      {},
      'logits',
    );

  const io = transformerIO(c);
  const hooks = [];
  for (const h of hookLayout(c)) hooks.push(valueInfo(h.name, 'float', ['batch', 'seq', h.width]));
  const rest = io.outputs.filter((o) => !o.name!.startsWith('blocks.'));
  return {
    name: c.architecture,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: io.inputs,
    outputs: [...hooks, ...rest],
  };
}

/**
 * Builds the graph straight into `path` + `path.data`: each weight is converted to float32 and written
 * as it is read, so memory holds one tensor (or a block of embedding rows) at a time.
 */
export function writeGemmaModel(
  w: TransformerWeights,
  path: string,
  onProgress?: (done: number, total: number, bytes: number) => void,
): void {
  const writer = new ExternalDataWriter(path);
  try {
    const spec = buildGemmaGraph(w, new GraphBuilder(writer), (done, total) => onProgress?.(done, total, writer.bytes));
    // serializeModel sees only inline constants and external references: a few MB whatever the model.
    writeFileSync(path, serializeModel(spec));
  } finally {
    writer.close();
  }
}
