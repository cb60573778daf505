export interface Tokenizer {
  readonly vocabSize: number;
  /** Token prepended when the model expects BOS (llama2.c: 1); null when there is none. */
  readonly bosId: number | null;
  readonly eosId: number | null;
  /** Token ids for text; `bos` (default: true when the model expects BOS) prepends it. */
  encode(text: string, opts?: { bos?: boolean }): number[];
  decode(ids: number[]): string;
  /** Display text of one token, such that joined over a sequence (BOS excluded) it reads as the text. */
  tokenText(id: number): string;
}
