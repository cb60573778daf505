/**
 * Progress of a long command on stderr, in any terminal or log. On a TTY: a cli-progress bar. Otherwise
 * (logs, CI, containers, `2>file`): one line at the first update, at every phase change and at most
 * every `intervalMs` in between, so a long run never looks hung:
 *   `<label>: <done> <unit> (<percent>%), <rate> <unit>/s, ETA <m:ss>[, <phase>]`
 * rate = done ÷ seconds since start; ETA = elapsed × (1 − fraction) ÷ fraction.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** `done` counts `unit` (for the rate), `fraction` (0..1) is the share of the whole run finished. */
  update(done: number, fraction: number, phase?: string): void;
  /** A message on its own line (the bar is cleared first). */
  note(line: string): void;
  stop(): void;
}

export interface ProgressOptions {
  /** Default process.stderr. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Line mode: least time between two lines (default 5 s). */
  intervalMs?: number;
  /** Milliseconds clock (default Date.now); tests pass their own. */
  now?: () => number;
}

const LINE_INTERVAL_MS = 5000;
const BAR_STEPS = 1000;

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export function startProgress(label: string, unit: string, opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? Date.now;
  const started = now();
  const rate = (done: number) => Math.round(done / Math.max((now() - started) / 1000, 1e-3));
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} {bar} {percentage}% | {done} ${unit} | {rate} ${unit}/s | ETA {eta_formatted} | {phase}`,
        stream: stream as NodeJS.WriteStream,
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(BAR_STEPS, 0, { done: 0, rate: 0, phase: '' });
    let phase = '';
    return {
      update(done, fraction, p) {
        phase = p ?? phase;
        bar.update(Math.round(fraction * BAR_STEPS), { done, rate: rate(done), phase });
      },
      note(line) {
        bar.stop();
        stream.write(`${line}\n`);
      },
      stop: () => bar.stop(),
    };
  }
  const interval = opts.intervalMs ?? LINE_INTERVAL_MS;
  let lastLine = -Infinity;
  let lastPhase: string | undefined;
  return {
    update(done, fraction, phase) {
      const t = now();
      if (t - lastLine < interval && phase === lastPhase) return;
      lastLine = t;
      lastPhase = phase;
      const elapsed = (t - started) / 1000;
      const eta = fraction > 0 ? formatDuration((elapsed * (1 - fraction)) / fraction) : '?';
      stream.write(
        `${label}: ${done} ${unit} (${Math.floor(fraction * 100)}%), ${rate(done)} ${unit}/s, ETA ${eta}` +
          `${phase ? `, ${phase}` : ''}\n`,
      );
    },
    note: (line) => stream.write(`${line}\n`),
    stop: () => undefined,
  };
}
