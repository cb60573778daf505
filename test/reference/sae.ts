/**
 * Plain reference implementation of the published SAE formulas (SAELens semantics), written
 * independently of src/engine/sae and as simply as possible: one vector at a time, float64.
 *   x' = normalize(x) - b_dec (when applyBDecToInput)
 *   standard: relu(x' W_enc + b_enc)
 *   jumprelu: relu(pre) * (pre > threshold)
 *   topk:     the k largest entries of pre (ties: lower index), relu'd; others 0
 *   gated:    (x' W_enc + b_gate > 0) * relu(x' (W_enc * exp(r_mag)) + b_mag)
 *   x_hat = denormalize(codes W_dec + b_dec)
 * Transcoders (SAELens Transcoder / SkipTranscoder): applyBDecToInput is false, no normalization, and
 * x_hat is the output hook's estimate codes W_dec + b_dec, plus W_skip x (W_skip [d_out, d_in]) with
 * a skip connection.
 */
export interface RefConfig {
  architecture: 'standard' | 'jumprelu' | 'topk' | 'gated';
  dIn: number;
  dSae: number;
  k: number | null;
  applyBDecToInput: boolean;
  normalization: { kind: string; scalingFactor: number | null };
  transcoder?: { skip: boolean };
}

export interface RefParams {
  W_enc: ArrayLike<number>;
  b_enc?: ArrayLike<number>;
  W_dec: ArrayLike<number>;
  b_dec: ArrayLike<number>;
  threshold?: ArrayLike<number>;
  r_mag?: ArrayLike<number>;
  b_mag?: ArrayLike<number>;
  b_gate?: ArrayLike<number>;
  W_skip?: ArrayLike<number>;
}

const relu = (v: number): number => (v > 0 ? v : 0);

export function refForwardOne(cfg: RefConfig, p: RefParams, x: number[]): { codes: number[]; xHat: number[] } {
  const d = cfg.dIn;
  const m = cfg.dSae;
  // Normalization in, remembering how to undo it.
  let xn = x.slice();
  let undo = (y: number[]): number[] => y;
  const kind = cfg.normalization.kind;
  if (kind === 'expected_average_only_in' && cfg.normalization.scalingFactor !== null) {
    const s = cfg.normalization.scalingFactor;
    xn = x.map((v) => v * s);
    undo = (y) => y.map((v) => v / s);
  } else if (kind === 'constant_norm_rescale') {
    const norm = Math.sqrt(x.reduce((a, v) => a + v * v, 0));
    const c = Math.sqrt(d) / norm;
    xn = x.map((v) => v * c);
    undo = (y) => y.map((v) => v / c);
  } else if (kind === 'layer_norm') {
    const mu = x.reduce((a, v) => a + v, 0) / d;
    const std = Math.sqrt(x.reduce((a, v) => a + (v - mu) ** 2, 0) / (d - 1));
    xn = x.map((v) => (v - mu) / (std + 1e-5));
    undo = (y) => y.map((v) => v * std + mu);
  }
  const xs = cfg.applyBDecToInput ? xn.map((v, i) => v - p.b_dec[i]) : xn;
  const xW = (j: number): number => {
    let s = 0;
    for (let i = 0; i < d; i++) s += xs[i] * p.W_enc[i * m + j];
    return s;
  };
  let codes = new Array<number>(m).fill(0);
  if (cfg.architecture === 'gated') {
    for (let j = 0; j < m; j++) {
      const h = xW(j);
      const gate = h + p.b_gate![j] > 0;
      let mag = 0;
      for (let i = 0; i < d; i++) mag += xs[i] * (p.W_enc[i * m + j] * Math.exp(p.r_mag![j]));
      codes[j] = gate ? relu(mag + p.b_mag![j]) : 0;
    }
  } else {
    const pre = Array.from({ length: m }, (_, j) => xW(j) + p.b_enc![j]);
    if (cfg.architecture === 'standard') codes = pre.map(relu);
    else if (cfg.architecture === 'jumprelu') codes = pre.map((v, j) => (v > p.threshold![j] ? relu(v) : 0));
    else {
      const order = pre.map((v, j) => [v, j]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
      for (const [v, j] of order.slice(0, cfg.k!)) codes[j] = relu(v);
    }
  }
  const y = Array.from({ length: d }, (_, i) => {
    let s = p.b_dec[i];
    for (let j = 0; j < m; j++) s += codes[j] * p.W_dec[j * d + i];
    if (cfg.transcoder?.skip) for (let k = 0; k < d; k++) s += p.W_skip![i * d + k] * x[k];
    return s;
  });
  return { codes, xHat: undo(y) };
}

/** The `topK` largest codes, highest first, ties to the lower index. */
export function refTopK(codes: number[], topK: number): { indices: number[]; values: number[] } {
  const order = codes
    .map((v, j) => [v, j])
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, topK);
  return { indices: order.map((o) => o[1]), values: order.map((o) => o[0]) };
}

/**
 * Llama Scope (OpenMOSS Language-Model-SAEs) from its own hyperparams and tensors, float64, one
 * vector: x' = x·√d_model / norm_in; pre = x' encoder.weightᵀ + encoder.bias (x' − decoder.bias
 * first when apply_decoder_bias_to_pre_encoder); gate = pre·(‖decoder column j‖ when
 * sparsity_include_decoder_norm) > jump_relu_threshold; f = pre·gate;
 * x_hat = (f decoder.weightᵀ + decoder.bias)·norm_out / √d_model.
 */
export interface LlamaScopeHyper {
  d_model: number;
  d_sae: number;
  jump_relu_threshold: number;
  dataset_average_activation_norm: { in: number; out: number };
  apply_decoder_bias_to_pre_encoder?: boolean;
  sparsity_include_decoder_norm?: boolean;
}

export function refLlamaScopeOne(
  hp: LlamaScopeHyper,
  t: { encW: ArrayLike<number>; encB: ArrayLike<number>; decW: ArrayLike<number>; decB: ArrayLike<number> },
  x: number[],
): { codes: number[]; xHat: number[] } {
  const d = hp.d_model;
  const m = hp.d_sae;
  const sIn = Math.sqrt(d) / hp.dataset_average_activation_norm.in;
  const sOut = Math.sqrt(d) / hp.dataset_average_activation_norm.out;
  let xs = x.map((v) => v * sIn);
  if (hp.apply_decoder_bias_to_pre_encoder) xs = xs.map((v, i) => v - t.decB[i]);
  const codes = new Array<number>(m).fill(0);
  for (let j = 0; j < m; j++) {
    let pre = t.encB[j];
    for (let i = 0; i < d; i++) pre += xs[i] * t.encW[j * d + i]; // encoder.weight is [d_sae, d_model]
    let norm = 1;
    if (hp.sparsity_include_decoder_norm) {
      norm = 0;
      for (let i = 0; i < d; i++) norm += t.decW[i * m + j] ** 2; // decoder.weight is [d_model, d_sae]
      norm = Math.sqrt(norm);
    }
    codes[j] = pre * norm > hp.jump_relu_threshold ? pre : 0;
  }
  const xHat = Array.from({ length: d }, (_, i) => {
    let s = t.decB[i];
    for (let j = 0; j < m; j++) s += codes[j] * t.decW[i * m + j];
    return s / sOut;
  });
  return { codes, xHat };
}
