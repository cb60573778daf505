/**
 * HTTP limits (issue 16): an oversized chunked body is answered 413 and the connection closed (no
 * reset before the answer), slow headers and slow bodies are cut off by the configured timeouts, and
 * the embedded database's lock is not fooled by an unrelated live process that reuses a dead owner's pid.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestAtlas, useTestAtlas } from './helpers/atlas-server.js';
import { openDatabase, processStartTime } from '../src/db/client.js';

const MAX_BODY = 64 * 1024;

describe('HTTP body cap', () => {
  const test = useTestAtlas('HTTP body cap', () =>
    startTestAtlas('pglite', undefined, { maxBodyBytes: MAX_BODY, httpRequestTimeoutMs: 60_000 }),
  );

  test(
    'a 50 MB chunked body is read and dropped, then answered 413 PAYLOAD_TOO_LARGE and closed, not ' + 'reset',
    async (a) => {
      const url = new URL(a.url);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const result = await new Promise<{ status: number; body: string; sent: number }>((resolve, reject) => {
        const req = request({
          host: url.hostname,
          port: url.port,
          path: '/graphql',
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json' },
        });
        let sent = 0;
        let answer: { status: number; body: string } | null = null;
        req.on('error', (e) => reject(new Error(`${e.message} after ${sent} bytes, answer ${JSON.stringify(answer)}`)));
        req.on('response', (res) => {
          let body = '';
          res.on('data', (d) => {
            body += d;
          });
          res.on('end', () => {
            answer = { status: res.statusCode!, body };
          });
        });
        req.on('close', () =>
          answer ? resolve({ ...answer, sent }) : reject(new Error(`closed without an answer after ${sent} bytes`)),
        );
        const pump = () => {
          while (sent < 50 * 1024 * 1024) {
            sent += chunk.length;
            if (!req.write(chunk)) return void req.once('drain', pump);
          }
          req.end();
        };
        pump();
      });
      assert.equal(result.status, 413);
      assert.equal(JSON.parse(result.body).errors[0].extensions.code, 'PAYLOAD_TOO_LARGE');
      assert.equal(result.sent, 50 * 1024 * 1024, 'the whole body was accepted (read and dropped), not reset');
      const health = await fetch(new URL('/healthz', a.url));
      assert.equal(health.status, 200);
    },
  );

  test(
    'a client that sends Expect: 100-continue with a Content-Length over the cap hears 413 before ' + 'sending',
    async (a) => {
      const url = new URL(a.url);
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({
          host: url.hostname,
          port: url.port,
          path: '/graphql',
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', 'content-length': 50 * 1024 * 1024, expect: '100-continue' },
        });
        req.on('continue', () => reject(new Error('the server asked for the body')));
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode!);
          req.destroy();
        });
        req.on('error', reject);
        req.flushHeaders();
      });
      assert.equal(status, 413);
    },
  );
});

describe('HTTP timeouts', () => {
  const test = useTestAtlas('HTTP timeouts', () =>
    startTestAtlas('pglite', undefined, { httpHeadersTimeoutMs: 500, httpRequestTimeoutMs: 1500 }),
  );

  test('headers and bodies that never finish are cut off by the configured timeouts', async (a) => {
    const url = new URL(a.url);
    const closesWithin = (payload: string) =>
      new Promise<{ ms: number; reply: string }>((resolve, reject) => {
        const t = performance.now();
        const socket = connect(Number(url.port), url.hostname, () => socket.write(payload));
        let reply = '';
        socket.on('data', (d) => {
          reply += d;
        });
        socket.on('error', reject);
        socket.on('close', () => resolve({ ms: performance.now() - t, reply }));
      });
    const headers = await closesWithin('POST /graphql HTTP/1.1\r\nHost: x\r\n');
    assert.ok(headers.ms < 5000, `headers: closed after ${headers.ms} ms`);
    assert.match(headers.reply, /^HTTP\/1\.1 408/);
    const body = await closesWithin(
      'POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"query":',
    );
    assert.ok(body.ms < 6000, `body: closed after ${body.ms} ms`);
    assert.match(body.reply, /^HTTP\/1\.1 408/);
  });
});

describe('embedded database lock', () => {
  it(
    'a lock naming a live process with another start time (a reused pid) is stale; the same start time is ' +
      'CONFLICT',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'atlas-lock-'));
      const other = spawn('sleep', ['30'], { stdio: 'ignore' });
      try {
        await new Promise((r) => other.once('spawn', r));
        const started = processStartTime(other.pid!);
        assert.ok(started, 'this test needs /proc');
        writeFileSync(join(dir, 'pglite.lock'), `${other.pid} ${Number(started) - 1}`);
        const db = await openDatabase({ dataDir: dir, migrate: false });
        await db.close();
        writeFileSync(join(dir, 'pglite.lock'), `${other.pid} ${started}`);
        await assert.rejects(
          openDatabase({ dataDir: dir, migrate: false }),
          (e: any) => e.code === 'CONFLICT' && e.message.includes(String(other.pid)),
        );
      } finally {
        other.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
