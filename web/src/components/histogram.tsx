/**
 * A histogram as an SVG bar chart: every bin gets the same width (for activations the bins are
 * log-spaced, so this is a log x axis) and the axis is labelled at a few bin edges; counts use a
 * log y axis because dense low bins would otherwise flatten the tail.
 */
import { num, int } from '../format.js';

const W = 640;
const H = 200;
const PAD = { left: 48, right: 12, top: 10, bottom: 34 };

export function Histogram({
  edges,
  counts,
  xLabel = 'activation (log-spaced bins)',
  describe = (total: string) => `Activation histogram over ${total} firings`,
  empty = 'The histogram is empty: the feature never fired on the corpus.',
}: {
  edges: number[];
  counts: number[];
  xLabel?: string;
  describe?: (total: string) => string;
  empty?: string;
}) {
  const total = counts.reduce((a, b) => a + b, 0);
  if (counts.length === 0 || total === 0) return <p className="note">{empty}</p>;
  const max = Math.max(...counts);
  const logMax = Math.log10(max + 1);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const bw = plotW / counts.length;
  const y = (c: number) => PAD.top + plotH - (Math.log10(c + 1) / logMax) * plotH;
  const labelEvery = Math.max(1, Math.ceil(counts.length / 6));
  const yTicks = [1, 10, 100, 1000, 10000, 100000, 1000000].filter((t) => t <= max);
  return (
    <svg
      className="histogram"
      data-testid="histogram"
      viewBox={`0 0 ${W} ${H}`}
      role="img"
      aria-label={describe(int(total))}
    >
      {yTicks.map((t) => (
        <g key={t}>
          <line x1={PAD.left} x2={W - PAD.right} y1={y(t)} y2={y(t)} className="grid" />
          <text x={PAD.left - 6} y={y(t) + 4} textAnchor="end" className="axis">
            {t >= 1000 ? `${t / 1000}k` : t}
          </text>
        </g>
      ))}
      {counts.map((c, i) => (
        <rect
          key={i}
          className="bar"
          x={PAD.left + i * bw + 0.5}
          width={Math.max(1, bw - 1)}
          y={y(c)}
          height={PAD.top + plotH - y(c)}
        >
          <title>{`${num(edges[i])} – ${num(edges[i + 1])}: ${int(c)}`}</title>
        </rect>
      ))}
      <line x1={PAD.left} x2={W - PAD.right} y1={PAD.top + plotH} y2={PAD.top + plotH} className="axisLine" />
      {edges.map((e, i) =>
        i % labelEvery === 0 || i === edges.length - 1 ? (
          <text key={i} x={PAD.left + i * bw} y={H - PAD.bottom + 16} textAnchor="middle" className="axis">
            {num(e, 2)}
          </text>
        ) : null,
      )}
      <text x={PAD.left + plotW / 2} y={H - 4} textAnchor="middle" className="axisTitle">
        {xLabel}
      </text>
    </svg>
  );
}
