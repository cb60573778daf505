export interface Tokenizer {
  readonly vocabSize: number;
  /** Token prepended when the model expects BOS (llama2.c: 1); null when there is none. */
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** Token ids for text; `bos` (default: true when the model expects BOS) prepends it. Never appends EOS. */
  encode(text: string, opts?: { bos?: boolean }): number[];
  /** Text of a token sequence; BOS and EOS produce no text. Ids outside the vocabulary are refused. */
  decode(ids: number[]): string;
  /**
   * Display text of one token in context-free form: byte-level 'Ġ' and SentencePiece '▁' become a
   * space, `<0x0A>` becomes '\n', a byte that is not a complete UTF-8 character is shown as its
   * `<0xNN>` escape. Joined over a sequence (BOS excluded) it reads as the text, except that
   * SentencePiece-style tokenizers keep their dummy-prefix space at the start.
   */
  tokenText(id: number): string;
}
