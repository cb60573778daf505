/**
 * A corpus as a stream of token contexts: a text file, a folder of them (read in name order,
 * recursively, hidden files skipped) or JSON lines with a `text` field (.jsonl / .ndjson).
 *
 * Each document (a text file, or one JSON line) is tokenized as one token stream and cut into
 * contexts of `context` tokens; the last context of a document may be shorter. When the model
 * expects BOS every context starts with it, and that position is left out of every statistic.
 * Text files are read line by line and tokenized a paragraph at a time (at most PIECE_CHARS per
 * piece), so memory stays flat however large a file is.
 */
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { basename, extname, join } from 'node:path';
import { AtlasError } from '../../errors.js';
import type { Tokenizer } from '../tokenizers/types.js';

/** Longest piece of a text file tokenized at once; a paragraph longer than this is cut at a line end. */
const PIECE_CHARS = 16_384;
const JSON_LINES = new Set(['.jsonl', '.ndjson']);

export interface TokenContext {
  /** Token ids as the model sees them, BOS first when `bos`. */
  ids: number[];
  /** Whether position 0 is a BOS token (excluded from statistics). */
  bos: boolean;
  /** Running number of the context in the corpus (ties between equal activations go to the earlier one). */
  seq: number;
}

export interface CorpusOptions {
  tokenizer: Tokenizer;
  prependBos: boolean;
  /** Tokens per context, BOS included. */
  context: number;
  /** Stop after this many non-BOS tokens (the last context is cut to fit). */
  maxTokens?: number;
}

export class Corpus {
  readonly files: string[];
  readonly totalBytes: number;
  bytesRead = 0;
  /** Non-BOS tokens handed out so far. */
  tokens = 0;

  constructor(
    readonly path: string,
    private readonly opts: CorpusOptions,
  ) {
    let st;
    try {
      st = statSync(path);
    } catch {
      throw new AtlasError(
        'BAD_FILE',
        `The corpus ${path} does not exist; pass a text file, a folder of text files or a .jsonl file.`,
      );
    }
    this.files = st.isDirectory() ? listFiles(path) : [path];
    if (this.files.length === 0) throw new AtlasError('BAD_FILE', `The corpus folder ${path} holds no files.`);
    this.totalBytes = this.files.reduce((s, f) => s + statSync(f).size, 0);
    const bos = opts.prependBos ? 1 : 0;
    if (!Number.isInteger(opts.context) || opts.context < 1 + bos) {
      throw new AtlasError(
        'BAD_USER_INPUT',
        `--context must be an integer of at least ${1 + bos}, got ${opts.context}.`,
      );
    }
    if (opts.prependBos && opts.tokenizer.bosId === null) {
      throw new AtlasError('UNSUPPORTED', 'The model expects a BOS token but its tokenizer defines none.');
    }
  }

  /** Fraction of the corpus consumed, by bytes read or by the token limit, whichever is further. */
  get fraction(): number {
    const byBytes = this.totalBytes > 0 ? this.bytesRead / this.totalBytes : 1;
    const byTokens = this.opts.maxTokens ? this.tokens / this.opts.maxTokens : 0;
    return Math.min(1, Math.max(byBytes, byTokens));
  }

  async *contexts(): AsyncGenerator<TokenContext> {
    const { tokenizer, prependBos, context, maxTokens } = this.opts;
    const width = context - (prependBos ? 1 : 0);
    let seq = 0;
    let done = 0;
    for (const file of this.files) {
      const before = this.bytesRead;
      for await (const doc of documents(file, (n) => {
        this.bytesRead = before + n;
      })) {
        let pending: number[] = [];
        for await (const piece of doc) {
          pending = pending.concat(tokenizer.encode(piece, { bos: false }));
          let at = 0;
          for (; pending.length - at >= width; at += width) {
            const ctx = this.take(pending.slice(at, at + width), seq++, maxTokens);
            if (ctx) yield ctx;
            if (maxTokens !== undefined && this.tokens >= maxTokens) return;
          }
          pending = pending.slice(at);
        }
        if (pending.length > 0) {
          const ctx = this.take(pending, seq++, maxTokens);
          if (ctx) yield ctx;
          if (maxTokens !== undefined && this.tokens >= maxTokens) return;
        }
      }
      done += statSync(file).size;
      this.bytesRead = done;
    }
  }

  private take(tokens: number[], seq: number, maxTokens: number | undefined): TokenContext | null {
    const room = maxTokens === undefined ? tokens.length : Math.min(tokens.length, maxTokens - this.tokens);
    if (room <= 0) return null;
    this.tokens += room;
    const body = tokens.slice(0, room);
    return this.opts.prependBos
      ? { ids: [this.opts.tokenizer.bosId!, ...body], bos: true, seq }
      : { ids: body, bos: false, seq };
  }
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...listFiles(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

/** Each document of a file as the pieces of text to tokenize in order. */
async function* documents(
  file: string,
  onBytes: (n: number) => void,
): AsyncGenerator<AsyncIterable<string> | Iterable<string>> {
  const stream = createReadStream(file, { encoding: 'utf8' });
  const lines = createInterface({ input: stream, crlfDelay: Infinity })[Symbol.asyncIterator]();
  try {
    if (JSON_LINES.has(extname(file).toLowerCase())) {
      let lineNo = 0;
      for (let r = await lines.next(); !r.done; r = await lines.next()) {
        lineNo++;
        onBytes(stream.bytesRead);
        if (r.value.trim() === '') continue;
        let text: unknown;
        try {
          text = (JSON.parse(r.value) as { text?: unknown }).text;
        } catch (e) {
          throw new AtlasError(
            'BAD_FILE',
            `${basename(file)} line ${lineNo} is not valid JSON (${(e as Error).message}); every line must be an ` +
              `object with a "text" string.`,
          );
        }
        if (typeof text !== 'string')
          throw new AtlasError('BAD_FILE', `${basename(file)} line ${lineNo} has no "text" string field.`);
        if (text.length > 0) yield [text];
      }
      return;
    }
    yield paragraphs(lines, () => onBytes(stream.bytesRead));
  } finally {
    await lines.return?.();
    stream.destroy();
  }
}

/** A text file's paragraphs (each with its line breaks), cut at a line end past PIECE_CHARS. */
async function* paragraphs(lines: AsyncIterator<string>, onLine: () => void): AsyncGenerator<string> {
  let piece = '';
  for (let r = await lines.next(); !r.done; r = await lines.next()) {
    onLine();
    piece += r.value + '\n';
    if (r.value.trim() === '' || piece.length >= PIECE_CHARS) {
      if (piece.trim() !== '') yield piece;
      piece = '';
    }
  }
  if (piece.trim() !== '') yield piece;
}
