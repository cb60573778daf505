import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Llama2cTokenizer } from '../src/engine/tokenizers/llama2c.js';
import { loadTokenizer } from '../src/engine/tokenizers/load.js';
import { isAtlasError } from '../src/errors.js';
import { sharedFile, STORIES_TOKENIZER } from './helpers/shared.js';
import { readReferenceVocab, referenceDecodePiece, referenceEncode } from './reference/llama2c-tokenizer.js';

const TOK = sharedFile(STORIES_TOKENIZER);

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s % n;
  };
}

/** Replaces tokenText's `<0xNN>` escapes by their bytes, to compare a joined display with the text. */
function unescapeBytes(display: string): string {
  const parts = display.split(/(<0x[0-9A-F]{2}>)/);
  const bytes = parts.flatMap((p) =>
    /^<0x[0-9A-F]{2}>$/.test(p) ? [parseInt(p.slice(3, 5), 16)] : [...Buffer.from(p, 'utf8')],
  );
  return Buffer.from(bytes).toString('utf8');
}

const FRAGMENTS = [
  'the',
  'The',
  ' cat',
  'Lily',
  'once',
  'upon',
  'a',
  ' ',
  '  ',
  '\n',
  '\n\n',
  '.',
  ',',
  '!',
  '?',
  '"',
  "'s",
  'happy',
  'played',
  'ball',
  '123',
  'é',
  'ñ',
  '😀',
  '中文',
  '—',
  '…',
  '\t',
  'ÿ',
  '🚀🚀',
  'xyzzy',
  'Q',
  'é\u0301',
];

function randomText(next: (n: number) => number, maxParts: number): string {
  let s = '';
  for (let k = next(maxParts + 1); k > 0; k--) s += FRAGMENTS[next(FRAGMENTS.length)];
  return s;
}

test('llama2c: loads tok512.bin with BOS 1, EOS 2 and 512 tokens; loadTokenizer picks it', () => {
  const tok = loadTokenizer(TOK);
  assert.ok(tok instanceof Llama2cTokenizer);
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.tokenText(1), '<s>');
  assert.equal(tok.tokenText(2), '</s>');
});

test('llama2c: empty text is BOS alone (no dummy prefix)', () => {
  const tok = Llama2cTokenizer.open(TOK);
  assert.deepEqual(tok.encode(''), [1]);
  assert.deepEqual(tok.encode('', { bos: false }), []);
  assert.equal(tok.decode([1]), '');
  assert.equal(tok.decode([]), '');
});

test('llama2c: hand-traced merges for "the" and "The"', () => {
  const tok = Llama2cTokenizer.open(TOK);
  const v = readReferenceVocab(TOK);
  const id = (s: string) => v.pieces.findIndex((p) => p.toString('latin1') === s);
  // [' ','t','h','e']: ' t' (score 0) beats 'he' (-1); then 'he' (-1) beats ' th' (-49); then ' the'.
  assert.ok(v.scores[id(' t')] === 0); // stored as -0
  assert.equal(v.scores[id('he')], -1);
  assert.ok(v.scores[id(' th')] < -1);
  assert.deepEqual(tok.encode('the'), [1, id(' the')]);
  // [' ','T','h','e']: no 'Th', so 'he' (-1) first, then ' T' (-15), then ' The'.
  assert.equal(id('Th'), -1);
  assert.deepEqual(tok.encode('The'), [1, id(' The')]);
  assert.equal(tok.decode([1, id(' The')]), 'The');
  assert.equal(tok.decode([id(' The')]), ' The', 'without BOS, run.c keeps the leading space');
});

