/**
 * A plain TypeScript forward pass of the LLaMA family (llama, mistral, qwen2, qwen3), written from
 * transformers' modeling_llama / modeling_mistral / modeling_qwen2 / modeling_qwen3 and
 * modeling_rope_utils in the style of llama2.c's run.c: one token at a time with a KV cache, float64
 * arithmetic. Tests compare the ONNX graph's hooks and greedy generation against it; it favours
 * clarity over speed.
 *
 *   x = W_E[token]                                                (hook_embed, hook_resid_pre of block 0)
 *   n = x / rms(x) (ln1.hook_normalized); h = n * w_ln1
 *   q, k, v = h W_Q + b_Q, h W_K + b_K, h W_V + b_V (attn.hook_q/k/v; biases when present)
 *   qwen3: q, k = RMSNorm per head (q_norm, k_norm); rotate q, k by position (RoPE, scaled; hook_rot_q/k)
 *   z = softmax(q·k / sqrt(dHead) over keys t <= pos with pos − t < window) v   (attn.hook_z)
 *   attn_out = z W_O (+ b_O)                                       (hook_attn_out)
 *   mid = x + attn_out                                            (hook_resid_mid)
 *   n2 = mid / rms(mid) (ln2.hook_normalized); h2 = n2 * w_ln2
 *   pre = h2 W_gate (mlp.hook_pre); lin = h2 W_in (mlp.hook_pre_linear); post = silu(pre) * lin (mlp.hook_post)
 *   mlp_out = post W_out                                          (hook_mlp_out)
 *   x' = mid + mlp_out                                            (hook_resid_post = next resid_pre)
 *   logits = (x'/rms(x')) (ln_final.hook_normalized) * w_f W_U
 */
import type { TransformerConfig, TransformerWeights } from '../../src/engine/model/types.js';

export interface ReferenceOutput {
  /** Hook name → [seq, width] row-major. */
  hooks: Map<string, Float32Array>;
  /** [seq, vocab] */
  logits: Float32Array;
}

type Vec = Float64Array;

/**
 * An intervention on the residual stream after a block: returns the value the next block reads
 * (the hook keeps the value before it), as a TransformerLens hook function on hook_resid_post.
 */
export type ResidPostSteer = (hook: string, h: Float64Array) => Float64Array;

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

/** x / sqrt(mean(x²) + eps), before any weight. */
function normalize(x: Vec, eps: number): Vec {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v) => v * inv);
}

function scale(x: Vec, w: Float32Array): Vec {
  return x.map((v, i) => v * w[i]);
}

function addBias(x: Vec, b: Float32Array | null): Vec {
  if (b) for (let i = 0; i < x.length; i++) x[i] += b[i];
  return x;
}

/**
 * inv_freq over the rotated dims and the cos/sin factor, per modeling_rope_utils: default θ^(−2i/r);
 * linear /factor; llama3 by wavelength band; yarn blended by the beta_fast/beta_slow ramp; dynamic
 * with θ·(factor·T/M − factor + 1)^(r/(r−2)) for T = max(seqLen, M).
 */
