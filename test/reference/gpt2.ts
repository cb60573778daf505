/**
 * A plain TypeScript GPT-2 forward pass written from the architecture's math, in float64, one
 * sequence at a time. Tests compare the ONNX graph's hooks against it; it favours clarity over speed.
 *
 *   x_0 = W_E[token] + W_pos[position]   (hook_embed + hook_pos_embed = hook_resid_pre of block 0)
 *   attn_out = Attn(LN1(x)),  mid = x + attn_out             (hook_attn_out, hook_resid_mid)
 *   mlp_out = act(LN2(mid) W_in + b_in) W_out + b_out        (hook_mlp_out)
 *   post = mid + mlp_out                                     (hook_resid_post = next block's resid_pre)
 *   logits = LN_final(post_last) W_U (+ b_U)
 * Hooks as TransformerLens names them: ln1/ln2/ln_final.hook_normalized (LayerNorm outputs),
 * attn.hook_q/k/v (biased projections), attn.hook_z (heads before W_O), mlp.hook_pre/post.
 */
import type { TransformerWeights } from '../../src/engine/model/types.js';
import { hookName } from '../../src/engine/model/types.js';
import type { ResidPostSteer } from './llama.js';

export interface ReferenceOutput {
  /** Hook name → [seq, width] row-major. */
  hooks: Map<string, Float32Array>;
  /** [seq, vocab] */
  logits: Float32Array;
}

type Vec = Float64Array;

/** y = x · W for W stored [rows = x.length, cols] row-major, plus optional bias. */
export function matvec(x: Vec, W: Float32Array, cols: number, bias?: Float32Array): Vec {
  const y = new Float64Array(cols);
  for (let i = 0; i < x.length; i++) {
    const xi = x[i];
    const row = i * cols;
    for (let j = 0; j < cols; j++) y[j] += xi * W[row + j];
  }
  if (bias) for (let j = 0; j < cols; j++) y[j] += bias[j];
  return y;
}

export function layerNorm(x: Vec, w: Float32Array, b: Float32Array, eps: number): Vec {
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  let variance = 0;
  for (const v of x) variance += (v - mean) ** 2;
  variance /= x.length;
  const inv = 1 / Math.sqrt(variance + eps);
  return x.map((v, i) => (v - mean) * inv * w[i] + b[i]);
}

export function gelu(x: number, kind: string): number {
  if (kind === 'gelu_new') return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** erf by its Maclaurin series (|x| small) or continued-fraction tail; accurate to ~1e-15. */
function erf(x: number): number {
  const a = Math.abs(x);
  if (a > 6) return Math.sign(x);
  if (a < 2.5) {
    let sum = 0;
    let term = a;
    for (let n = 0; n < 200; n++) {
      sum += term / (2 * n + 1);
      term *= (-a * a) / (n + 1);
      if (Math.abs(term) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(a) = exp(-a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...)))) evaluated bottom-up.
  let f = a;
  for (let k = 60; k >= 1; k--) f = a + k / 2 / f;
  return Math.sign(x) * (1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / f);
}

export function toF32(rows: Vec[]): Float32Array {
  const d = rows[0]?.length ?? 0;
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => out.set(r, i * d));
  return out;
}

