/** Picks the tokenizer implementation for a file or a model folder. */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { AtlasError } from '../../errors.js';
import { HuggingFaceTokenizer } from './huggingface.js';
import { Llama2cTokenizer } from './llama2c.js';
import type { Tokenizer } from './types.js';

export type { Tokenizer } from './types.js';

/** First non-whitespace byte of a file: '{' marks JSON, whatever the file is called. */
function firstByte(path: string): number {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(64);
    const n = readSync(fd, buf, 0, buf.length, 0);
    for (let i = 0; i < n; i++) if (![0x20, 0x09, 0x0a, 0x0d].includes(buf[i])) return buf[i];
    return -1;
  } finally {
    closeSync(fd);
  }
}

/** The files loadTokenizer(path) reads: the tokenizer itself and, for tokenizer.json, its config beside it. */
export function tokenizerFiles(path: string): string[] {
  const json = existsSync(path) && statSync(path).isDirectory() ? join(path, 'tokenizer.json') : path;
  if (!json.endsWith('.json')) return [json];
  const config = join(dirname(json), 'tokenizer_config.json');
  return existsSync(config) ? [json, config] : [json];
}

/**
 * Loads a llama2.c tokenizer `.bin`, or a Hugging Face `tokenizer.json` (with the
 * `tokenizer_config.json` beside it, if any). A folder means its `tokenizer.json`.
 */
export function loadTokenizer(path: string): Tokenizer {
  if (!existsSync(path)) throw new AtlasError('BAD_FILE', `Tokenizer file ${path} does not exist.`, { path });
  if (statSync(path).isDirectory()) {
    const json = join(path, 'tokenizer.json');
    if (!existsSync(json)) {
      throw new AtlasError(
        'BAD_FILE',
        `Folder ${path} has no tokenizer.json; pass the tokenizer file itself (tokenizer.json or a llama2.c .bin).`,
        { path },
      );
    }
    return HuggingFaceTokenizer.open(json);
  }
  if (basename(path) === 'tokenizer.model') {
    throw new AtlasError(
      'UNSUPPORTED',
      `${path} is a SentencePiece model; use the tokenizer.json published with the model, or export it to ` +
        `llama2.c's format with llama2.c's tokenizer.py.`,
      { path },
    );
  }
  if (path.endsWith('.json') || firstByte(path) === 0x7b) return HuggingFaceTokenizer.open(path);
  return Llama2cTokenizer.open(path);
}
