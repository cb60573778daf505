/** Corpus reading for `atlas build`: documents, paragraphs, contexts, BOS, the token limit and bad files. */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tempDir } from './helpers/sae-fixtures.js';
import { Corpus, type TokenContext } from '../src/engine/dashboards/corpus.js';
import type { Tokenizer } from '../src/engine/tokenizers/types.js';

/** One token per character (code point + 10); BOS is 1. */
const chars: Tokenizer = {
  vocabSize: 100_000,
  bosId: 1,
  eosId: 2,
  encode: (text, opts) => [...(opts?.bos ? [1] : []), ...[...text].map((c) => c.codePointAt(0)! + 10)],
  decode: (ids) => String.fromCodePoint(...ids.filter((i) => i > 2).map((i) => i - 10)),
  tokenText: (id) => String.fromCodePoint(id - 10),
};

async function all(c: Corpus): Promise<TokenContext[]> {
  const out = [];
  for await (const ctx of c.contexts()) out.push(ctx);
  return out;
}

describe('corpus contexts', () => {
  const files = tempDir('atlas-corpus-');
  after(() => files.cleanup());

  it('cuts each document into contexts with BOS first and reads folders in name order', async () => {
    const dir = join(files.dir, 'texts');
    mkdirSync(join(dir, 'b'), { recursive: true });
    writeFileSync(join(dir, 'a.txt'), 'first paragraph\nstill first\n\nsecond one\n');
    writeFileSync(join(dir, 'b', 'c.txt'), 'another file');
    writeFileSync(join(dir, '.hidden'), 'never read');
    const corpus = new Corpus(dir, { tokenizer: chars, prependBos: true, context: 8 });
    const got = await all(corpus);
    assert.ok(got.every((c) => c.bos && c.ids[0] === 1 && c.ids.length <= 8 && c.ids.length > 1));
    assert.deepEqual(
      got.map((c) => c.seq),
      got.map((_, i) => i),
    );
    const text = got.map((c) => chars.decode(c.ids.slice(1))).join('');
    assert.equal(text, 'first paragraph\nstill first\n\nsecond one\nanother file\n');
    // Files are separate documents: the last context of a.txt is short, c.txt starts a new one.
    const firstOfC = got.findIndex((c) => chars.decode(c.ids.slice(1)).startsWith('another'));
    assert.ok(firstOfC > 0);
    assert.equal(corpus.tokens, text.length);
    assert.equal(corpus.fraction, 1);
  });

  it('stops at the token limit (BOS not counted) and treats .jsonl lines as documents', async () => {
    const path = join(files.dir, 'docs.jsonl');
    writeFileSync(
      path,
      [JSON.stringify({ text: 'abcdefghij' }), '', JSON.stringify({ text: 'xyz', id: 3 })].join('\n'),
    );
    const whole = await all(new Corpus(path, { tokenizer: chars, prependBos: false, context: 4 }));
    assert.deepEqual(
      whole.map((c) => chars.decode(c.ids)),
      ['abcd', 'efgh', 'ij', 'xyz'],
    );
    assert.ok(whole.every((c) => !c.bos));
    const limited = new Corpus(path, { tokenizer: chars, prependBos: true, context: 4, maxTokens: 7 });
    const cut = await all(limited);
    assert.deepEqual(
      cut.map((c) => chars.decode(c.ids.slice(1))),
      ['abc', 'def', 'g'],
    );
    assert.equal(limited.tokens, 7);
    assert.equal(limited.fraction, 1);
  });

  it('refuses missing paths, bad JSON lines and contexts too short for BOS', async () => {
    assert.throws(
      () => new Corpus(join(files.dir, 'nope'), { tokenizer: chars, prependBos: false, context: 4 }),
      (e: any) => e.code === 'BAD_FILE',
    );
    assert.throws(
      () => new Corpus(files.dir, { tokenizer: chars, prependBos: true, context: 1 }),
      (e: any) => e.code === 'BAD_USER_INPUT',
    );
    const bad = join(files.dir, 'bad.ndjson');
    writeFileSync(bad, '{"text": "ok"}\n{"title": "no text"}\n');
    await assert.rejects(
      all(new Corpus(bad, { tokenizer: chars, prependBos: false, context: 4 })),
      (e: any) => e.code === 'BAD_FILE' && /line 2 has no "text"/.test(e.message),
    );
  });
});
