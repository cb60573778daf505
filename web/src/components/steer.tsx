/**
 * Steered generation, streamed: a prompt, one or more interventions (feature, strength, method) and
 * the steered and default completions side by side as the server samples them (generateStream over
 * graphql-ws). A new run or leaving the page cancels the one in flight.
 */
import { useEffect, useRef, useState, type FormEvent, type ReactNode } from 'react';
import { subscribe, type ApiError } from '../api.js';
import { ErrorBox } from './status.js';
import { SteerStreamDocument, type SteeringMethod } from '../generated.js';

export interface SteerRow {
  dictionary: string;
  index: number;
  strength: number;
  method: SteeringMethod;
}

const METHODS: { value: SteeringMethod; label: string }[] = [
  { value: 'ADD', label: 'add' },
  { value: 'CLAMP', label: 'clamp' },
  { value: 'PROJECTION_CAP', label: 'projection cap' },
];

export function MethodSelect({ value, onChange }: { value: SteeringMethod; onChange: (m: SteeringMethod) => void }) {
  return (
    <select aria-label="Method" value={value} onChange={(e) => onChange(e.target.value as SteeringMethod)}>
      {METHODS.map((m) => (
        <option key={m.value} value={m.value}>
          {m.label}
        </option>
      ))}
    </select>
  );
}

/** Runs `rows` on `model` when submitted; `children` edits the rows. */
export function SteerRun({
  model,
  rows,
  children,
  maxTokens = 32,
}: {
  model: string;
  rows: SteerRow[];
  children?: ReactNode;
  maxTokens?: number;
}) {
  const [prompt, setPrompt] = useState('Once upon a time');
  const [steered, setSteered] = useState('');
  const [plain, setPlain] = useState('');
  const [state, setState] = useState<'idle' | 'running' | 'done'>('idle');
  const [error, setError] = useState<ApiError | null>(null);
  const cancel = useRef<(() => void) | null>(null);
  useEffect(() => () => cancel.current?.(), []);

  const run = (e: FormEvent) => {
    e.preventDefault();
    cancel.current?.();
    setSteered('');
    setPlain('');
    setError(null);
    setState('running');
    cancel.current = subscribe(
      SteerStreamDocument,
      { m: model, p: prompt, n: maxTokens, s: rows },
      {
        next: ({ generateStream: ev }) => {
          if (ev.done) {
            setSteered(ev.done.text);
            setPlain(ev.done.default?.text ?? '');
          } else if (ev.token) {
            const text = ev.token.text;
            (ev.run === 'STEERED' ? setSteered : setPlain)((t) => t + text);
          }
        },
        error: (err) => {
          setError(err);
          setState('done');
        },
        complete: () => setState('done'),
      },
    );
  };

  return (
    <form className="steer" onSubmit={run} data-testid="steer">
      <textarea aria-label="Prompt" value={prompt} onChange={(e) => setPrompt(e.target.value)} rows={2} />
      {children}
      <div className="row">
        <button type="submit" disabled={!prompt.trim() || rows.length === 0}>
          {state === 'running' ? 'Restart' : 'Generate'}
        </button>
        {state === 'running' ? (
          <button type="button" onClick={() => (cancel.current?.(), setState('done'))}>
            Stop
          </button>
        ) : null}
      </div>
      {error ? <ErrorBox error={error} what="the generation" /> : null}
      {state !== 'idle' ? (
        <div className="steerColumns">
          {[
            ['Steered', steered, 'steered-text'],
            ['Default', plain, 'default-text'],
          ].map(([title, text, testId]) => (
            <div key={testId}>
              <h3>{title}</h3>
              <p className="completion" data-testid={testId}>
                {prompt}
                <strong>{text}</strong>
              </p>
            </div>
          ))}
        </div>
      ) : null}
      {state === 'done' && !error ? <span data-testid="steer-done" hidden /> : null}
    </form>
  );
}

/** The feature page's panel: this feature, a strength slider and a method. */
export function SteerPanel({
  model,
  dictionary,
  index,
  scale,
}: {
  model: string;
  dictionary: string;
  index: number;
  scale: number;
}) {
  const max = Math.max(1, Math.ceil(scale * 10));
  const [strength, setStrength] = useState(Math.max(1, Math.round(scale * 4)));
  const [method, setMethod] = useState<SteeringMethod>('ADD');
  return (
    <SteerRun model={model} rows={[{ dictionary, index, strength, method }]}>
      <div className="row">
        <label>
          Strength{' '}
          <input
            type="range"
            aria-label="Strength"
            min={-max}
            max={max}
            step={max / 100}
            value={strength}
            onChange={(e) => setStrength(Number(e.target.value))}
          />{' '}
          <output>{strength.toFixed(2)}</output>
        </label>
        <MethodSelect value={method} onChange={setMethod} />
      </div>
    </SteerRun>
  );
}

/** The playground's editor: several features (of dictionaries of one model) with their strengths and methods. */
export function SteerEditor({ choices }: { choices: { id: string; model: { id: string } }[] }) {
  const [rows, setRows] = useState<SteerRow[]>(() => [
    { dictionary: choices[0].id, index: 0, strength: 4, method: 'ADD' },
  ]);
  const model = choices.find((c) => c.id === rows[0]?.dictionary)?.model.id ?? choices[0].model.id;
  const sameModel = choices.filter((c) => c.model.id === model);
  const update = (i: number, change: Partial<SteerRow>) =>
    setRows((rs) => rs.map((r, j) => (j === i ? { ...r, ...change } : r)));
  return (
    <SteerRun model={model} rows={rows}>
      <ul className="steerRows">
        {rows.map((r, i) => (
          <li key={i} data-testid="steer-row">
            <select
              aria-label="Steering SAE"
              value={r.dictionary}
              onChange={(e) => update(i, { dictionary: e.target.value })}
            >
              {(i === 0 ? choices : sameModel).map((c) => (
                <option key={c.id} value={c.id}>
                  {c.id}
                </option>
              ))}
            </select>{' '}
            #
            <input
              type="number"
              aria-label="Feature index"
              min={0}
              value={r.index}
              onChange={(e) => update(i, { index: Number(e.target.value) })}
            />{' '}
            <input
              type="number"
              aria-label="Strength"
              step="any"
              value={r.strength}
              onChange={(e) => update(i, { strength: Number(e.target.value) })}
            />{' '}
            <MethodSelect value={r.method} onChange={(method) => update(i, { method })} />{' '}
            {rows.length > 1 ? (
              <button type="button" onClick={() => setRows((rs) => rs.filter((_, j) => j !== i))}>
                Remove
              </button>
            ) : null}
          </li>
        ))}
      </ul>
      <button
        type="button"
        onClick={() => setRows((rs) => [...rs, { dictionary: rs[0].dictionary, index: 0, strength: 4, method: 'ADD' }])}
      >
        Add a feature
      </button>
    </SteerRun>
  );
}
