/**
 * Co-activation of feature pairs across two dictionaries read at the same tokens (same model and
 * hook, encoded during one `atlas build`): for each pair (parent p in the narrower dictionary,
 * child c in the wider one) the number of tokens where both codes are nonzero,
 *   both[p, c] = #{t : z_parent[t, p] > 0 and z_child[t, c] > 0},
 * and for each pair its parent's firing count parent[p] = #{t : z_parent[t, p] > 0}, so that
 * both / parent is the share of the parent's tokens on which the child fires too.
 *
 * Memory is bounded by the pairs and the two widths, never by the corpus: the pairs are grouped by
 * parent (CSR), and each token stamps its active children into a per-child array, so a token costs
 * its active children plus the pairs of its active parents.
 */

/** One token batch's exact codes: [n, k] indices and values, highest first, 0 ends a row's list. */
export interface TokenCodes {
  n: number;
  k: number;
  indices: Int32Array;
  values: Float32Array;
}

export interface FeaturePairs {
  parents: Int32Array;
  children: Int32Array;
}

export class CoActivation {
  /** Pair ids grouped by parent: pairsOf[start[p] .. start[p+1]). */
  private readonly start: Int32Array;
  private readonly pairsOf: Int32Array;
  private readonly pairChild: Int32Array;
  private readonly childStamp: Float64Array;
  private readonly parentCount: Float64Array;
  private readonly bothCount: Float64Array;
  private token = 0;

  constructor(
    readonly pairs: FeaturePairs,
    parentWidth: number,
    childWidth: number,
  ) {
    const m = pairs.parents.length;
    if (pairs.children.length !== m) throw new RangeError('parents and children differ in length');
    this.start = new Int32Array(parentWidth + 1);
    for (let i = 0; i < m; i++) this.start[pairs.parents[i] + 1]++;
    for (let p = 0; p < parentWidth; p++) this.start[p + 1] += this.start[p];
    const fill = this.start.slice(0, parentWidth);
    this.pairsOf = new Int32Array(m);
    for (let i = 0; i < m; i++) this.pairsOf[fill[pairs.parents[i]]++] = i;
    this.pairChild = pairs.children;
    this.childStamp = new Float64Array(childWidth).fill(-1);
    this.parentCount = new Float64Array(parentWidth);
    this.bothCount = new Float64Array(m);
  }

  /** Counts one batch; row r of both encodings is the same token. */
  add(parent: TokenCodes, child: TokenCodes): void {
    if (parent.n !== child.n) throw new RangeError(`the two encodings hold ${parent.n} and ${child.n} tokens`);
    const { start, pairsOf, pairChild, childStamp, parentCount, bothCount } = this;
    for (let r = 0; r < parent.n; r++) {
      const t = this.token++;
      for (let j = 0, base = r * child.k; j < child.k; j++) {
        if (!(child.values[base + j] > 0)) break;
        childStamp[child.indices[base + j]] = t;
      }
      for (let j = 0, base = r * parent.k; j < parent.k; j++) {
        if (!(parent.values[base + j] > 0)) break;
        const p = parent.indices[base + j];
        parentCount[p]++;
        for (let s = start[p], e = start[p + 1]; s < e; s++) {
          const i = pairsOf[s];
          if (childStamp[pairChild[i]] === t) bothCount[i]++;
        }
      }
    }
  }

  /** Per pair, in the order given: tokens where both fire and tokens where the parent fires. */
  counts(): { both: Float64Array; parent: Float64Array } {
    const parent = new Float64Array(this.pairs.parents.length);
    for (let i = 0; i < parent.length; i++) parent[i] = this.parentCount[this.pairs.parents[i]];
    return { both: this.bothCount.slice(), parent };
  }
}
