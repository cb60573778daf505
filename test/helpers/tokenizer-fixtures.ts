/**
 * Small but real Hugging Face tokenizer.json files for tests (tiny random gpt2 / llama checkpoints):
 * BPE merges are learned here, deterministically, from a short English text plus seeded
 * pseudo-words, so encodings use real merges and the vocabulary has exactly the size asked for.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { byteLevelChars } from '../../src/engine/tokenizers/huggingface.js';

const TEXT = `Once upon a time, there was a little girl named Lily. She liked to play in the park with her
dog, Max. One day the sun was hot and the sky was blue. Lily saw a big red ball under a tree! "Can I
have it?" she asked her mom. Her mom said, "Yes, but share it with your friend Tom." They played and
laughed all day; Tom threw the ball and Max ran after it. At 5 o'clock they went home, happy and tired.
The next morning, Lily woke up early. It was 2024 and the birds were singing (very loudly). She ate
bread with jam, drank milk, and walked to school - it's only 300 steps away. The teacher smiled: "Good
morning, children! Today we'll learn about the moon, the stars and the sea." Everyone was excited.`;

interface Built {
  json: object;
  config: object;
}

/** Learning merges takes a few hundred ms, so each fixture is built once per process. */
const built = new Map<string, Built>();

/** Enough distinct pseudo-words that merges never run out for vocabularies of a few thousand. */
function corpusWords(): string[] {
  const words = TEXT.split(/\s+/).filter((w) => w.length > 0);
  let s = 0x9e3779b9;
  const rand = (n: number) => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s % n;
  };
  const onsets = [
    'b',
    'd',
    'f',
    'g',
    'k',
    'l',
    'm',
    'n',
    'p',
    'r',
    's',
    't',
    'v',
    'z',
    'st',
    'tr',
    'pl',
    'sh',
    'ch',
    'br',
  ];
  const nuclei = ['a', 'e', 'i', 'o', 'u', 'ai', 'ou', 'ee'];
  for (let i = 0; i < 1500; i++) {
    let w = '';
    for (let k = 2 + rand(3); k > 0; k--) w += onsets[rand(onsets.length)] + nuclei[rand(nuclei.length)];
    words.push(w);
  }
  return words;
}

/**
 * Greedy BPE training: repeatedly merge the most frequent adjacent pair (ties: smallest pair
 * text) and add the merged symbol to `vocab`, until `vocab` has `target` entries.
 */
function learnMerges(words: string[][], vocab: Map<string, number>, target: number, kind: string): [string, string][] {
  const SEP = '\u0001';
  const merges: [string, string][] = [];
  while (vocab.size < target) {
    const counts = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.length; i++) {
        const key = w[i] + SEP + w[i + 1];
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    let best: string | null = null;
    let bestCount = 0;
    for (const [key, c] of counts) {
      if (c > bestCount || (c === bestCount && best !== null && key < best)) {
        best = key;
        bestCount = c;
      }
    }
    if (best === null)
      throw new Error(`${kind} fixture corpus cannot fill a vocabulary of ${target}; use a smaller vocabSize.`);
    const [a, b] = best.split(SEP) as [string, string];
    merges.push([a, b]);
    if (!vocab.has(a + b)) vocab.set(a + b, vocab.size);
    for (const w of words) {
      for (let i = 0; i + 1 < w.length; i++) {
        if (w[i] === a && w[i + 1] === b) w.splice(i, 2, a + b);
      }
    }
  }
  return merges;
}

/**
 * GPT-2 style byte-level BPE: 256 byte tokens in GPT-2's order, learned merges, then
 * `<|endoftext|>` as the last id; exactly `vocabSize` entries (258 up to a few thousand). Also writes a
 * tokenizer_config.json like gpt2's (bos = eos = `<|endoftext|>`, nothing added). Returns the
 * tokenizer.json path.
 */
