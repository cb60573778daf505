/**
 * Rotary position embeddings with the scalings of transformers' modeling_rope_utils.py, as graph pieces.
 *
 * Frequencies over the rotated dims r (= rotaryDim, the first r of each head): inv_freq_i = θ^(−2i/r),
 * i < r/2, then per scaling type:
 *   linear   inv_freq / factor
 *   llama3   wavelen = 2π/inv_freq; wavelen > L/low → inv_freq/factor; wavelen < L/high → unchanged;
 *            between: (1 − s)·inv_freq/factor + s·inv_freq, s = (L/wavelen − low)/(high − low)
 *   yarn     ramp over i from the correction range of beta_fast/beta_slow at L:
 *            inv_freq = interp·(1 − e) + extrap·e with extrap = inv_freq, interp = inv_freq/factor,
 *            e = 1 − clamp((i − low)/(high − low), 0, 1); cos and sin are multiplied by attention_factor
 *   dynamic  θ' = θ·(factor·T/M − (factor − 1))^(r/(r−2)) with T = max(sequence length, M) and M =
 *            max_position_embeddings, recomputed per row from its own length (transformers recomputes
 *            it from the longest position of the call, which is the same for a sequence run alone)
 * The angle of position p is p·inv_freq_i (float32 in the graph, as transformers computes it).
 * Styles: 'half' rotates (x_i, x_{i+r/2}) (rotate_half, HF checkpoints), 'interleaved' (x_2i, x_2i+1) (llama2.c).
 */
import type { TransformerConfig } from '../model/types.js';
import type { GraphBuilder } from './layers.js';

/** inv_freq (float64) and the factor applied to cos and sin, for every scaling but dynamic's per-length part. */
export function ropeFrequencies(c: TransformerConfig): { invFreq: Float64Array; attentionFactor: number } {
  const r = c.rotaryDim ?? c.dHead;
  const half = r / 2;
  const base = Float64Array.from({ length: half }, (_, i) => Math.pow(c.ropeTheta, (-2 * i) / r));
  const s = c.ropeScaling;
  if (!s || s.type === 'dynamic') return { invFreq: base, attentionFactor: 1 };
  if (s.type === 'linear') return { invFreq: base.map((f) => f / s.factor), attentionFactor: 1 };
  if (s.type === 'llama3') {
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositions / s.highFreqFactor;
    const invFreq = base.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) return f / s.factor;
      if (wavelen < highWavelen) return f;
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      return ((1 - smooth) * f) / s.factor + smooth * f;
    });
    return { invFreq, attentionFactor: 1 };
  }
  // yarn
  const correctionDim = (rotations: number) =>
    (r * Math.log(s.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(c.ropeTheta));
  let low = correctionDim(s.betaFast);
  let high = correctionDim(s.betaSlow);
  if (s.truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, r - 1);
  if (low === high) high += 0.001;
  const invFreq = base.map((f, i) => {
    const extrapolation = 1 - Math.min(1, Math.max(0, (i - low) / (high - low)));
    return (f / s.factor) * (1 - extrapolation) + f * extrapolation;
  });
  return { invFreq, attentionFactor: s.attentionFactor };
}

export interface Rope {
  /** cos and sin of the angles, broadcastable against the rotated halves [batch, heads, seq, r/2] (+ [1] if paired). */
  cos: string;
  sin: string;
}

