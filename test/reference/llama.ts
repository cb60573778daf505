/**
 * A plain TypeScript LLaMA forward pass written from the architecture's math in the style of
 * llama2.c's run.c: one token at a time with a KV cache, float64 arithmetic. Tests compare the
 * ONNX graph's hooks and greedy generation against it; it favours clarity over speed.
 *
 *   x = W_E[token]                                               (hook_resid_pre of block 0)
 *   q, k, v = RMSNorm(x) W_Q, W_K, W_V; rotate q, k by position (RoPE)
 *   attn_out = softmax(q·k / sqrt(dHead), causal) v  W_O          (hook_attn_out)
 *   mid = x + attn_out                                           (hook_resid_mid)
 *   mlp_out = (silu(h W_gate) * (h W_in)) W_out, h = RMSNorm(mid) (hook_mlp_out)
 *   post = mid + mlp_out                                         (hook_resid_post = next resid_pre)
 *   logits = RMSNorm(post) W_U
 */
import type { TransformerWeights } from '../../src/engine/model/types.js';
import { hookName } from '../../src/engine/model/types.js';

export interface ReferenceOutput {
  /** Hook name → [seq, dModel] row-major. */
  hooks: Map<string, Float32Array>;
  /** [seq, vocab] */
  logits: Float32Array;
}

type Vec = Float64Array;

/** y = x · W for W stored [x.length, cols] row-major. */
function matvec(x: Vec, W: Float32Array, cols: number): Vec {
  const y = new Float64Array(cols);
  for (let i = 0; i < x.length; i++) {
    const xi = x[i];
    const row = i * cols;
    for (let j = 0; j < cols; j++) y[j] += xi * W[row + j];
  }
  return y;
}

function rmsNorm(x: Vec, w: Float32Array, eps: number): Vec {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]);
}

/** Rotates each head of x in place at `pos`: pairs (2i, 2i+1) or halves (i, i + dHead/2). */
function rope(x: Vec, pos: number, dHead: number, theta: number, style: 'interleaved' | 'half'): void {
  const half = dHead / 2;
  for (let h = 0; h < x.length / dHead; h++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.pow(theta, (-2 * i) / dHead);
      const [a, b] = style === 'interleaved' ? [h * dHead + 2 * i, h * dHead + 2 * i + 1] : [h * dHead + i, h * dHead + i + half];
      const x0 = x[a];
      const x1 = x[b];
      x[a] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
      x[b] = x0 * Math.sin(angle) + x1 * Math.cos(angle);
    }
  }
}

function argmax(x: Vec): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

export class ReferenceLlama {
  private readonly w: (name: string) => Float32Array;
  private keys: Vec[][] = [];
  private values: Vec[][] = [];

  constructor(private readonly weights: TransformerWeights) {
    const cache = new Map<string, Float32Array>();
    this.w = (name) => {
      let t = cache.get(name);
      if (!t) cache.set(name, (t = weights.tensor(name)));
      return t;
    };
    this.reset();
  }

  /** Forgets the KV cache: the next forward() must be position 0. */
  reset(): void {
    this.keys = Array.from({ length: this.weights.config.nLayers }, () => []);
    this.values = Array.from({ length: this.weights.config.nLayers }, () => []);
  }

