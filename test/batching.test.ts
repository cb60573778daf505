/**
 * The dynamic batcher (src/engine/batching.ts) on a mocked clock: a request finding it idle runs at
 * once with no time passing, what arrives during a run shares the next one, the budget splits batches,
 * the queue bound (OVERLOADED with a retry hint) and the per-request deadline (DEADLINE_EXCEEDED); with
 * `gather`, what is submitted in one turn of the event loop shares a run started on the next. A pool of
 * batchers drops an idle one whose key is no longer live and keeps its counts in the totals.
 */
import { describe, it, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher, BatcherPool, type BatcherOptions } from '../src/engine/batching.js';
import { isAtlasError } from '../src/errors.js';

const OPTS: BatcherOptions = { budget: 10, maxQueue: 100, timeoutMs: 1000, merge: true };

/** A batcher whose runs are recorded and finish when the test says so. */
function recorder(opts: Partial<BatcherOptions> = {}) {
  const runs: number[][] = [];
  const pending: (() => void)[] = [];
  const batcher = new Batcher<number, number>(
    (items) => {
      runs.push(items);
      return new Promise((resolve) => pending.push(() => resolve(items.map((i) => i * 2))));
    },
    (i) => i,
    { ...OPTS, ...opts },
  );
  const finishRun = async () => {
    pending.shift()!();
    await flushMicrotasks();
  };
  return { batcher, runs, finishRun };
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

const code = (c: string) => (e: unknown) => isAtlasError(e) && e.code === c;

describe('Batcher', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'] }));
  afterEach(() => mock.timers.reset());

  it('runs a lone request at once, with no time passing, and batches what arrives during a run', async () => {
    const { batcher, runs, finishRun } = recorder();
    const lone = batcher.submit(1);
    assert.deepEqual(runs, [[1]], 'the run starts within submit(), before any timer or microtask');
    const during = [batcher.submit(2), batcher.submit(3), batcher.submit(4)];
    await flushMicrotasks();
    assert.deepEqual(runs, [[1]], 'one run at a time: the others queue');
    await finishRun();
    assert.deepEqual(runs, [[1], [2, 3, 4]], 'what queued during the run goes in the next one, at once');
    await finishRun();
    assert.deepEqual(await Promise.all([lone, ...during]), [2, 4, 6, 8]);
    assert.deepEqual(batcher.counts, { runs: 2, requests: 4, largest: 3 });
    const again = batcher.submit(5);
    assert.deepEqual(runs.at(-1), [5], 'idle again: the next request runs at once too');
    await finishRun();
    assert.equal(await again, 10);
  });

  it('splits what queued during a run by the budget', async () => {
    const { batcher, runs, finishRun } = recorder();
    const first = batcher.submit(1);
    const out = [4, 5, 3, 20].map((i) => batcher.submit(i));
    await finishRun();
    assert.deepEqual(runs, [[1], [4, 5]], 'the budget of 10: 4 + 5 + 3 would pass it');
    await finishRun();
    assert.deepEqual(runs.at(-1), [3], 'the rest goes next, one run at a time');
    await finishRun();
    assert.deepEqual(runs.at(-1), [20], 'a request over the budget runs alone');
    await finishRun();
    assert.deepEqual(await Promise.all([first, ...out]), [2, 8, 10, 6, 40]);
  });

  it('with merging off every request runs alone', async () => {
    const { batcher, runs, finishRun } = recorder({ merge: false });
    const out = [1, 2].map((i) => batcher.submit(i));
    await flushMicrotasks();
    assert.deepEqual(runs, [[1]]);
    await finishRun();
    await finishRun();
    assert.deepEqual(runs, [[1], [2]]);
    assert.deepEqual(await Promise.all(out), [2, 4]);
  });

  it('with gather, what is submitted in one turn shares a run, which starts on the next turn', async () => {
    const { batcher, runs, finishRun } = recorder({ gather: true });
    const nextTurn = () => new Promise((resolve) => setImmediate(resolve));
    const together = [1, 2, 3].map((i) => batcher.submit(i));
    await flushMicrotasks();
    assert.deepEqual(runs, [], 'nothing starts within the turn');
    await nextTurn();
    assert.deepEqual(runs, [[1, 2, 3]], 'one run for the three');
    const during = batcher.submit(4);
    await finishRun();
    assert.deepEqual(runs, [[1, 2, 3]], 'what queued during the run waits for the next turn too');
    await nextTurn();
    assert.deepEqual(runs, [[1, 2, 3], [4]]);
    await finishRun();
    assert.deepEqual(await Promise.all([...together, during]), [2, 4, 6, 8]);
    assert.deepEqual(batcher.counts, { runs: 2, requests: 4, largest: 3 });
  });

  it('refuses past the queue bound with OVERLOADED and a retry hint from the measured run time', async () => {
    const { batcher, finishRun } = recorder({ maxQueue: 2 });
    const first = batcher.submit(1);
    await flushMicrotasks();
    mock.timers.tick(200);
    await finishRun(); // one 200 ms run measured
    await first;
    const held = [batcher.submit(1), batcher.submit(1)];
    await assert.rejects(batcher.submit(1), (e: unknown) => {
      assert.ok(code('OVERLOADED')(e));
      const retry = (e as { details: { retryAfterMs: number } }).details.retryAfterMs;
      assert.ok(retry >= 50 && retry <= 400, `retry hint ${retry} ms`);
      return true;
    });
    await flushMicrotasks();
    await finishRun();
    await finishRun();
    await Promise.all(held);
  });

  it('a request not finished by its deadline fails with DEADLINE_EXCEEDED; the others are unaffected', async () => {
    const { batcher, runs, finishRun } = recorder({ timeoutMs: 100 });
    const slow = batcher.submit(1);
    await flushMicrotasks();
    const queued = batcher.submit(2);
    const deadline = assert.rejects(queued, code('DEADLINE_EXCEEDED'));
    mock.timers.tick(100);
    await deadline;
    await assert.rejects(slow, code('DEADLINE_EXCEEDED'));
    await finishRun();
    assert.deepEqual(runs, [[1]], 'an expired request is dropped from the queue');
  });
});

