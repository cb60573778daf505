/**
 * The hook points a transformer graph exposes and the width of each, derived from its config alone so
 * the catalog (ModelInfo), the graph outputs and dictionary checks agree:
 *   resid_pre/mid/post, attn_out, mlp_out, ln1/ln2/ln_final.hook_normalized: d_model
 *   attn.hook_q, attn.hook_z: n_heads·d_head      attn.hook_k, attn.hook_v: n_kv_heads·d_head
 *   mlp.hook_pre, mlp.hook_post: d_mlp
 * A parallel-residual block (gpt_neox use_parallel_residual) has no resid_mid, as in TransformerLens.
 */
import { FINAL_NORM_HOOK, HOOK_KINDS, hookName, type HookKind, type TransformerConfig } from './types.js';

export interface HookPoint {
  name: string;
  width: number;
}

function kindWidth(c: TransformerConfig, kind: HookKind): number {
  switch (kind) {
    case 'attn.hook_q':
    case 'attn.hook_z':
      return c.nHeads * c.dHead;
    case 'attn.hook_k':
    case 'attn.hook_v':
      return c.nKvHeads * c.dHead;
    case 'mlp.hook_pre':
    case 'mlp.hook_post':
      return c.dMlp;
    default:
      return c.dModel;
  }
}

/** Hook points in forward order (layer by layer, then ln_final) with their widths. */
export function hookLayout(c: TransformerConfig): HookPoint[] {
  const out: HookPoint[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    for (const kind of HOOK_KINDS) {
      if (kind === 'hook_resid_mid' && c.parallelResidual) continue;
      out.push({ name: hookName(l, kind), width: kindWidth(c, kind) });
    }
  }
  out.push({ name: FINAL_NORM_HOOK, width: c.dModel });
  return out;
}

/** ModelInfo's hookPoints and hookWidths for a config. */
export function hookInfo(c: TransformerConfig): { hookPoints: string[]; hookWidths: Record<string, number> } {
  const layout = hookLayout(c);
  return { hookPoints: layout.map((h) => h.name), hookWidths: Object.fromEntries(layout.map((h) => [h.name, h.width])) };
}

/** Hooks whose vectors live in the residual basis (the unembedding's input space), for the logit lens. */
export function isResidualHook(name: string): boolean {
  return /^blocks\.\d+\.hook_(resid_pre|resid_mid|resid_post|attn_out|mlp_out)$/.test(name);
}