  /** Processes `token` at position `pos` (= number of tokens already seen). */
  forward(token: number, pos: number): { logits: Vec; hooks: Map<string, Vec> } {
    const c = this.weights.config;
    const { dModel: d, nHeads, nKvHeads, dHead, dMlp } = c;
    const hooks = new Map<string, Vec>();
    let x: Vec = Float64Array.from(this.w('embed.W_E').subarray(token * d, (token + 1) * d));

    for (let l = 0; l < c.nLayers; l++) {
      const b = `blocks.${l}`;
      hooks.set(hookName(l, 'hook_resid_pre'), x);
      const h = rmsNorm(x, this.w(`${b}.ln1.w`), c.normEps);
      const q = matvec(h, this.w(`${b}.attn.W_Q`), nHeads * dHead);
      const k = matvec(h, this.w(`${b}.attn.W_K`), nKvHeads * dHead);
      const v = matvec(h, this.w(`${b}.attn.W_V`), nKvHeads * dHead);
      rope(q, pos, dHead, c.ropeTheta, c.ropeStyle);
      rope(k, pos, dHead, c.ropeTheta, c.ropeStyle);
      this.keys[l][pos] = k;
      this.values[l][pos] = v;

      const att = new Float64Array(nHeads * dHead);
      for (let head = 0; head < nHeads; head++) {
        const kvOff = Math.floor(head / (nHeads / nKvHeads)) * dHead;
        const scores = new Float64Array(pos + 1);
        for (let t = 0; t <= pos; t++) {
          let s = 0;
          for (let i = 0; i < dHead; i++) s += q[head * dHead + i] * this.keys[l][t][kvOff + i];
          scores[t] = s / Math.sqrt(dHead);
        }
        const max = Math.max(...scores);
        let sum = 0;
        for (let t = 0; t <= pos; t++) sum += scores[t] = Math.exp(scores[t] - max);
        for (let t = 0; t <= pos; t++) {
          const p = scores[t] / sum;
          for (let i = 0; i < dHead; i++) att[head * dHead + i] += p * this.values[l][t][kvOff + i];
        }
      }
      const attnOut = matvec(att, this.w(`${b}.attn.W_O`), d);
      const mid = x.map((xi, i) => xi + attnOut[i]);
      hooks.set(hookName(l, 'hook_attn_out'), attnOut);
      hooks.set(hookName(l, 'hook_resid_mid'), mid);

      const h2 = rmsNorm(mid, this.w(`${b}.ln2.w`), c.normEps);
      const gate = matvec(h2, this.w(`${b}.mlp.W_gate`), dMlp);
      const up = matvec(h2, this.w(`${b}.mlp.W_in`), dMlp);
      const act = gate.map((gi, i) => (gi / (1 + Math.exp(-gi))) * up[i]);
      const mlpOut = matvec(act, this.w(`${b}.mlp.W_out`), d);
      x = mid.map((mi, i) => mi + mlpOut[i]);
      hooks.set(hookName(l, 'hook_mlp_out'), mlpOut);
      hooks.set(hookName(l, 'hook_resid_post'), x);
    }
    const logits = matvec(rmsNorm(x, this.w('ln_final.w'), c.normEps), this.w('unembed.W_U'), c.vocabSize);
    if (this.weights.has('unembed.b_U')) {
      const bias = this.w('unembed.b_U');
      for (let i = 0; i < logits.length; i++) logits[i] += bias[i];
    }
    return { logits, hooks };
  }

  /** Runs a whole sequence from a fresh cache; every hook and the logits as [seq, width]. */
  run(tokens: number[]): ReferenceOutput {
    this.reset();
    const c = this.weights.config;
    const hooks = new Map<string, Float32Array>();
    const logits = new Float32Array(tokens.length * c.vocabSize);
    tokens.forEach((token, pos) => {
      const out = this.forward(token, pos);
      logits.set(out.logits, pos * c.vocabSize);
      for (const [name, vec] of out.hooks) {
        if (!hooks.has(name)) hooks.set(name, new Float32Array(tokens.length * c.dModel));
        hooks.get(name)!.set(vec, pos * c.dModel);
      }
    });
    return { hooks, logits };
  }

  /**
   * run.c's loop at temperature 0: `steps` forward passes (positions 0..steps-1), each either
   * forcing the next prompt token or taking the argmax; stops when BOS comes out. Returns the
   * sequence, prompt included.
   */
  greedy(prompt: number[], steps: number, bosId = 1): number[] {
    this.reset();
    const out = [prompt[0]];
    for (let pos = 0; pos < steps; pos++) {
      const { logits } = this.forward(out[pos], pos);
      const next = pos + 1 < prompt.length ? prompt[pos + 1] : argmax(logits);
      if (next === bosId) break;
      out.push(next);
    }
    return out;
  }
}
