/**
 * Examples across a feature's activation range, as dashboards show below the top examples.
 *
 * Bands are octaves below the feature's maximum, so they can be kept exactly while streaming: with
 * E = ceil(log2 max), band BANDS-1 holds contexts whose largest activation a of the feature lies
 * in (2^(E-1), 2^E], the next band (2^(E-2), 2^(E-1)], and band 0 everything at or below
 * 2^(E-BANDS+1). Each band keeps a uniform random sample of its contexts without replacement:
 * every context draws a random key and a band keeps the PER_BAND smallest. When the running
 * maximum enters a higher octave the bands shift down and the lowest ones merge; the smallest
 * keys of a union are the smallest keys of its parts' samples, so merging stays exact. The keys
 * come from a seeded generator, so a build is reproducible.
 */
import type { Example } from './top-examples.js';

export const BANDS = 5;
export const PER_BAND = 5;

/** A context's draw for one feature: its random key and the octave of its largest activation. */
export interface QuantileDraw {
  key: number;
  octave: number;
}

interface Sampled {
  key: number;
  /** ceil(log2 a) of the example's largest activation. */
  octave: number;
  example: Example;
}

export interface Band {
  band: number;
  /** Activation range of the band: (lower, upper]; lower is 0 for band 0. */
  lower: number;
  upper: number;
  examples: Example[];
}

export const octaveOf = (v: number): number => Math.ceil(Math.log2(v));

/** The bands' ranges for a feature whose maximum activation is `max` (> 0). */
export function bandRanges(max: number): { band: number; lower: number; upper: number }[] {
  const top = octaveOf(max);
  return Array.from({ length: BANDS }, (_, band) => {
    const upper = 2 ** (top - (BANDS - 1 - band));
    return { band, lower: band === 0 ? 0 : upper / 2, upper };
  });
}

export class QuantileExamples {
  /** Running ceil(log2 max) per feature; NaN before the first firing. */
  private readonly top: Float64Array;
  private readonly samples: (Sampled[] | undefined)[];
  /** Per feature and band: the largest kept key and how many are kept, for a fast refusal. */
  private readonly worst: Float64Array;
  private readonly kept: Uint8Array;
  private rand: () => number;

  constructor(
    readonly dSae: number,
    seed = 0x9e3779b9,
  ) {
    this.top = new Float64Array(dSae).fill(NaN);
    this.samples = new Array(dSae);
    this.worst = new Float64Array(dSae * BANDS);
    this.kept = new Uint8Array(dSae * BANDS);
    this.rand = xorshift(seed);
  }

  private bandOf(f: number, octave: number): number {
    return BANDS - 1 - Math.min(BANDS - 1, this.top[f] - octave);
  }

  /**
   * Draws the context's key and returns it when a context whose largest activation of f is v
   * would be sampled, else null. Call once per (feature, context) in which the feature fires.
   */
  draw(f: number, v: number): QuantileDraw | null {
    const key = this.rand();
    const octave = octaveOf(v);
    if (!(octave <= this.top[f])) {
      this.raise(f, octave);
    }
    const slot = f * BANDS + this.bandOf(f, octave);
    return this.kept[slot] < PER_BAND || key < this.worst[slot] ? { key, octave } : null;
  }

  offer(f: number, draw: QuantileDraw, example: Example): void {
    const list = (this.samples[f] ??= []);
    const band = this.bandOf(f, draw.octave);
    list.push({ key: draw.key, octave: draw.octave, example });
    const slot = f * BANDS + band;
    if (this.kept[slot] < PER_BAND) {
      // Room left: nothing to drop, only the bookkeeping trim would refresh.
      this.kept[slot]++;
      if (draw.key > this.worst[slot] || this.kept[slot] === 1) this.worst[slot] = draw.key;
      return;
    }
    this.trim(f, band);
  }

  /** The running maximum moved into a higher octave: bands shift and the lowest merge. */
  private raise(f: number, octave: number): void {
    this.top[f] = octave;
    for (let b = 0; b < BANDS; b++) this.trim(f, b);
  }

  /** Keeps band b's PER_BAND smallest keys and refreshes its bookkeeping. */
  private trim(f: number, b: number): void {
    const list = this.samples[f] ?? [];
    const inBand = list.filter((s) => this.bandOf(f, s.octave) === b).sort((x, y) => x.key - y.key);
    if (inBand.length > PER_BAND) {
      const drop = new Set(inBand.slice(PER_BAND));
      this.samples[f] = list.filter((s) => !drop.has(s));
      inBand.length = PER_BAND;
    }
    const slot = f * BANDS + b;
    this.kept[slot] = inBand.length;
    this.worst[slot] = inBand.length ? inBand[inBand.length - 1].key : 0;
  }

  /** Every example kept, in no order. */
  *all(): Generator<Example> {
    for (const list of this.samples) if (list) for (const s of list) yield s.example;
  }

  /** Feature f's bands, lowest first, each with its examples strongest first; null if it never fired. */
  bands(f: number, max: number): Band[] | null {
    if (!(max > 0)) return null;
    const list = this.samples[f] ?? [];
    return bandRanges(max).map((r) => ({
      ...r,
      examples: list
        .filter((s) => this.bandOf(f, s.octave) === r.band)
        .map((s) => s.example)
        .sort((a, b) => b.maxValue - a.maxValue || a.seq - b.seq),
    }));
  }
}

/** xorshift32 in [0, 1). */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}
