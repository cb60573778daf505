/**
 * A plain TypeScript GPT-NeoX (Pythia) forward pass written from transformers' modeling_gpt_neox.py,
 * float64, one sequence at a time:
 *   a = LayerNorm1(x)                                     (ln1.hook_normalized)
 *   q, k, v = a W + b per part (attn.hook_q/k/v), q and k rotated on their first rotaryDim dims (hook_rot_q/k)
 *   z = causal softmax(q·k/√d_head) v (attn.hook_z);  attn_out = z W_O + b_O
 *   parallel:   x' = x + attn_out + mlp(LayerNorm2(x))
 *   sequential: mid = x + attn_out (hook_resid_mid); x' = mid + mlp(LayerNorm2(mid))
 *   mlp(h) = gelu(h W_in + b_in) W_out + b_out            (mlp.hook_pre, mlp.hook_post, hook_mlp_out)
 *   logits = LayerNorm_f(x') W_U                          (ln_final.hook_normalized)
 */
import type { TransformerWeights } from '../../src/engine/model/types.js';
import { gelu, layerNorm, matvec, toF32, type ReferenceOutput } from './gpt2.js';
import { rope } from './llama.js';

export function neoxForward(w: TransformerWeights, tokens: number[]): ReferenceOutput {
  const c = w.config;
  const { dModel: d, nHeads, dHead, dMlp, vocabSize } = c;
  const hooks = new Map<string, Float32Array>();
  const opt = (name: string) => (w.has(name) ? w.tensor(name) : undefined);
  const WE = w.tensor('embed.W_E');
  let x = tokens.map((t) => Float64Array.from(WE.subarray(t * d, (t + 1) * d)));
  hooks.set('hook_embed', toF32(x));

  for (let L = 0; L < c.nLayers; L++) {
    const p = `blocks.${L}`;
    const t = (name: string) => w.tensor(`${p}.${name}`);
    hooks.set(`${p}.hook_resid_pre`, toF32(x));
    const a = x.map((r) => layerNorm(r, t('ln1.w'), t('ln1.b'), c.normEps));
    const q = a.map((r) => matvec(r, t('attn.W_Q'), nHeads * dHead, opt(`${p}.attn.b_Q`)));
    const k = a.map((r) => matvec(r, t('attn.W_K'), nHeads * dHead, opt(`${p}.attn.b_K`)));
    const v = a.map((r) => matvec(r, t('attn.W_V'), nHeads * dHead, opt(`${p}.attn.b_V`)));
    hooks.set(`${p}.ln1.hook_normalized`, toF32(a));
    hooks.set(`${p}.attn.hook_q`, toF32(q));
    hooks.set(`${p}.attn.hook_k`, toF32(k));
    hooks.set(`${p}.attn.hook_v`, toF32(v));
    const qr = q.map((r, i) => {
      const c2 = r.slice();
      rope(c2, i, c, tokens.length);
      return c2;
    });
    const kr = k.map((r, i) => {
      const c2 = r.slice();
      rope(c2, i, c, tokens.length);
      return c2;
    });
    hooks.set(`${p}.attn.hook_rot_q`, toF32(qr));
    hooks.set(`${p}.attn.hook_rot_k`, toF32(kr));
    const z = x.map(() => new Float64Array(nHeads * dHead));
    for (let h = 0; h < nHeads; h++) {
      const o = h * dHead;
      for (let i = 0; i < x.length; i++) {
        const scores = new Float64Array(i + 1);
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let e = 0; e < dHead; e++) s += qr[i][o + e] * kr[j][o + e];
          scores[j] = s / Math.sqrt(dHead);
        }
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const total = exps.reduce((u, b) => u + b, 0);
        for (let j = 0; j <= i; j++) for (let e = 0; e < dHead; e++) z[i][o + e] += (exps[j] / total) * v[j][o + e];
      }
    }
    hooks.set(`${p}.attn.hook_z`, toF32(z));
    const attnOut = z.map((r) => matvec(r, t('attn.W_O'), d, opt(`${p}.attn.b_O`)));
    hooks.set(`${p}.hook_attn_out`, toF32(attnOut));
    const mid = x.map((r, i) => r.map((val, j) => val + attnOut[i][j]));
    if (!c.parallelResidual) hooks.set(`${p}.hook_resid_mid`, toF32(mid));
    const mlpIn = c.parallelResidual ? x : mid;
    const ln2 = mlpIn.map((r) => layerNorm(r, t('ln2.w'), t('ln2.b'), c.normEps));
    const pre = ln2.map((r) => matvec(r, t('mlp.W_in'), dMlp, t('mlp.b_in')));
    const post = pre.map((r) => r.map((val) => gelu(val, c.activation)));
    const mlpOut = post.map((r) => matvec(r, t('mlp.W_out'), d, t('mlp.b_out')));
    hooks.set(`${p}.ln2.hook_normalized`, toF32(ln2));
    hooks.set(`${p}.mlp.hook_pre`, toF32(pre));
    hooks.set(`${p}.mlp.hook_post`, toF32(post));
    hooks.set(`${p}.hook_mlp_out`, toF32(mlpOut));
    x = mid.map((r, i) => r.map((val, j) => val + mlpOut[i][j]));
    hooks.set(`${p}.hook_resid_post`, toF32(x));
  }
  const lnf = x.map((r) => layerNorm(r, w.tensor('ln_final.w'), w.tensor('ln_final.b'), c.normEps));
  hooks.set('ln_final.hook_normalized', toF32(lnf));
  return { hooks, logits: toF32(lnf.map((r) => matvec(r, w.tensor('unembed.W_U'), vocabSize))) };
}
