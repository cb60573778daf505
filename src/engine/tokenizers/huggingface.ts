/**
 * Hugging Face `tokenizer.json` (+ `tokenizer_config.json` beside it) through @huggingface/tokenizers,
 * which implements the normalizers, pre-tokenizers and BPE models. This module decides BOS/EOS,
 * keeps decode faithful to the text, and renders single tokens for display.
 *
 * BOS policy: `encode` prepends BOS by default exactly when the tokenizer itself would add it:
 * tokenizer_config.json's `add_bos_token` when it is set (transformers rebuilds the post-processor
 * from it), else whether the post-processor prepends a token. LLaMA therefore gets `<s>`; GPT-2 gets
 * nothing, although its `bosId` is `<|endoftext|>` (its config's bos_token), because GPT-2 tokenizers
 * never add it. Callers whose SAE was trained with a prepended BOS on GPT-2 (TransformerLens' default)
 * pass `{ bos: true }`. Other post-processor additions (EOS, pair templates) are not applied.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { AtlasError } from '../../errors.js';
import { displayBytes, parseByteToken } from './display.js';
import type { Tokenizer } from './types.js';

/** GPT-2's byte-level alphabet: byte b is written as this printable character (the 'Ġ' for a space). */
export function byteLevelChars(): string[] {
  const chars = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return chars;
}

const BYTE_OF_CHAR = new Map(byteLevelChars().map((c, b) => [c, b]));
/** Names tried when the config does not say which token is BOS or EOS. */
const BOS_NAMES = ['<s>', '<|begin_of_text|>', '<bos>', '<|endoftext|>'];
const EOS_NAMES = ['</s>', '<|end_of_text|>', '<eos>', '<|endoftext|>'];
/** Any text the vocabulary covers; used to see whether the post-processor adds a leading token. */
const PROBE = 'a';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether a pre-tokenizer/decoder spec (possibly a Sequence of them) contains a ByteLevel step. */
function hasByteLevel(spec: unknown): boolean {
  if (!isObject(spec)) return false;
  if (spec.type === 'ByteLevel') return true;
  const children = spec.pretokenizers ?? spec.decoders;
  return Array.isArray(children) && children.some(hasByteLevel);
}

/** tokenizer_config.json writes special tokens as a string or as an AddedToken object. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return null;
}

function readJson(path: string, what: string): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new AtlasError('BAD_FILE', `Cannot read ${what} ${path}: ${(e as Error).message}`, { path });
  }
  if (!isObject(parsed)) throw new AtlasError('BAD_FILE', `${what} ${path} does not hold a JSON object.`, { path });
  return parsed;
}

export class HuggingFaceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** Whether `encode` prepends BOS when not told. */
  readonly addsBos: boolean;
  private readonly hf: HfTokenizer;
  private readonly byteLevel: boolean;
  private readonly byteFallback: boolean;
  private readonly added = new Map<number, string>();
  private readonly cleanUpSpaces: boolean;

  /** Reads `tokenizer.json` and, when present, `tokenizer_config.json` in the same folder. */
  static open(jsonPath: string): HuggingFaceTokenizer {
    const configPath = join(dirname(jsonPath), 'tokenizer_config.json');
    const config = existsSync(configPath) ? readJson(configPath, 'tokenizer config') : {};
    return new HuggingFaceTokenizer(readJson(jsonPath, 'tokenizer file'), config, jsonPath);
  }

  /** `source` names the tokenizer in error messages. */
  constructor(json: Json, config: Json, source: string) {
    const model = json.model;
    if (!isObject(model))
      throw new AtlasError('BAD_FILE', `Tokenizer file ${source} has no "model" object.`, { path: source });
    if (model.type === 'WordPiece') {
      throw new AtlasError(
        'UNSUPPORTED',
        `Tokenizer ${source} is a WordPiece (encoder-model) tokenizer; only BPE and Unigram language-model ` +
          `tokenizers are supported.`,
      );
    }
    try {
      // The library requires these keys even when null; older files omit some.
      const full = {
        normalizer: null,
        pre_tokenizer: null,
        post_processor: null,
        decoder: null,
        added_tokens: [],
        ...json,
      };
      this.hf = new HfTokenizer(full, config);
    } catch (e) {
      throw new AtlasError('BAD_FILE', `Tokenizer file ${source} cannot be loaded: ${(e as Error).message}`, {
        path: source,
      });
    }
    this.byteLevel = hasByteLevel(json.pre_tokenizer) || hasByteLevel(json.decoder);
    this.byteFallback = model.byte_fallback === true;
    for (const [id, token] of this.hf.get_added_tokens_decoder()) this.added.set(id, token.content);
    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    // transformers' fast tokenizers leave text as written unless the config asks for clean-up.
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true;

    const idOf = (name: string | null) => (name === null ? undefined : this.hf.token_to_id(name));
    const firstKnown = (names: string[]) => names.map(idOf).find((id) => id !== undefined);
    const plain = this.hf.encode(PROBE, { add_special_tokens: false }).ids;
    const withSpecial = this.hf.encode(PROBE, { add_special_tokens: true }).ids;
    const prepended = withSpecial.length > plain.length && withSpecial[0] !== plain[0] ? withSpecial[0] : undefined;

    this.bosId = idOf(tokenContent(config.bos_token)) ?? prepended ?? firstKnown(BOS_NAMES) ?? null;
    this.eosId = idOf(tokenContent(config.eos_token)) ?? firstKnown(EOS_NAMES) ?? null;
    this.addsBos =
      typeof config.add_bos_token === 'boolean'
        ? config.add_bos_token
        : prepended !== undefined && prepended === this.bosId;
    if (this.addsBos && this.bosId === null) {
      throw new AtlasError(
        'BAD_FILE',
        `Tokenizer ${source} asks for a BOS token but names none that is in its vocabulary.`,
        { path: source },
      );
    }
  }

  encode(text: string, opts: { bos?: boolean } = {}): number[] {
    const ids = text.length === 0 ? [] : this.hf.encode(text, { add_special_tokens: false }).ids;
    const bos = opts.bos ?? this.addsBos;
    if (bos && this.bosId === null) {
      throw new AtlasError('UNSUPPORTED', 'This tokenizer has no BOS token to prepend; encode without bos.');
    }
    return bos ? [this.bosId as number, ...ids] : ids;
  }

  decode(ids: number[]): string {
    ids.forEach((id) => this.check(id));
    // BOS/EOS are dropped before the decoder, so a LLaMA decoder's Strip sees the first word's '▁'.
    const content = ids.filter((id) => id !== this.bosId && id !== this.eosId);
    if (content.length === 0) return '';
    return this.hf.decode(content, { clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  tokenText(id: number): string {
    this.check(id);
    const added = this.added.get(id);
    if (added !== undefined) return added;
    const token = this.hf.id_to_token(id);
    if (token === undefined) return '';
    if (this.byteLevel) {
      const bytes: number[] = [];
      for (const ch of token) {
        const b = BYTE_OF_CHAR.get(ch);
        if (b === undefined) return token;
        bytes.push(b);
      }
      return displayBytes(Uint8Array.from(bytes));
    }
    const b = this.byteFallback ? parseByteToken(token) : -1;
    return b >= 0 ? displayBytes(Uint8Array.of(b)) : token.replaceAll('▁', ' ');
  }

  private check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        `Token id ${id} is outside this tokenizer's vocabulary 0..${this.vocabSize - 1}.`,
      );
    }
  }
}