test('llama2c: leading spaces, newline bytes and unicode outside the vocabulary use byte fallback', () => {
  const tok = Llama2cTokenizer.open(TOK);
  const v = readReferenceVocab(TOK);
  const space = v.pieces.findIndex((p) => p.toString('latin1') === ' ');

  const lead = tok.encode('   x');
  assert.equal(lead[0], 1);
  assert.equal(tok.decode(lead), '   x');

  const nl = tok.encode('a\nb');
  assert.ok(nl.includes(0x0a + 3), 'newline is byte token <0x0A> = id 13');
  assert.equal(tok.tokenText(13), '\n');
  assert.equal(tok.decode(nl), 'a\nb');

  // 😀 = F0 9F 98 80 and 中 = E4 B8 AD are not pieces: each byte b becomes id b + 3.
  assert.deepEqual(tok.encode('😀'), [1, space, 0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
  assert.deepEqual(tok.encode('中', { bos: false }), [space, 0xe4 + 3, 0xb8 + 3, 0xad + 3]);
  assert.equal(tok.decode(tok.encode('😀 中文!')), '😀 中文!');
  assert.equal(tok.tokenText(0xf0 + 3), '<0xF0>', 'a lone lead byte shows as its escape');
});

test('llama2c: encode equals the naive run.c reference on 300 seeded random strings', () => {
  const tok = Llama2cTokenizer.open(TOK);
  const v = readReferenceVocab(TOK);
  const next = rng(20240601);
  for (let i = 0; i < 300; i++) {
    const text = randomText(next, 12);
    const bos = next(4) !== 0;
    const ids = tok.encode(text, { bos });
    assert.deepEqual(ids, referenceEncode(v, text, bos), `encode(${JSON.stringify(text)}, bos=${bos})`);
    if (bos) assert.equal(tok.decode(ids), text, `decode(encode(${JSON.stringify(text)}))`);
    else assert.equal(tok.decode(ids), text.length > 0 ? ' ' + text : '');
  }
});

test('llama2c: decode equals run.c piece-by-piece decoding on random id sequences', () => {
  const tok = Llama2cTokenizer.open(TOK);
  const v = readReferenceVocab(TOK);
  const next = rng(77);
  for (let i = 0; i < 200; i++) {
    const ids = Array.from({ length: 1 + next(20) }, () => 3 + next(tok.vocabSize - 3));
    if (next(2) === 0) ids.unshift(1);
    const pieces = ids.map((id, k) =>
      id === 1 ? Buffer.alloc(0) : referenceDecodePiece(v, k > 0 ? ids[k - 1] : -1, id),
    );
    assert.equal(tok.decode(ids), Buffer.concat(pieces).toString('utf8'), `decode(${ids})`);
  }
});

test('llama2c: 10k-character text round-trips; tokenText joins back to the text', () => {
  const tok = Llama2cTokenizer.open(TOK);
  const next = rng(9);
  let text = '';
  while (text.length < 10_000) text += randomText(next, 20);
  const ids = tok.encode(text);
  assert.ok(ids.length > 1000 && ids.length < text.length + 20_000);
  assert.equal(tok.decode(ids), text);
  const joined = ids
    .slice(1)
    .map((id) => tok.tokenText(id))
    .join('');
  // tokenText is context-free, so the dummy-prefix space stays and split characters show as escapes.
  assert.equal(unescapeBytes(joined), ' ' + text);

  const english = 'Once upon a time, there was a little girl named Lily. She loved to play outside.\n'.repeat(125);
  const eIds = tok.encode(english);
  assert.equal(
    eIds
      .slice(1)
      .map((id) => tok.tokenText(id))
      .join(''),
    ' ' + english,
  );
  // The heap merge agrees with the O(n^2) reference on a long prefix as well.
  const v = readReferenceVocab(TOK);
  assert.deepEqual(tok.encode(english.slice(0, 600)), referenceEncode(v, english.slice(0, 600), true));
});

test('llama2c: out-of-range ids are refused with BAD_USER_INPUT', () => {
  const tok = Llama2cTokenizer.open(TOK);
  for (const bad of [-1, 512, 1.5]) {
    assert.throws(
      () => tok.decode([1, bad]),
      (e) => isAtlasError(e) && e.code === 'BAD_USER_INPUT',
    );
    assert.throws(
      () => tok.tokenText(bad),
      (e) => isAtlasError(e) && e.code === 'BAD_USER_INPUT',
    );
  }
});

test('llama2c: truncated, garbled, empty and missing files are BAD_FILE', () => {
  const good = readFileSync(TOK);
  const dir = mkdtempSync(join(tmpdir(), 'atlas-tok-'));
  try {
    const lengthOf300 = (() => {
      let off = 4;
      for (let i = 0; i < 300; i++) off += 8 + good.readInt32LE(off + 4);
      return off + 4;
    })();
    const garbledLength = Buffer.from(good);
    garbledLength.writeInt32LE(1_000_000, lengthOf300);
    const wrongByteToken = Buffer.from(good);
    wrongByteToken[4 + 8 + 5 + 8 + 5 + 8 + 6 + 8 + 3] = 0x5a; // '<0x00>' → '<0xZ0>'
    const next = rng(3);
    const random = Buffer.from(Array.from({ length: 4096 }, () => next(256)));
    const cases: [string, Buffer][] = [
      ['empty', Buffer.alloc(0)],
      ['header-only', good.subarray(0, 4)],
      ['cut-in-last-token', good.subarray(0, good.length - 3)],
      ['cut-in-byte-tokens', good.subarray(0, 1000)],
      ['garbled-length', garbledLength],
      ['wrong-byte-token', wrongByteToken],
      ['random', random],
    ];
    for (const [name, bytes] of cases) {
      const path = join(dir, `${name}.bin`);
      writeFileSync(path, bytes);
      assert.throws(
        () => loadTokenizer(path),
        (e) => isAtlasError(e) && e.code === 'BAD_FILE' && e.message.includes(path),
        name,
      );
    }
    assert.throws(
      () => loadTokenizer(join(dir, 'absent.bin')),
      (e) => isAtlasError(e) && e.code === 'BAD_FILE',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