/** `steer` changes each position's residual after a block (hook_resid_post keeps the value before it). */
export function gpt2Forward(w: TransformerWeights, tokens: number[], steer?: ResidPostSteer): ReferenceOutput {
  const c = w.config;
  const { dModel: d, nHeads, dHead, dMlp, vocabSize } = c;
  const hooks = new Map<string, Float32Array>();
  const WE = w.tensor('embed.W_E');
  const Wpos = w.tensor('pos_embed.W_pos');
  const embed = tokens.map((t) => Float64Array.from(WE.subarray(t * d, (t + 1) * d)));
  const posEmbed = tokens.map((_, p) => Float64Array.from(Wpos.subarray(p * d, (p + 1) * d)));
  hooks.set('hook_embed', toF32(embed));
  hooks.set('hook_pos_embed', toF32(posEmbed));
  let x: Vec[] = embed.map((e, p) => e.map((v, i) => v + posEmbed[p][i]));

  for (let L = 0; L < c.nLayers; L++) {
    const p = `blocks.${L}`;
    // Fetch each tensor once per block: tensor() may read from disk.
    const t = (name: string) => w.tensor(`${p}.${name}`);
    const [ln1w, ln1b, ln2w, ln2b] = [t('ln1.w'), t('ln1.b'), t('ln2.w'), t('ln2.b')];
    const [WQ, WK, WV, WO, bQ, bK, bV, bO] = ['W_Q', 'W_K', 'W_V', 'W_O', 'b_Q', 'b_K', 'b_V', 'b_O'].map((n) =>
      t(`attn.${n}`),
    );
    const [Win, Wout, bin, bout] = ['W_in', 'W_out', 'b_in', 'b_out'].map((n) => t(`mlp.${n}`));
    hooks.set(hookName(L, 'hook_resid_pre'), toF32(x));
    const ln1 = x.map((r) => layerNorm(r, ln1w, ln1b, c.normEps));
    const q = ln1.map((r) => matvec(r, WQ, nHeads * dHead, bQ));
    const k = ln1.map((r) => matvec(r, WK, nHeads * dHead, bK));
    const v = ln1.map((r) => matvec(r, WV, nHeads * dHead, bV));
    hooks.set(`${p}.ln1.hook_normalized`, toF32(ln1));
    hooks.set(`${p}.attn.hook_q`, toF32(q));
    hooks.set(`${p}.attn.hook_k`, toF32(k));
    hooks.set(`${p}.attn.hook_v`, toF32(v));
    const z = x.map(() => new Float64Array(nHeads * dHead));
    for (let h = 0; h < nHeads; h++) {
      const o = h * dHead;
      for (let i = 0; i < x.length; i++) {
        // Causal: position i attends to positions 0..i.
        const scores = new Float64Array(i + 1);
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let e = 0; e < dHead; e++) s += q[i][o + e] * k[j][o + e];
          scores[j] = s / Math.sqrt(dHead);
        }
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const total = exps.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= i; j++) {
          const pj = exps[j] / total;
          for (let e = 0; e < dHead; e++) z[i][o + e] += pj * v[j][o + e];
        }
      }
    }
    hooks.set(`${p}.attn.hook_z`, toF32(z));
    const attnOut = z.map((r) => matvec(r, WO, d, bO));
    hooks.set(hookName(L, 'hook_attn_out'), toF32(attnOut));
    const mid = x.map((r, i) => r.map((val, j) => val + attnOut[i][j]));
    hooks.set(hookName(L, 'hook_resid_mid'), toF32(mid));
    const ln2 = mid.map((r) => layerNorm(r, ln2w, ln2b, c.normEps));
    const pre = ln2.map((h) => matvec(h, Win, dMlp, bin));
    const post = pre.map((r) => r.map((val) => gelu(val, c.activation)));
    const mlpOut = post.map((act) => matvec(act, Wout, d, bout));
    hooks.set(`${p}.ln2.hook_normalized`, toF32(ln2));
    hooks.set(`${p}.mlp.hook_pre`, toF32(pre));
    hooks.set(`${p}.mlp.hook_post`, toF32(post));
    hooks.set(hookName(L, 'hook_mlp_out'), toF32(mlpOut));
    x = mid.map((r, i) => r.map((val, j) => val + mlpOut[i][j]));
    hooks.set(hookName(L, 'hook_resid_post'), toF32(x));
    if (steer) x = x.map((r) => steer(hookName(L, 'hook_resid_post'), r));
  }

  const WU = w.tensor('unembed.W_U');
  const bU = w.has('unembed.b_U') ? w.tensor('unembed.b_U') : undefined;
  const [lnfw, lnfb] = [w.tensor('ln_final.w'), w.tensor('ln_final.b')];
  const lnf = x.map((r) => layerNorm(r, lnfw, lnfb, c.normEps));
  hooks.set('ln_final.hook_normalized', toF32(lnf));
  const logits = lnf.map((r) => matvec(r, WU, vocabSize, bU));
  return { hooks, logits: toF32(logits) };
}
