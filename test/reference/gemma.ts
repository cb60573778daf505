/**
 * A plain float64 Gemma 2 / Gemma 3 (text) forward pass written from transformers' modeling_gemma2.py
 * and modeling_gemma3.py, reading the Hugging Face config dict and HF-named tensors directly (not the
 * atlas's reader or config parser), one query at a time with explicit loops:
 *
 *   h = embed_tokens[token] · normalizer, normalizer = √hidden_size cast to the weights' dtype
 *   RMSNorm(x) = x / √(mean(x²) + eps) · (1 + weight)
 *   block: r = h; x = input_layernorm(h); q, k, v = q_proj(x), k_proj(x), v_proj(x) (per head)
 *          gemma3: q = q_norm(q), k = k_norm(k) per head; rotate_half RoPE on q, k
 *          (gemma3: rope_local_base_freq on sliding layers, rope_theta / linear factor on full ones)
 *          w = q·k · query_pre_attn_scalar^-½; w = tanh(w / c)·c if attn_logit_softcapping;
 *          keys k ≤ q, and q − k < sliding_window on sliding layers; softmax; z = Σ p v (kv head h / n_rep)
 *          h = r + post_attention_layernorm(o_proj(z))
 *          r = h; x = pre_feedforward_layernorm(h)
 *          h = r + post_feedforward_layernorm(down(gelu_tanh(gate(x)) · up(x)))
 *   logits = norm(h) · embed_tokensᵀ (tied) or lm_head; tanh(logits / c)·c if final_logit_softcapping
 *
 * Sliding layers: `layer_types`, else gemma2 even layers, gemma3 (i + 1) % sliding_window_pattern ≠ 0.
 * Hooks are recorded under TransformerLens names (see src/engine/onnx/gemma-graph.ts for their meaning).
 */
type Cfg = Record<string, unknown>;

export interface GemmaReferenceInput {
  family: 'gemma2' | 'gemma3';
  /** The text model's config (text_config for multimodal gemma3). */
  config: Cfg;
  /** HF tensor names without the text-model prefix (`embed_tokens.weight`, `layers.0…`, `lm_head.weight`). */
  tensors: Map<string, Float32Array>;
  /** Stored dtype of the weights, which the embedding normalizer is rounded to. */
  dtype: 'F32' | 'F16' | 'BF16';
}

export interface GemmaReferenceOutput {
  /** Hook name → [seq, width] row-major. */
  hooks: Map<string, Float64Array>;
  /** [seq, vocab] */
  logits: Float64Array;
}

function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] = ((u[0] + 0x7fff + ((u[0] >>> 16) & 1)) >>> 16) << 16;
  return f[0];
}

function f16(x: number): number {
  // Round to 11 significant bits (normal range is all the normalizer needs).
  const e = Math.floor(Math.log2(Math.abs(x)));
  const step = 2 ** (e - 10);
  const q = x / step;
  const r = Math.round(q);
  const even = Math.abs(q - Math.trunc(q)) === 0.5 && r % 2 !== 0 ? r - Math.sign(q) : r;
  return even * step;
}

function gain(w: Float32Array): Float64Array {
  return Float64Array.from(w, (v) => 1 + v);
}

function rms(x: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v) => v * inv);
}

function mulGain(x: Float64Array, g: Float64Array): Float64Array {
  return x.map((v, i) => v * g[i]);
}

/** nn.Linear: y[o] = Σ_i W[o, i] x[i], W stored [out, in]. */
function linear(W: Float32Array, x: Float64Array, out: number): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += W[o * n + i] * x[i];
    y[o] = s;
  }
  return y;
}

function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

