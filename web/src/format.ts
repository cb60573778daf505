/** Number formats shared by the pages: short, and never "NaN" or "null" on screen. */
export const DASH = '—';

export function num(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(digits - 1);
  return Number(v.toPrecision(digits)).toString();
}

export function percent(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return DASH;
  if (v === 0) return '0%';
  const p = v * 100;
  return Math.abs(p) < 1e-3 ? `${p.toExponential(1)}%` : `${Number(p.toPrecision(digits))}%`;
}

/** An enum value as the files and the CLI spell it: `GPT_NEOX` → `gpt_neox`. */
export function enumLabel(v: string): string {
  return v.toLowerCase();
}

export function int(v: number | null | undefined): string {
  return v === null || v === undefined ? DASH : v.toLocaleString('en-US');
}

/**
 * Token text as it should read on screen: spaces kept, newlines and tabs marked, other control characters as their
 * byte.
 */
export function tokenDisplay(text: string): string {
  return text
    .replace(/\n/g, '↵')
    .replace(/\t/g, '⇥')
    .replace(
      // eslint-disable-next-line no-control-regex -- control characters are exactly what this shows
      /[\u0000-\u001f\u007f-\u009f]/g,
      (c) => `<0x${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}>`,
    );
}
