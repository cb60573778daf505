/** Turning token bytes into display text, shared by the llama2.c and Hugging Face tokenizers. */

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The escape shown for a byte that is not part of a complete UTF-8 character (SentencePiece's byte-token name). */
export function byteEscape(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** `<0xNN>` byte-token name → the byte, else -1. */
export function parseByteToken(piece: string): number {
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
  return m ? parseInt(m[1], 16) : -1;
}

/**
 * Decodes the complete UTF-8 characters in `bytes` and escapes every other byte, so that a token
 * holding half of a multi-byte character stays visible instead of turning into U+FFFD.
 */
export function displayBytes(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    const n = b < 0x80 ? 1 : (b & 0xe0) === 0xc0 ? 2 : (b & 0xf0) === 0xe0 ? 3 : (b & 0xf8) === 0xf0 ? 4 : 0;
    if (n === 1) {
      out += String.fromCharCode(b);
      i += 1;
      continue;
    }
    if (n > 1 && i + n <= bytes.length) {
      try {
        out += strictUtf8.decode(bytes.subarray(i, i + n));
        i += n;
        continue;
      } catch {
        // Not a valid character (bad continuation, overlong, surrogate): escape the lead byte alone.
      }
    }
    out += byteEscape(b);
    i += 1;
  }
  return out;
}
