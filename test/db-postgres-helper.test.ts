import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { createTestDatabase, DEFAULT_TEST_PG_URL } from './helpers/postgres.js';

async function query<R extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

test('createTestDatabase gives a throwaway database with pgvector, and drop() removes it', async (t) => {
  const db = await createTestDatabase();
  if ('skip' in db) {
    console.log(`SKIPPED db-postgres-helper: ${db.skip}`);
    t.skip(db.skip);
    return;
  }
  const adminUrl = process.env.ATLAS_TEST_PG_URL || DEFAULT_TEST_PG_URL;
  try {
    assert.match(db.name, /^atlas_test_[0-9a-f]{12}$/);
    assert.equal(new URL(db.url).pathname, `/${db.name}`);

    const ext = await query<{ extversion: string }>(
      db.url,
      `SELECT extversion FROM pg_extension WHERE extname = 'vector'`,
    );
    assert.equal(ext.length, 1);
    assert.match(ext[0].extversion, /^\d+\.\d+\.\d+$/);

    // Orthogonal unit vectors: cosine distance 1 - cos(90°) = 1.
    const [row] = await query<{ d: number }>(db.url, `SELECT '[1,0]'::vector <=> '[0,1]'::vector AS d`);
    assert.equal(row.d, 1);

    // The database is separate from the admin one: a table made here is not visible there.
    await query(db.url, 'CREATE TABLE probe (v vector(2))');
    const leaked = await query(adminUrl, `SELECT 1 FROM pg_tables WHERE tablename = 'probe'`);
    assert.equal(leaked.length, 0);
  } finally {
    await db.drop();
  }
  const left = await query(adminUrl, 'SELECT 1 FROM pg_database WHERE datname = $1', [db.name]);
  assert.equal(left.length, 0, `test database ${db.name} still exists after drop()`);
  await db.drop();
});

test('createTestDatabase returns a skip reason when the server is unreachable', async () => {
  const saved = process.env.ATLAS_TEST_PG_URL;
  // Port 1 is privileged and unused, so the connection is refused at once.
  process.env.ATLAS_TEST_PG_URL = 'postgres://postgres:secret@127.0.0.1:1/postgres';
  try {
    const db = await createTestDatabase();
    assert.ok('skip' in db, 'expected a skip reason');
    assert.match(db.skip, /unreachable/);
    assert.match(db.skip, /127\.0\.0\.1:1/);
    assert.doesNotMatch(db.skip, /secret/, 'the password must not appear in the message');
  } finally {
    if (saved === undefined) delete process.env.ATLAS_TEST_PG_URL;
    else process.env.ATLAS_TEST_PG_URL = saved;
  }
});
