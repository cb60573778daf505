/** `atlas serve` as a user runs it: start line, queries, a second server on the same data, clean shutdown. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../src/db/client.js';
import { createTestDatabase } from './helpers/postgres.js';
import { announceSkip } from './helpers/atlas-server.js';

const ATLAS = join(import.meta.dirname, '..', 'bin', 'atlas.mjs');
const MIGRATIONS: number = JSON.parse(
  readFileSync(join(import.meta.dirname, '..', 'migrations', 'meta', '_journal.json'), 'utf8'),
).entries.length;

function startAtlas(
  args: string[],
  env: Record<string, string>,
): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [ATLAS, ...args], {
    env: { ...process.env, ATLAS_DEMO: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exit };
}

async function waitFor(output: () => string, pattern: RegExp, ms = 60_000): Promise<RegExpMatchArray> {
  const end = Date.now() + ms;
  for (;;) {
    const m = output().match(pattern);
    if (m) return m;
    if (Date.now() > end) throw new Error(`timed out waiting for ${pattern}; output so far:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('atlas serve', () => {
  it(
    'starts on PGlite, answers, refuses a second server on the same data dir, and stops cleanly on ' + 'SIGTERM',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'atlas-serve-'));
      const first = startAtlas(['serve', '--port', '0'], { ATLAS_DATA_DIR: dir, DATABASE_URL: '' });
      try {
        const [, url] = await waitFor(first.output, /listening on (http:\/\/\S+)/);
        assert.match(first.output(), /database: PGlite .*execution provider: cpu/);
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: '{ serverInfo { database } models { id } }' }),
        });
        const body = (await res.json()) as any;
        assert.deepEqual(body.data.models, []);
        assert.match(body.data.serverInfo.database, /^pglite/);

        const second = startAtlas(['serve', '--port', '0'], { ATLAS_DATA_DIR: dir, DATABASE_URL: '' });
        assert.equal(await second.exit, 1);
        assert.match(second.output(), /CONFLICT: The embedded database in .* is in use by process \d+/);

        first.child.kill('SIGTERM');
        assert.equal(await first.exit, 0);
        assert.match(first.output(), /SIGTERM: finishing in-flight requests/);
        assert.equal(existsSync(join(dir, 'pglite.lock')), false);
      } finally {
        first.child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('two servers migrating one PostgreSQL database at once both succeed', async (t) => {
    const pg = await createTestDatabase();
    if ('skip' in pg) {
      announceSkip('concurrent PostgreSQL migrations', pg.skip);
      return t.skip(pg.skip);
    }
    try {
      const [a, b] = await Promise.all([
        openDatabase({ databaseUrl: pg.url, dataDir: tmpdir() }),
        openDatabase({ databaseUrl: pg.url, dataDir: tmpdir() }),
      ]);
      const rows = await a.query<{ n: number }>('SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations');
      assert.equal(rows[0].n, MIGRATIONS);
      const again = await openDatabase({ databaseUrl: pg.url, dataDir: tmpdir() });
      assert.equal(
        (await again.query<{ n: number }>('SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations'))[0].n,
        MIGRATIONS,
      );
      await Promise.all([a.close(), b.close(), again.close()]);
    } finally {
      await pg.drop();
    }
  });

  it('a PostgreSQL URL that cannot be reached is a clear error', async () => {
    const run = startAtlas(['serve', '--port', '0'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    assert.equal(await run.exit, 1);
    assert.match(run.output(), /BAD_USER_INPUT: Cannot connect to PostgreSQL 127\.0\.0\.1:1\/none.*Check DATABASE_URL/);
  });
});
