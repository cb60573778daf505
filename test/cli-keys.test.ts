/**
 * `atlas keys create|list|revoke` and `atlas explanations import` as commands, run in-process through
 * commander (a child process per command would cost seconds each) against the database the
 * environment names, on both backends.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { register as registerKeys } from '../src/commands/keys.js';
import { register as registerExplanations } from '../src/commands/explanations.js';
import { openDatabase } from '../src/db/client.js';
import { createApiKey, verifyApiKey, hashKey } from '../src/app/keys.js';
import { isAtlasError } from '../src/errors.js';
import { seedCatalog, FIXTURE } from './helpers/catalog-fixture.js';
import { createTestDatabase } from './helpers/postgres.js';
import { announceSkip } from './helpers/atlas-server.js';

/** Runs one atlas command line with the given environment; returns what it printed. */
async function atlas(env: Record<string, string>, ...args: string[]): Promise<string> {
  const program = new Command('atlas').exitOverride();
  registerKeys(program);
  registerExplanations(program);
  const saved = { ...process.env };
  const log = console.log;
  let out = '';
  Object.assign(process.env, env);
  console.log = (...parts: unknown[]) => {
    out += `${parts.join(' ')}\n`;
  };
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    console.log = log;
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
  return out;
}

for (const backend of ['pglite', 'postgres'] as const) {
  describe(`atlas keys on ${backend}`, () => {
    it(
      'creates a key shown once and stored hashed, lists it, revokes it by prefix; imports ' + 'explanations',
      async (t) => {
        const dir = mkdtempSync(join(tmpdir(), 'atlas-keys-'));
        let env: Record<string, string> = { ATLAS_DATA_DIR: dir, DATABASE_URL: '' };
        let drop = async (): Promise<void> => undefined;
        if (backend === 'postgres') {
          const pg = await createTestDatabase();
          if ('skip' in pg) {
            announceSkip('atlas keys on postgres', pg.skip);
            rmSync(dir, { recursive: true, force: true });
            return t.skip(pg.skip);
          }
          env = { ...env, DATABASE_URL: pg.url };
          drop = pg.drop;
        }
        const open = () => openDatabase({ databaseUrl: env.DATABASE_URL || undefined, dataDir: dir });
        try {
          const created = await atlas(env, 'keys', 'create', '--name', 'ci bot');
          const key = created.trim().split('\n').at(-1)!;
          assert.match(key, /^atlas_[A-Za-z0-9_-]{43}$/);
          assert.match(created, /^Created key 1 \(atlas_.{8}…\) for "ci bot"/);

          const db = await open();
          try {
            const [row] = await db.query<{ key_hash: string; prefix: string }>('SELECT key_hash, prefix FROM api_keys');
            assert.equal(row.key_hash, hashKey(key));
            assert.ok(!JSON.stringify(row).includes(key), 'the key itself is not stored');
            assert.deepEqual(await verifyApiKey(db, key), { ok: true, id: 1, name: 'ci bot' });
            await createApiKey(db, 'second');
            await assert.rejects(
              createApiKey(db, '  '),
              (e: unknown) => isAtlasError(e) && e.code === 'BAD_USER_INPUT',
            );
            await seedCatalog(db);
          } finally {
            await db.close();
          }

          await assert.rejects(
            atlas(env, 'keys', 'revoke', 'atlas_'),
            (e: unknown) => isAtlasError(e) && e.code === 'NOT_FOUND',
          );
          const revoked = await atlas(env, 'keys', 'revoke', key.slice(0, 12));
          assert.match(revoked, /^Revoked key 1 /);
          const listed = await atlas(env, 'keys', 'list');
          assert.match(listed, /^1\tatlas_\S{8}\t\S+\trevoked \S+\tci bot$/m);
          assert.match(listed, /^2\tatlas_\S{8}\t\S+\tactive\tsecond$/m);

          const file = join(dir, 'explanations.jsonl');
          writeFileSync(
            file,
            [
              { index: 1, text: 'one' },
              { index: 2, description: 'two', typeName: 'np' },
            ]
              .map((line) => `${JSON.stringify(line)}\n`)
              .join(''),
          );
          assert.match(
            await atlas(env, 'explanations', 'import', file, '--dictionary', FIXTURE.dict),
            /^Imported 2 explanations \(2 in tiny-dict\)\.$/m,
          );

          const after = await open();
          try {
            assert.deepEqual(await verifyApiKey(after, key), { ok: false, reason: 'revoked' });
            assert.equal((await verifyApiKey(after, 'atlas_unknown')).ok, false);
            const rows = await after.query<{ text: string; source: string }>(
              'SELECT text, source FROM explanations ORDER BY feature_idx',
            );
            assert.deepEqual(rows, [
              { text: 'one', source: 'import' },
              { text: 'two', source: 'np' },
            ]);
          } finally {
            await after.close();
          }
        } finally {
          await drop();
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  });
}