export function writeGpt2TokenizerJson(dir: string, vocabSize: number): string {
  const key = `gpt2:${vocabSize}`;
  if (!built.has(key)) built.set(key, buildGpt2(vocabSize));
  return writeFiles(dir, built.get(key) as Built);
}

function buildGpt2(vocabSize: number): Built {
  if (!Number.isInteger(vocabSize) || vocabSize < 258)
    throw new Error(`gpt2 fixture needs vocabSize >= 258, got ${vocabSize}.`);
  const chars = byteLevelChars();
  const vocab = new Map([...chars].sort((x, y) => x.charCodeAt(0) - y.charCodeAt(0)).map((c, i) => [c, i]));
  const pretokenize = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  const pieces = corpusWords().join(' ').match(pretokenize) ?? [];
  const words = pieces.map((p) => [...Buffer.from(p, 'utf8')].map((b) => chars[b]));
  const merges = learnMerges(words, vocab, vocabSize - 1, 'gpt2');
  const eot = '<|endoftext|>';
  vocab.set(eot, vocabSize - 1);
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: vocabSize - 1,
        content: eot,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const config = {
    bos_token: eot,
    eos_token: eot,
    unk_token: eot,
    add_prefix_space: false,
    model_max_length: 1024,
    tokenizer_class: 'GPT2Tokenizer',
  };
  return { json, config };
}

export interface LlamaFixtureOptions {
  /**
   * Where the BOS rule lives: the post-processor template, tokenizer_config.json's add_bos_token, or both (default, as
   * Llama 2 ships).
   */
  bosVia?: 'post_processor' | 'config' | 'both';
}

/**
 * LLaMA style SentencePiece BPE: `<unk>`, `<s>`, `</s>`, 256 `<0xNN>` byte tokens, the corpus
 * characters (with '▁'), then learned merges; byte fallback for everything else; exactly
 * `vocabSize` entries. Returns the tokenizer.json path.
 */
export function writeLlamaTokenizerJson(dir: string, vocabSize: number, opts: LlamaFixtureOptions = {}): string {
  const bosVia = opts.bosVia ?? 'both';
  const key = `llama:${vocabSize}:${bosVia}`;
  if (!built.has(key)) built.set(key, buildLlama(vocabSize, bosVia));
  return writeFiles(dir, built.get(key) as Built);
}

function buildLlama(vocabSize: number, bosVia: NonNullable<LlamaFixtureOptions['bosVia']>): Built {
  const specials = ['<unk>', '<s>', '</s>'];
  const vocab = new Map<string, number>(specials.map((t, i) => [t, i]));
  for (let b = 0; b < 256; b++) vocab.set(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, vocab.size);
  const words = corpusWords().map((w) => Array.from('▁' + w));
  const alphabet = [...new Set(words.flat())].sort();
  const minimum = vocab.size + alphabet.length + 1;
  if (!Number.isInteger(vocabSize) || vocabSize < minimum)
    throw new Error(`llama fixture needs vocabSize >= ${minimum}, got ${vocabSize}.`);
  for (const c of alphabet) vocab.set(c, vocab.size);
  const merges = learnMerges(words, vocab, vocabSize, 'llama');
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor:
      bosVia === 'config'
        ? null
        : {
            type: 'TemplateProcessing',
            single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
            pair: [
              { SpecialToken: { id: '<s>', type_id: 0 } },
              { Sequence: { id: 'A', type_id: 0 } },
              { SpecialToken: { id: '<s>', type_id: 1 } },
              { Sequence: { id: 'B', type_id: 1 } },
            ],
            special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
          },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges,
    },
  };
  const config: Record<string, unknown> = {
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    legacy: false,
    model_max_length: 2048,
    tokenizer_class: 'LlamaTokenizer',
  };
  if (bosVia !== 'post_processor') config.add_bos_token = true;
  return { json, config };
}

function writeFiles(dir: string, { json, config }: Built): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'tokenizer.json');
  writeFileSync(path, JSON.stringify(json));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2));
  return path;
}
