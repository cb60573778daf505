/**
 * A first, automatic label for a feature: the tokens it fires on most, read from its top examples
 * (the token at each example's strongest position), most frequent first, ties to the token seen
 * with the higher activation, e.g. `" ball" · " toy" · " kite"`. Token texts are JSON-quoted so
 * spaces and line breaks stay visible.
 */
import type { Example } from './top-examples.js';

export const LABEL_TOKENS = 3;

export function autoLabel(top: readonly Example[], tokenText: (id: number) => string, n = LABEL_TOKENS): string | null {
  const seen = new Map<string, { count: number; best: number }>();
  for (const e of top) {
    const text = tokenText(e.tokens[e.maxPosition]);
    const s = seen.get(text);
    if (s) {
      s.count++;
      s.best = Math.max(s.best, e.maxValue);
    } else {
      seen.set(text, { count: 1, best: e.maxValue });
    }
  }
  if (seen.size === 0) return null;
  return [...seen]
    .sort((a, b) => b[1].count - a[1].count || b[1].best - a[1].best || (a[0] < b[0] ? -1 : 1))
    .slice(0, n)
    .map(([text]) => JSON.stringify(text))
    .join(' · ');
}