export function referenceInvFreq(c: TransformerConfig, seqLen: number): { invFreq: number[]; factor: number } {
  const r = c.rotaryDim ?? c.dHead;
  const s = c.ropeScaling;
  let theta = c.ropeTheta;
  if (s?.type === 'dynamic') {
    const T = Math.max(seqLen, s.maxPositions);
    theta *= Math.pow((s.factor * T) / s.maxPositions - (s.factor - 1), r / (r - 2));
  }
  const inv: number[] = [];
  for (let j = 0; j < r; j += 2) inv.push(1 / Math.pow(theta, j / r));
  if (!s || s.type === 'dynamic') return { invFreq: inv, factor: 1 };
  if (s.type === 'linear') return { invFreq: inv.map((v) => v / s.factor), factor: 1 };
  if (s.type === 'llama3') {
    const out = inv.map((v) => {
      const wavelen = (2 * Math.PI) / v;
      const scaled = wavelen > s.originalMaxPositions / s.lowFreqFactor ? v / s.factor : v;
      const medium =
        !(wavelen < s.originalMaxPositions / s.highFreqFactor) && !(wavelen > s.originalMaxPositions / s.lowFreqFactor);
      if (!medium) return scaled;
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      return (1 - smooth) * (scaled / s.factor) + smooth * scaled;
    });
    return { invFreq: out, factor: 1 };
  }
  const dimFor = (rot: number) =>
    (r * Math.log(s.originalMaxPositions / (rot * 2 * Math.PI))) / (2 * Math.log(c.ropeTheta));
  let lo = dimFor(s.betaFast);
  let hi = dimFor(s.betaSlow);
  if (s.truncate) [lo, hi] = [Math.floor(lo), Math.ceil(hi)];
  [lo, hi] = [Math.max(lo, 0), Math.min(hi, r - 1)];
  if (lo === hi) hi += 0.001;
  const out = inv.map((v, i) => {
    const ramp = Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
    const extrapolationFactor = 1 - ramp;
    return (v / s.factor) * (1 - extrapolationFactor) + v * extrapolationFactor;
  });
  return { invFreq: out, factor: s.attentionFactor };
}

