/**
 * A context of tokens, each shaded by its activation relative to `scale` (the feature's maximum),
 * with the value on hover. Joined, the token texts read as the original text.
 */
import { tokenDisplay, num } from '../format.js';

export function shade(value: number, scale: number): string {
  const a = scale > 0 ? Math.max(0, Math.min(1, value / scale)) : 0;
  return a > 0 ? `rgba(234, 88, 12, ${(0.12 + 0.78 * a).toFixed(3)})` : 'transparent';
}

export function TokenContext({
  tokens,
  values,
  scale,
  highlight,
}: {
  tokens: string[];
  values: number[];
  scale: number;
  highlight?: number;
}) {
  return (
    <div className="context" data-testid="context">
      {tokens.map((t, i) => (
        <span
          key={i}
          className={`tok${values[i] > 0 ? ' active' : ''}${i === highlight ? ' peak' : ''}`}
          style={{ background: shade(values[i] ?? 0, scale) }}
          title={`${JSON.stringify(t)}: ${num(values[i], 4)}`}
          data-value={values[i]}
        >
          {tokenDisplay(t)}
        </span>
      ))}
    </div>
  );
}
