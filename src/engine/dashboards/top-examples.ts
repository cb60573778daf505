/**
 * The contexts on which each feature fires hardest: a bounded min-heap per feature, keyed by the
 * feature's largest activation in the context, so memory is features × TOP_EXAMPLES whatever the
 * corpus size. An example keeps only the positions where the feature is active (the rest are 0).
 */

export const TOP_EXAMPLES = 20;

/** The active codes of the features a context was kept for, feature after feature; shared by its examples. */
export interface ContextCodes {
  positions: Uint16Array;
  values: Float32Array;
}

/** One context as seen by one feature. Positions count non-BOS tokens from 0. */
export interface Example {
  /** The context's running number (equal activations rank the earlier context first). */
  seq: number;
  /** The context's token ids without BOS; shared by every example of the context. */
  tokens: Int32Array;
  maxValue: number;
  maxPosition: number;
  /** The feature's active positions and values: codes.positions/values[start, start + count). */
  codes: ContextCodes;
  start: number;
  count: number;
}

/** Whether a ranks below b: lower activation, or equal activation from a later context. */
const below = (a: Example, b: Example): boolean =>
  a.maxValue < b.maxValue || (a.maxValue === b.maxValue && a.seq > b.seq);

export class TopExamples {
  private readonly heaps: (Example[] | undefined)[];

  constructor(
    readonly dSae: number,
    readonly size = TOP_EXAMPLES,
  ) {
    this.heaps = new Array(dSae);
  }

  /** Whether a context whose largest activation of f is v (and comes after all seen) would be kept. */
  wants(f: number, v: number): boolean {
    const h = this.heaps[f];
    return !h || h.length < this.size || v > h[0].maxValue;
  }

  offer(f: number, e: Example): void {
    let h = this.heaps[f];
    if (!h) h = this.heaps[f] = [];
    if (h.length < this.size) {
      h.push(e);
      siftUp(h, h.length - 1);
    } else if (below(h[0], e)) {
      h[0] = e;
      siftDown(h, 0);
    }
  }

  /** Every example kept, in no order. */
  *all(): Generator<Example> {
    for (const h of this.heaps) if (h) yield* h;
  }

  /** Feature f's examples, strongest first. */
  sorted(f: number): Example[] {
    return [...(this.heaps[f] ?? [])].sort((a, b) => (below(a, b) ? 1 : below(b, a) ? -1 : 0));
  }
}

function siftUp(h: Example[], i: number): void {
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!below(h[i], h[p])) return;
    [h[i], h[p]] = [h[p], h[i]];
    i = p;
  }
}

function siftDown(h: Example[], i: number): void {
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < h.length && below(h[l], h[m])) m = l;
    if (r < h.length && below(h[r], h[m])) m = r;
    if (m === i) return;
    [h[i], h[m]] = [h[m], h[i]];
    i = m;
  }
}