/** Rotates the first r dims of each head of x in place at `pos`: pairs (2i, 2i+1) or halves (i, i + r/2). */
export function rope(x: Vec, pos: number, c: TransformerConfig, seqLen: number): void {
  const { dHead } = c;
  const r = c.rotaryDim ?? dHead;
  const half = r / 2;
  const { invFreq, factor } = referenceInvFreq(c, seqLen);
  for (let h = 0; h < x.length / dHead; h++) {
    for (let i = 0; i < half; i++) {
      const angle = pos * invFreq[i];
      const cos = Math.cos(angle) * factor;
      const sin = Math.sin(angle) * factor;
      const [a, b] =
        c.ropeStyle === 'interleaved'
          ? [h * dHead + 2 * i, h * dHead + 2 * i + 1]
          : [h * dHead + i, h * dHead + i + half];
      const x0 = x[a];
      const x1 = x[b];
      x[a] = x0 * cos - x1 * sin;
      x[b] = x0 * sin + x1 * cos;
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

  /**
   * Processes `token` at position `pos` (= number of tokens already seen). `seqLen` is the length of
   * the call's sequence, which only dynamic RoPE scaling reads (transformers: max position + 1).
   */
  forward(
    token: number,
    pos: number,
    seqLen = pos + 1,
    steer?: ResidPostSteer,
  ): { logits: Vec; hooks: Map<string, Vec> } {
    const c = this.weights.config;
    const { dModel: d, nHeads, nKvHeads, dHead, dMlp } = c;
    const hooks = new Map<string, Vec>();
    const opt = (name: string) => (this.weights.has(name) ? this.w(name) : null);
    let x: Vec = Float64Array.from(this.w('embed.W_E').subarray(token * d, (token + 1) * d));
    hooks.set('hook_embed', x);

    for (let l = 0; l < c.nLayers; l++) {
      const b = `blocks.${l}`;
      const hook = (kind: string, v: Vec) => hooks.set(`${b}.${kind}`, v);
      hook('hook_resid_pre', x);
      const n = normalize(x, c.normEps);
      hook('ln1.hook_normalized', n);
      const h = scale(n, this.w(`${b}.ln1.w`));
      const q = addBias(matvec(h, this.w(`${b}.attn.W_Q`), nHeads * dHead), opt(`${b}.attn.b_Q`));
      const k = addBias(matvec(h, this.w(`${b}.attn.W_K`), nKvHeads * dHead), opt(`${b}.attn.b_K`));
      const v = addBias(matvec(h, this.w(`${b}.attn.W_V`), nKvHeads * dHead), opt(`${b}.attn.b_V`));
      hook('attn.hook_q', q.slice());
      hook('attn.hook_k', k.slice());
      hook('attn.hook_v', v);
      // qwen3: RMSNorm of each head's q and k (weight [dHead]) before the rotation.
      for (const [vec, norm] of [
        [q, opt(`${b}.attn.q_norm.w`)],
        [k, opt(`${b}.attn.k_norm.w`)],
      ] as const) {
        if (!norm) continue;
        for (let hd = 0; hd < vec.length / dHead; hd++)
          vec.set(scale(normalize(vec.subarray(hd * dHead, (hd + 1) * dHead), c.normEps), norm), hd * dHead);
      }
      rope(q, pos, c, seqLen);
      rope(k, pos, c, seqLen);
      hook('attn.hook_rot_q', q);
      hook('attn.hook_rot_k', k);
      this.keys[l][pos] = k;
      this.values[l][pos] = v;

      const window = c.slidingWindows?.[l] ?? Infinity;
      const first = Math.max(0, pos - window + 1);
      const att = new Float64Array(nHeads * dHead);
      for (let head = 0; head < nHeads; head++) {
        const kvOff = Math.floor(head / (nHeads / nKvHeads)) * dHead;
        const scores = new Float64Array(pos + 1).fill(-Infinity);
        for (let t = first; t <= pos; t++) {
          let s = 0;
          for (let i = 0; i < dHead; i++) s += q[head * dHead + i] * this.keys[l][t][kvOff + i];
          scores[t] = s / Math.sqrt(dHead);
        }
        const max = Math.max(...scores);
        let sum = 0;
        for (let t = first; t <= pos; t++) sum += scores[t] = Math.exp(scores[t] - max);
        for (let t = first; t <= pos; t++) {
          const p = scores[t] / sum;
          for (let i = 0; i < dHead; i++) att[head * dHead + i] += p * this.values[l][t][kvOff + i];
        }
      }
      hook('attn.hook_z', att);
      const attnOut = addBias(matvec(att, this.w(`${b}.attn.W_O`), d), opt(`${b}.attn.b_O`));
      const mid = x.map((xi, i) => xi + attnOut[i]);
      hook('hook_attn_out', attnOut);
      hook('hook_resid_mid', mid);

      const n2 = normalize(mid, c.normEps);
      hook('ln2.hook_normalized', n2);
      const h2 = scale(n2, this.w(`${b}.ln2.w`));
      const gate = addBias(matvec(h2, this.w(`${b}.mlp.W_gate`), dMlp), opt(`${b}.mlp.b_gate`));
      const up = addBias(matvec(h2, this.w(`${b}.mlp.W_in`), dMlp), opt(`${b}.mlp.b_in`));
      const act = gate.map((gi, i) => (gi / (1 + Math.exp(-gi))) * up[i]);
      hook('mlp.hook_pre', gate);
      hook('mlp.hook_pre_linear', up);
      hook('mlp.hook_post', act);
      const mlpOut = addBias(matvec(act, this.w(`${b}.mlp.W_out`), d), opt(`${b}.mlp.b_out`));
      x = mid.map((mi, i) => mi + mlpOut[i]);
      hook('hook_mlp_out', mlpOut);
      hook('hook_resid_post', x);
      if (steer) x = steer(`${b}.hook_resid_post`, x);
    }
    const nf = normalize(x, c.normEps);
    hooks.set('ln_final.hook_normalized', nf);
    const logits = matvec(scale(nf, this.w('ln_final.w')), this.w('unembed.W_U'), c.vocabSize);
    if (this.weights.has('unembed.b_U')) {
      const bias = this.w('unembed.b_U');
      for (let i = 0; i < logits.length; i++) logits[i] += bias[i];
    }
    return { logits, hooks };
  }

  /** Runs a whole sequence from a fresh cache; every hook and the logits as [seq, width]. */
  run(tokens: number[], steer?: ResidPostSteer): ReferenceOutput {
    this.reset();
    const c = this.weights.config;
    const hooks = new Map<string, Float32Array>();
    const logits = new Float32Array(tokens.length * c.vocabSize);
    tokens.forEach((token, pos) => {
      const out = this.forward(token, pos, tokens.length, steer);
      logits.set(out.logits, pos * c.vocabSize);
      for (const [name, vec] of out.hooks) {
        if (!hooks.has(name)) hooks.set(name, new Float32Array(tokens.length * vec.length));
        hooks.get(name)!.set(vec, pos * vec.length);
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