/** cos/sin at `positions` ([seq] int64) for the config's rotary dims and scaling. */
export function ropeAngles(g: GraphBuilder, c: TransformerConfig, positions: string): Rope {
  const r = c.rotaryDim ?? c.dHead;
  const half = r / 2;
  const { invFreq, attentionFactor } = ropeFrequencies(c);
  const posF = g.op('Cast', [positions], { to: 1 /* FLOAT */ });
  let angles: string;
  const s = c.ropeScaling;
  if (s?.type === 'dynamic') {
    // Per row: T = tokens of the row (attention_mask sum), ln θ' = ln θ + r/(r−2)·ln(max(factor·T/M − factor + 1, 1)).
    const T = g.op('ReduceSum', [g.op('Cast', ['attention_mask'], { to: 1 }), g.ints(g.t('const.axes_1'), [1])], {
      keepdims: 1,
    }); // [B, 1]
    const scalar = (v: number) => g.float(g.t('const.rope_dyn'), [], new Float32Array([v]));
    const ratio = g.op('Max', [
      g.op('Sub', [g.op('Mul', [T, scalar(s.factor / s.maxPositions)]), scalar(s.factor - 1)]),
      scalar(1),
    ]);
    const lnBase = g.op('Add', [
      g.op('Mul', [g.op('Log', [ratio]), scalar(r / (r - 2))]),
      scalar(Math.log(c.ropeTheta)),
    ]); // [B, 1]
    const exponents = g.float(
      g.t('const.rope_exponents'),
      [half],
      Float32Array.from({ length: half }, (_, i) => (-2 * i) / r),
    );
    const rowFreq = g.op('Exp', [g.op('Mul', [lnBase, exponents])]); // [B, half]
    const pos3 = g.op('Unsqueeze', [posF, g.ints(g.t('const.axes_0_2'), [0, 2])]); // [1, S, 1]
    angles = g.op('Unsqueeze', [
      g.op('Mul', [pos3, g.op('Unsqueeze', [rowFreq, g.ints(g.t('const.axes_1'), [1])])]),
      g.ints(g.t('const.axes_1'), [1]),
    ]); // [B, 1, S, half]
  } else {
    const freq = g.float(g.t('rope.inv_freq'), [half], Float32Array.from(invFreq));
    angles = g.op('Mul', [g.op('Unsqueeze', [posF, g.ints(g.t('const.axes_1'), [1])]), freq]); // [S, half]
  }
  let cos = g.op('Cos', [angles]);
  let sin = g.op('Sin', [angles]);
  if (attentionFactor !== 1) {
    const f = g.float(g.t('const.rope_attention_factor'), [], new Float32Array([attentionFactor]));
    cos = g.op('Mul', [cos, f]);
    sin = g.op('Mul', [sin, f]);
  }
  if (c.ropeStyle === 'interleaved') {
    const last = g.ints(g.t('const.axis_last'), [-1]);
    cos = g.op('Unsqueeze', [cos, last]);
    sin = g.op('Unsqueeze', [sin, last]);
  }
  return { cos, sin };
}

/** Rotates the first r dims of x [batch, heads, seq, dHead]; the rest pass through. */
export function applyRope(g: GraphBuilder, c: TransformerConfig, x: string, rope: Rope): string {
  const r = c.rotaryDim ?? c.dHead;
  let rot = x;
  let pass: string | null = null;
  if (r < c.dHead)
    [rot, pass] = g.ops(
      'Split',
      [x, g.ints(g.t('const.rope_split'), [r, c.dHead - r])],
      [g.t('rope_rot'), g.t('rope_pass')],
      { axis: 3 },
    );
  const interleaved = c.ropeStyle === 'interleaved';
  const src = interleaved ? g.op('Reshape', [rot, g.ints(g.t('const.shape_pairs'), [0, 0, 0, -1, 2])]) : rot;
  const axis = interleaved ? 4 : 3;
  const [a, b] = g.ops('Split', [src], [g.t('rope_a'), g.t('rope_b')], { axis });
  const first = g.op('Sub', [g.op('Mul', [a, rope.cos]), g.op('Mul', [b, rope.sin])]);
  const second = g.op('Add', [g.op('Mul', [b, rope.cos]), g.op('Mul', [a, rope.sin])]);
  const joined = g.op('Concat', [first, second], { axis });
  const rotated = interleaved ? g.op('Reshape', [joined, g.ints(g.t('const.shape_unpair'), [0, 0, 0, r])]) : joined;
  return pass ? g.op('Concat', [rotated, pass], { axis: 3 }) : rotated;
}