export function gemmaReference(input: GemmaReferenceInput, tokens: number[]): GemmaReferenceOutput {
  const { config: c, family } = input;
  const T = (name: string): Float32Array => {
    const t = input.tensors.get(name);
    if (!t) throw new Error(`reference: no tensor ${name}`);
    return t;
  };
  const n = (key: string) => c[key] as number;
  const d = n('hidden_size');
  const H = n('num_attention_heads');
  const Hkv = n('num_key_value_heads');
  const hd = n('head_dim');
  const V = n('vocab_size');
  const F = n('intermediate_size');
  const L = n('num_hidden_layers');
  const eps = n('rms_norm_eps');
  const softcapAttn = (c.attn_logit_softcapping as number | null) ?? null;
  const softcapFinal = (c.final_logit_softcapping as number | null) ?? null;
  const scaling = n('query_pre_attn_scalar') ** -0.5;
  const layerTypes = c.layer_types as string[] | undefined;
  const isSliding = (l: number): boolean =>
    layerTypes
      ? layerTypes[l] === 'sliding_attention'
      : family === 'gemma2'
        ? l % 2 === 0
        : (l + 1) % n('sliding_window_pattern') !== 0;
  const scalingCfg = c.rope_scaling as { rope_type: string; factor: number } | null | undefined;
  const ropeOf = (l: number) => {
    if (family === 'gemma3' && isSliding(l)) return { theta: n('rope_local_base_freq'), factor: 1 };
    return { theta: n('rope_theta'), factor: scalingCfg && scalingCfg.rope_type === 'linear' ? scalingCfg.factor : 1 };
  };
  const root = Math.sqrt(d);
  const normalizer = input.dtype === 'BF16' ? bf16(root) : input.dtype === 'F16' ? f16(root) : Math.fround(root);

  const S = tokens.length;
  const hooks = new Map<string, Float64Array>();
  const record = (name: string, t: number, v: Float64Array) => {
    let buf = hooks.get(name);
    if (!buf) hooks.set(name, (buf = new Float64Array(S * v.length)));
    buf.set(v, t * v.length);
  };

  const E = T('embed_tokens.weight');
  let h: Float64Array[] = tokens.map((tok) =>
    Float64Array.from(E.subarray(tok * d, (tok + 1) * d), (v) => v * normalizer),
  );

  const rotate = (x: Float64Array, pos: number, theta: number, factor: number) => {
    const half = hd / 2;
    for (let head = 0; head < x.length / hd; head++) {
      for (let i = 0; i < half; i++) {
        const angle = (pos * theta ** (-(2 * i) / hd)) / factor;
        const a = head * hd + i;
        const b = a + half;
        const x0 = x[a];
        const x1 = x[b];
        x[a] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
        x[b] = x1 * Math.cos(angle) + x0 * Math.sin(angle);
      }
    }
  };
  const headNorm = (x: Float64Array, w: Float32Array) => {
    const g = gain(w);
    for (let head = 0; head < x.length / hd; head++)
      x.set(mulGain(rms(x.subarray(head * hd, (head + 1) * hd), eps), g), head * hd);
  };

  for (let l = 0; l < L; l++) {
    const p = `layers.${l}`;
    const hook = (k: string) => `blocks.${l}.${k}`;
    const qs: Float64Array[] = [];
    const ks: Float64Array[] = [];
    const vs: Float64Array[] = [];
    const { theta, factor } = ropeOf(l);
    for (let t = 0; t < S; t++) {
      record(hook('hook_resid_pre'), t, h[t]);
      const x = mulGain(rms(h[t], eps), gain(T(`${p}.input_layernorm.weight`)));
      const q = linear(T(`${p}.self_attn.q_proj.weight`), x, H * hd);
      const k = linear(T(`${p}.self_attn.k_proj.weight`), x, Hkv * hd);
      const v = linear(T(`${p}.self_attn.v_proj.weight`), x, Hkv * hd);
      record(hook('attn.hook_q'), t, q);
      record(hook('attn.hook_k'), t, k);
      record(hook('attn.hook_v'), t, v);
      if (family === 'gemma3') {
        headNorm(q, T(`${p}.self_attn.q_norm.weight`));
        headNorm(k, T(`${p}.self_attn.k_norm.weight`));
      }
      rotate(q, t, theta, factor);
      rotate(k, t, theta, factor);
      qs.push(q);
      ks.push(k);
      vs.push(v);
    }
    const window = isSliding(l) ? n('sliding_window') : Infinity;
    const rep = H / Hkv;
    const next: Float64Array[] = [];
    for (let t = 0; t < S; t++) {
      const z = new Float64Array(H * hd);
      for (let head = 0; head < H; head++) {
        const kv = Math.floor(head / rep);
        const keys: number[] = [];
        for (let u = 0; u <= t; u++) if (t - u < window) keys.push(u);
        const w = keys.map((u) => {
          let s = 0;
          for (let i = 0; i < hd; i++) s += qs[t][head * hd + i] * ks[u][kv * hd + i];
          s *= scaling;
          return softcapAttn === null ? s : Math.tanh(s / softcapAttn) * softcapAttn;
        });
        const m = Math.max(...w);
        const e = w.map((s) => Math.exp(s - m));
        const sum = e.reduce((a, b) => a + b, 0);
        keys.forEach((u, j) => {
          for (let i = 0; i < hd; i++) z[head * hd + i] += (e[j] / sum) * vs[u][kv * hd + i];
        });
      }
      record(hook('attn.hook_z'), t, z);
      const attnOut = mulGain(
        rms(linear(T(`${p}.self_attn.o_proj.weight`), z, d), eps),
        gain(T(`${p}.post_attention_layernorm.weight`)),
      );
      record(hook('hook_attn_out'), t, attnOut);
      const mid = h[t].map((v, i) => v + attnOut[i]);
      record(hook('hook_resid_mid'), t, mid);
      const normalized = rms(mid, eps);
      record(hook('ln2.hook_normalized'), t, normalized);
      const x2 = mulGain(normalized, gain(T(`${p}.pre_feedforward_layernorm.weight`)));
      const gate = linear(T(`${p}.mlp.gate_proj.weight`), x2, F);
      const up = linear(T(`${p}.mlp.up_proj.weight`), x2, F);
      record(hook('mlp.hook_pre'), t, gate);
      const post = gate.map((g, i) => geluTanh(g) * up[i]);
      record(hook('mlp.hook_post'), t, post);
      const mlpOut = mulGain(
        rms(linear(T(`${p}.mlp.down_proj.weight`), post, d), eps),
        gain(T(`${p}.post_feedforward_layernorm.weight`)),
      );
      record(hook('hook_mlp_out'), t, mlpOut);
      const out = mid.map((v, i) => v + mlpOut[i]);
      record(hook('hook_resid_post'), t, out);
      next.push(out);
    }
    h = next;
  }

  const head = c.tie_word_embeddings === false ? T('lm_head.weight') : E;
  const logits = new Float64Array(S * V);
  for (let t = 0; t < S; t++) {
    const f = mulGain(rms(h[t], eps), gain(T('norm.weight')));
    const row = linear(head, f, V);
    logits.set(softcapFinal === null ? row : row.map((x) => Math.tanh(x / softcapFinal) * softcapFinal), t * V);
  }
  return { hooks, logits };
}
