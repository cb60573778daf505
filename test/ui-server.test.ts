/**
 * src/web.ts over HTTP on a folder laid out like vite's output: which paths get index.html, the
 * caching and gzip of assets, path traversal, and the page shown before the UI is built.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createWebUi } from '../src/web.js';
import { tempDir } from './helpers/sae-fixtures.js';

/** A raw GET (fetch would decompress and hide content-encoding). */
function get(
  url: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function serve(dir: string): Promise<{ server: Server; base: string }> {
  const web = createWebUi(dir);
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (!web.handle(req, res, path)) {
      res.writeHead(404);
      res.end('not ours');
    }
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      resolve({ server, base: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}` });
    }),
  );
}

describe('web UI static serving', () => {
  const files = tempDir('atlas-web-');
  const built = join(files.dir, 'built');
  const script = 'console.log("atlas");'.repeat(200);
  let up: { server: Server; base: string };
  let bare: { server: Server; base: string };

  before(async () => {
    mkdirSync(join(built, 'assets'), { recursive: true });
    writeFileSync(join(built, 'index.html'), '<!doctype html><title>index</title>');
    writeFileSync(join(built, 'graphiql.html'), '<!doctype html><title>graphiql</title>');
    writeFileSync(join(built, 'assets', 'index-abc123.js'), script);
    writeFileSync(join(files.dir, 'secret.txt'), 'outside');
    up = await serve(built);
    bare = await serve(join(files.dir, 'missing'));
  });
  after(() => {
    up.server.close();
    bare.server.close();
    files.cleanup();
  });

  it('answers every client-side route with index.html and GraphiQL at /graphiql', async () => {
    for (const path of ['/', '/playground', '/dictionary/sae-a', '/feature/sae-a/12', '/feature/my%2Fdict/3']) {
      const r = await get(`${up.base}${path}`);
      assert.equal(r.status, 200, path);
      assert.equal(r.body.toString(), '<!doctype html><title>index</title>', path);
      assert.equal(r.headers['cache-control'], 'no-cache');
      assert.match(String(r.headers['content-type']), /^text\/html/);
    }
    assert.equal((await get(`${up.base}/graphiql`)).body.toString(), '<!doctype html><title>graphiql</title>');
  });

  it('leaves other paths and methods to the caller', async () => {
    for (const path of ['/nope', '/dictionary', '/feature/a', '/assets/missing.js', '/graphql']) {
      assert.equal((await get(`${up.base}${path}`)).body.toString(), 'not ours', path);
    }
    assert.equal((await get(`${up.base}/`, {}, 'POST')).body.toString(), 'not ours');
  });

  it('serves hashed assets with long caching, gzipped when asked', async () => {
    const plain = await get(`${up.base}/assets/index-abc123.js`);
    assert.equal(plain.body.toString(), script);
    assert.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.match(String(plain.headers['content-type']), /^text\/javascript/);
    assert.equal(plain.headers['content-encoding'], undefined);

    const zipped = await get(`${up.base}/assets/index-abc123.js`, { 'accept-encoding': 'gzip, br' });
    assert.equal(zipped.headers['content-encoding'], 'gzip');
    assert.ok(zipped.body.length < script.length / 10);
    assert.equal(gunzipSync(zipped.body).toString(), script);

    const head = await get(`${up.base}/assets/index-abc123.js`, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), script.length);
    assert.equal(head.body.length, 0);
  });

  it('never serves files outside the assets folder', async () => {
    for (const path of [
      '/assets/../../secret.txt',
      '/assets/..%2F..%2Fsecret.txt',
      '/assets/%2e%2e/%2e%2e/secret.txt',
      '/assets/%E0%A4%A',
    ]) {
      const r = await get(`${up.base}${path}`);
      assert.equal(r.body.toString(), 'not ours', path);
    }
  });

  it('says in words how to build the UI when it is missing', async () => {
    const r = await get(`${bare.base}/feature/sae-a/1`);
    assert.equal(r.status, 503);
    assert.match(r.body.toString(), /npm run build/);
    assert.match(r.body.toString(), /\/graphql/);
  });
});