describe('BatcherPool', () => {
  it('drops an idle batcher whose key is no longer live, keeps a busy one, and its totals never go back', async () => {
    const live = new Set(['a', 'b']);
    const pool = new BatcherPool<number, number>(() => live);
    const made: Record<string, ReturnType<typeof recorder>> = {};
    const get = (key: string) => pool.get(key, () => (made[key] = recorder()).batcher);
    const a1 = get('a').submit(1);
    const b1 = get('b').submit(2);
    await made.a.finishRun();
    assert.equal(await a1, 2);
    assert.equal(get('a'), made.a.batcher, 'a live key keeps its batcher');
    assert.deepEqual(pool.stats(), { runs: 2, requests: 2, largest: 1, depth: 1 });

    live.clear(); // both versions replaced: 'a' is idle, 'b' still has a request running
    assert.deepEqual(pool.stats(), { runs: 2, requests: 2, largest: 1, depth: 1 }, 'counts kept after the drop');
    assert.equal(pool.size, 1, 'the idle batcher went, the busy one stays until its request ends');
    await made.b.finishRun();
    assert.equal(await b1, 4);
    assert.deepEqual(pool.stats(), { runs: 2, requests: 2, largest: 1, depth: 0 });
    assert.equal(pool.size, 0);

    const first = made.a.batcher;
    const a2 = get('a').submit(3);
    assert.notEqual(made.a.batcher, first, 'a key used again gets a new batcher');
    await made.a.finishRun();
    assert.equal(await a2, 6);
    assert.deepEqual(pool.stats(), { runs: 3, requests: 3, largest: 1, depth: 0 });
  });
});
