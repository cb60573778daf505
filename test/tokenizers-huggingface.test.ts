import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HuggingFaceTokenizer } from '../src/engine/tokenizers/huggingface.js';
import { loadTokenizer } from '../src/engine/tokenizers/load.js';
import { isAtlasError } from '../src/errors.js';
import { writeGpt2TokenizerJson, writeLlamaTokenizerJson } from './helpers/tokenizer-fixtures.js';

const TEXTS = [
  'Once upon a time, Lily played with the ball in the park.',
  '  two leading spaces, and  double  spaces',
  'line one\nline two\n\nend',
  'it\'s 2024! (very) "quoted"',
  'Unicode: héllo 😀 中文 — ok',
  'tabs\tand trailing space ',
];

/** Replaces tokenText's `<0xNN>` escapes by their bytes, to compare a joined display with the text. */
function unescapeBytes(display: string): string {
  const parts = display.split(/(<0x[0-9A-F]{2}>)/);
  const bytes = parts.flatMap((p) =>
    /^<0x[0-9A-F]{2}>$/.test(p) ? [parseInt(p.slice(3, 5), 16)] : [...Buffer.from(p, 'utf8')],
  );
  return Buffer.from(bytes).toString('utf8');
}

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'atlas-hf-tok-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('gpt2 fixture: exact vocab size, <|endoftext|> as BOS/EOS, nothing prepended by default', () =>
  withDir((dir) => {
    const path = writeGpt2TokenizerJson(dir, 1000);
    const json = JSON.parse(readFileSync(path, 'utf8'));
    assert.equal(Object.keys(json.model.vocab).length, 1000);
    const tok = loadTokenizer(dir);
    assert.ok(tok instanceof HuggingFaceTokenizer);
    assert.equal(tok.vocabSize, 1000);
    assert.equal(tok.bosId, 999);
    assert.equal(tok.eosId, 999);
    assert.equal(tok.tokenText(999), '<|endoftext|>');
    assert.deepEqual(tok.encode(''), []);
    const ids = tok.encode('the ball');
    assert.ok(!ids.includes(999));
    assert.deepEqual(tok.encode('the ball', { bos: true }), [999, ...ids]);
    assert.equal(tok.decode([999, ...ids, 999]), 'the ball', 'BOS/EOS produce no text');
  }));

test('gpt2 fixture: encoding uses merges and round-trips text, bytes and whitespace', () =>
  withDir((dir) => {
    const tok = loadTokenizer(writeGpt2TokenizerJson(dir, 1000));
    const sentence = TEXTS[0];
    const ids = tok.encode(sentence);
    assert.ok(
      ids.length < Buffer.byteLength(sentence) / 2,
      `${ids.length} tokens for ${Buffer.byteLength(sentence)} bytes`,
    );
    for (const text of TEXTS) {
      const enc = tok.encode(text);
      assert.equal(tok.decode(enc), text);
      const joined = enc.map((id) => tok.tokenText(id)).join('');
      assert.equal(unescapeBytes(joined), text, `tokenText joins back for ${JSON.stringify(text)}`);
    }
    const ascii = tok.encode(sentence).map((id) => tok.tokenText(id));
    assert.equal(ascii.join(''), sentence);
    assert.ok(
      ascii.some((s) => s.startsWith(' ') && s.length > 1),
      "byte-level 'Ġ' displays as a space",
    );
    // 😀 has no merges in this vocabulary: each byte is a token and shows as its escape.
    assert.deepEqual(
      tok.encode('😀').map((id) => tok.tokenText(id)),
      ['<0xF0>', '<0x9F>', '<0x98>', '<0x80>'],
    );
  }));

test('gpt2 fixture: a smaller vocabulary still loads with exactly that size', () =>
  withDir((dir) => {
    const tok = loadTokenizer(writeGpt2TokenizerJson(dir, 300));
    assert.equal(tok.vocabSize, 300);
    assert.equal(tok.decode(tok.encode(TEXTS[4])), TEXTS[4]);
  }));

