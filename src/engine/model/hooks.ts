/**
 * The hook points a transformer graph exposes and the width of each, derived from its config alone so
 * the catalog (ModelInfo), the graph outputs and dictionary checks agree:
 *   hook_embed, hook_pos_embed, resid_pre/mid/post, attn_out, mlp_out, ln*.hook_normalized: d_model
 *   attn.hook_q, attn.hook_rot_q, attn.hook_z: n_heads·d_head
 *   attn.hook_k, attn.hook_rot_k, attn.hook_v: n_kv_heads·d_head
 *   mlp.hook_pre, mlp.hook_pre_linear, mlp.hook_post: d_mlp
 * As in TransformerLens: hook_pos_embed only with learned positions (gpt2), hook_rot_q/k only with
 * rotary ones, hook_pre_linear only in gated MLPs, and no resid_mid in a parallel-residual block
 * (gpt_neox use_parallel_residual). Attention scores and patterns ([batch, heads, q, k]) and norm
 * scales are not hook points here: every hook is a [batch, seq, width] activation.
 */
import {
  EMBED_HOOK,
  FINAL_NORM_HOOK,
  HOOK_KINDS,
  POS_EMBED_HOOK,
  hookName,
  type HookKind,
  type TransformerConfig,
} from './types.js';

export const GEMMA_HOOK_KINDS = [
  'hook_resid_pre',
  'attn.hook_q',
  'attn.hook_k',
  'attn.hook_v',
  'attn.hook_z',
  'hook_attn_out',
  'hook_resid_mid',
  'ln2.hook_normalized',
  'mlp.hook_pre',
  'mlp.hook_post',
  'hook_mlp_out',
  'hook_resid_post',
] as const;
export type GemmaHookKind = (typeof GEMMA_HOOK_KINDS)[number];

export interface HookPoint {
  name: string;
  width: number;
}

function kindWidth(c: TransformerConfig, kind: HookKind): number {
  switch (kind) {
    case 'attn.hook_q':
    case 'attn.hook_rot_q':
    case 'attn.hook_z':
      return c.nHeads * c.dHead;
    case 'attn.hook_k':
    case 'attn.hook_rot_k':
    case 'attn.hook_v':
      return c.nKvHeads * c.dHead;
    case 'mlp.hook_pre':
    case 'mlp.hook_pre_linear':
    case 'mlp.hook_post':
      return c.dMlp;
    default:
      return c.dModel;
  }
}

/** Hook points in forward order (layer by layer, then ln_final) with their widths. */
export function hookLayout(c: TransformerConfig): HookPoint[] {
  // Gemma's graph (onnx/gemma-graph.ts) serves its own per-layer set, and no embedding or final-norm hooks.
  if (c.gemma) {
    const out: HookPoint[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      for (const kind of GEMMA_HOOK_KINDS) out.push({ name: hookName(l, kind), width: kindWidth(c, kind) });
    }
    return out;
  }
  const learnedPositions = c.architecture === 'gpt2';
  const skip = (kind: HookKind): boolean =>
    (kind === 'hook_resid_mid' && c.parallelResidual === true) ||
    ((kind === 'attn.hook_rot_q' || kind === 'attn.hook_rot_k') && learnedPositions) ||
    (kind === 'mlp.hook_pre_linear' && c.activation !== 'silu');
  const out: HookPoint[] = [{ name: EMBED_HOOK, width: c.dModel }];
  if (learnedPositions) out.push({ name: POS_EMBED_HOOK, width: c.dModel });
  for (let l = 0; l < c.nLayers; l++) {
    for (const kind of HOOK_KINDS) if (!skip(kind)) out.push({ name: hookName(l, kind), width: kindWidth(c, kind) });
  }
  out.push({ name: FINAL_NORM_HOOK, width: c.dModel });
  return out;
}

/** The checkpoint's default BOS policy: LLaMA, Mistral and Gemma put BOS first; GPT-2, Qwen and Pythia do not. */
export function addsBos(c: TransformerConfig): boolean {
  return c.architecture === 'llama' || c.architecture === 'mistral' || c.gemma !== undefined;
}

/** ModelInfo's hookPoints and hookWidths for a config. */
export function hookInfo(c: TransformerConfig): { hookPoints: string[]; hookWidths: Record<string, number> } {
  const layout = hookLayout(c);
  return {
    hookPoints: layout.map((h) => h.name),
    hookWidths: Object.fromEntries(layout.map((h) => [h.name, h.width])),
  };
}

/** Hooks whose vectors live in the residual basis (the unembedding's input space), for the logit lens. */
export function isResidualHook(name: string): boolean {
  return /^blocks\.\d+\.hook_(resid_pre|resid_mid|resid_post|attn_out|mlp_out)$/.test(name);
}

/**
 * Hooks generation can steer: the residual-stream ones. Each is a graph input `steer.<hook>` [batch or 1,
 * seq or 1, d_model] added to the hook's value before the rest of the network reads it (zeros: no effect).
 */
export function steerableHooks(c: TransformerConfig): string[] {
  return hookLayout(c)
    .map((h) => h.name)
    .filter(isResidualHook);
}

export const STEER_PREFIX = 'steer.';

/** The graph input that adds to `hook`. */
export function steeringInputName(hook: string): string {
  return `${STEER_PREFIX}${hook}`;
}

/**
 * The hook a transcoder reading `hook` reconstructs when its files do not say: the MLP's output, for
 * the MLP's input (ln2.hook_normalized, or hook_resid_mid before the norm).
 */
export function mlpOutputHook(hook: string): string | null {
  const m = /^blocks\.(\d+)\.(ln2\.hook_normalized|hook_resid_mid)$/.exec(hook);
  return m ? `blocks.${m[1]}.hook_mlp_out` : null;
}
