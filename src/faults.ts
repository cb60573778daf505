/**
 * Named fault points for the kill tests: a process started with ATLAS_FAULT=<point> kills itself with
 * SIGKILL on reaching that point, so a test can stop an import or a build exactly where it wants
 * (instead of after a guessed delay) and then check that nothing half-written is visible.
 */
export const FAULT_POINTS = [
  /** Weights stored by content (src/app/artifacts.ts); no catalog row yet. */
  'import:staged',
  /** `--replace`, inside the swap transaction: the old dictionary's rows are deleted, the new one not yet renamed. */
  'import:replaced',
  /** The first batch of decoder rows is in. */
  'import:rows',
  /** Every row is in; the index build (`--replace`: the swap) is next. */
  'import:indexing',
  /** The index is built; the state flips to ready next (`--replace`: inside the swap transaction). */
  'import:indexed',
  /** `atlas build`: the first batch of the corpus is accumulated. */
  'build:corpus',
  /** Inside the publish transaction, after the first dictionary's feature statistics. */
  'build:publish',
] as const;

export type FaultPoint = (typeof FAULT_POINTS)[number];

export function faultPoint(point: FaultPoint): void {
  if (process.env.ATLAS_FAULT === point) process.kill(process.pid, 'SIGKILL');
}