for (const bosVia of ['both', 'post_processor', 'config'] as const) {
  test(`llama fixture (BOS via ${bosVia}): <s> prepended, byte fallback, round trip`, () =>
    withDir((dir) => {
      const path = writeLlamaTokenizerJson(dir, 512, { bosVia });
      const json = JSON.parse(readFileSync(path, 'utf8'));
      assert.equal(Object.keys(json.model.vocab).length, 512);
      const tok = loadTokenizer(path);
      assert.equal(tok.vocabSize, 512);
      assert.equal(tok.bosId, 1);
      assert.equal(tok.eosId, 2);
      assert.deepEqual(tok.encode(''), [1]);
      const ids = tok.encode(TEXTS[0]);
      assert.equal(ids[0], 1);
      assert.deepEqual(tok.encode(TEXTS[0], { bos: false }), ids.slice(1));
      assert.ok(ids.length - 1 < TEXTS[0].length * 0.75, 'merges shorten the sequence');
      for (const text of TEXTS) {
        const enc = tok.encode(text);
        assert.equal(tok.decode(enc), text);
        const joined = enc
          .slice(1)
          .map((id) => tok.tokenText(id))
          .join('');
        assert.equal(
          unescapeBytes(joined),
          ' ' + text,
          `tokenText joins back (with the '▁' prefix) for ${JSON.stringify(text)}`,
        );
      }
      // '\n' and the emoji's bytes are not pieces: byte fallback ids are 3 + byte.
      assert.ok(tok.encode('a\nb').includes(3 + 0x0a));
      assert.equal(tok.tokenText(3 + 0x0a), '\n');
      const emoji = tok.encode('😀', { bos: false });
      assert.deepEqual(
        emoji.slice(-4),
        [0xf0, 0x9f, 0x98, 0x80].map((b) => b + 3),
      );
      assert.equal(tok.tokenText(3 + 0xf0), '<0xF0>');
      assert.equal(tok.tokenText(1), '<s>');
    }));
}

test('llama fixture: add_bos_token false in tokenizer_config.json overrides the post-processor', () =>
  withDir((dir) => {
    const path = writeLlamaTokenizerJson(dir, 512, { bosVia: 'post_processor' });
    const configPath = join(dir, 'tokenizer_config.json');
    writeFileSync(
      configPath,
      JSON.stringify({ ...JSON.parse(readFileSync(configPath, 'utf8')), add_bos_token: false }),
    );
    const tok = loadTokenizer(path);
    assert.equal(tok.bosId, 1);
    assert.notEqual(tok.encode('the ball')[0], 1);
    assert.equal(tok.encode('the ball', { bos: true })[0], 1);
  }));

test('huggingface: BOS found from the post-processor when there is no tokenizer_config.json', () =>
  withDir((dir) => {
    const path = writeLlamaTokenizerJson(dir, 512, { bosVia: 'post_processor' });
    rmSync(join(dir, 'tokenizer_config.json'));
    const tok = loadTokenizer(path);
    assert.equal(tok.bosId, 1);
    assert.equal(tok.eosId, 2);
    assert.equal(tok.encode('ball')[0], 1);
  }));

test('huggingface: bad ids, malformed and unsupported files are refused with codes', () =>
  withDir((dir) => {
    const tok = loadTokenizer(writeLlamaTokenizerJson(join(dir, 'llama'), 512));
    assert.throws(
      () => tok.decode([1, 512]),
      (e) => isAtlasError(e) && e.code === 'BAD_USER_INPUT',
    );
    assert.throws(
      () => tok.tokenText(-1),
      (e) => isAtlasError(e) && e.code === 'BAD_USER_INPUT',
    );

    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"model": {"type": "BPE", "vocab": {');
    assert.throws(
      () => loadTokenizer(broken),
      (e) => isAtlasError(e) && e.code === 'BAD_FILE' && e.message.includes(broken),
    );

    const noModel = join(dir, 'nomodel.json');
    writeFileSync(noModel, '{"added_tokens": []}');
    assert.throws(
      () => loadTokenizer(noModel),
      (e) => isAtlasError(e) && e.code === 'BAD_FILE',
    );

    const wordpiece = join(dir, 'wordpiece.json');
    writeFileSync(
      wordpiece,
      JSON.stringify({ model: { type: 'WordPiece', vocab: { '[UNK]': 0 }, unk_token: '[UNK]' } }),
    );
    assert.throws(
      () => loadTokenizer(wordpiece),
      (e) => isAtlasError(e) && e.code === 'UNSUPPORTED',
    );

    const spm = join(dir, 'sp');
    mkdirSync(spm);
    writeFileSync(join(spm, 'tokenizer.model'), Buffer.from([0x0a, 0x0b]));
    assert.throws(
      () => loadTokenizer(join(spm, 'tokenizer.model')),
      (e) => isAtlasError(e) && e.code === 'UNSUPPORTED',
    );
    assert.throws(
      () => loadTokenizer(spm),
      (e) => isAtlasError(e) && e.code === 'BAD_FILE' && e.message.includes('tokenizer.json'),
    );
  }));
