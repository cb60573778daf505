import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, startProgress } from '../src/commands/progress.js';

/** A stderr that is not a terminal (a log file, CI), with a clock the test moves. */
function logSink() {
  const lines: string[] = [];
  const stream = { isTTY: false, write: (s: string) => lines.push(s) > 0 } as unknown as NodeJS.WritableStream;
  return { lines, stream };
}

test('without a terminal, progress is one line per interval and per phase change, with rate and ETA', () => {
  const { lines, stream } = logSink();
  let t = 1_000_000;
  const p = startProgress('import', 'features', { stream, intervalMs: 10_000, now: () => t });
  t += 2000;
  p.update(500, 0.25); // 500 in 2 s = 250/s; a quarter done in 2 s leaves 6 s
  t += 3000;
  p.update(900, 0.45); // inside the interval: no line
  t += 1000;
  p.update(1000, 0.5, 'publishing'); // a phase change prints at once: 1000 in 6 s, 6 s left
  t += 10_000;
  p.update(3000, 0.75, 'publishing'); // 3000 in 16 s = 187.5/s; 16 × 0.25 / 0.75 ≈ 5.33 s left
  p.note('building the HNSW index…');
  p.stop();
  assert.deepEqual(lines, [
    'import: 500 features (25%), 250 features/s, ETA 0:06\n',
    'import: 1000 features (50%), 167 features/s, ETA 0:06, publishing\n',
    'import: 3000 features (75%), 188 features/s, ETA 0:05, publishing\n',
    'building the HNSW index…\n',
  ]);
});

test('durations print as m:ss or h:mm:ss, and an unknown ETA as ?', () => {
  assert.equal(formatDuration(0), '0:00');
  assert.equal(formatDuration(59.6), '1:00');
  assert.equal(formatDuration(3 * 3600 + 4 * 60 + 5), '3:04:05');
  assert.equal(formatDuration(Infinity), '?');
  const { lines, stream } = logSink();
  startProgress('build', 'tokens', { stream, now: () => 0 }).update(0, 0, 'reading the corpus');
  assert.deepEqual(lines, ['build: 0 tokens (0%), 0 tokens/s, ETA ?, reading the corpus\n']);
});
