/**
 * `/compare?a=…&b=…`: two dictionaries compared by decoder cosine (`compareDictionaries`): mean max
 * cosine both ways, the one-to-one score for equal widths, the histogram of best-match cosines and
 * the best and worst matched features, each linking to both features.
 */
import { useState } from 'react';
import { gql, useLoad } from '../api.js';
import {
  CompareChoicesDocument,
  ComparisonDocument,
  type CompareChoicesQuery,
  type MatchEdgesFragment,
} from '../generated.js';
import { Link, navigate, paths } from '../router.js';
import { Loaded, Note } from '../components/status.js';
import { Histogram } from '../components/histogram.js';
import { int, num } from '../format.js';

const SHOWN = 15;

type DictionaryOption = NonNullable<CompareChoicesQuery['dictionaries']>[number];
type MatchNode = MatchEdgesFragment['edges'][number]['node'];

async function loadComparison(a: string, b: string) {
  const c = (await gql(ComparisonDocument, { a, b, n: SHOWN })).compareDictionaries;
  if (!c?.best || !c.worst) throw new Error(`Dictionaries ${a} and ${b} could not be compared.`);
  return { ...c, best: c.best, worst: c.worst };
}

export function ComparePage({ query }: { query: URLSearchParams }) {
  const a = query.get('a') ?? '';
  const b = query.get('b') ?? '';
  const dictionaries = useLoad(async () => (await gql(CompareChoicesDocument)).dictionaries ?? [], []);
  return (
    <>
      <h1>Compare dictionaries</h1>
      <p className="lede">
        Every feature of A against every feature of B by decoder cosine: how many of A's directions B also learned, what
        they split into, and for equally wide dictionaries how well they pair one to one.
      </p>
      <Loaded value={dictionaries} what="the dictionaries">
        {(list) => (
          <>
            <Picker list={list} a={a} b={b} />
            {a && b ? <Result key={`${a}|${b}`} a={a} b={b} /> : null}
          </>
        )}
      </Loaded>
    </>
  );
}

function Picker({ list, a, b }: { list: DictionaryOption[]; a: string; b: string }) {
  const [left, setLeft] = useState(a || list[0]?.id || '');
  const width = list.find((d) => d.id === left)?.dIn;
  const choices = list.filter((d) => d.id !== left && d.dIn === width);
  const [picked, setRight] = useState(b);
  // B must read activations of A's width; when A changes, fall back to the first that does.
  const right = choices.some((d) => d.id === picked) ? picked : (choices[0]?.id ?? '');
  const option = (d: DictionaryOption) => (
    <option key={d.id} value={d.id}>
      {d.id} ({int(d.dSae)} features, {d.model.id} {d.hookPoint})
    </option>
  );
  return (
    <form
      className="comparePicker"
      onSubmit={(e) => {
        e.preventDefault();
        navigate(paths.compare({ a: left, b: right }));
      }}
    >
      <label>
        A{' '}
        <select aria-label="Dictionary A" value={left} onChange={(e) => setLeft(e.target.value)}>
          {list.map(option)}
        </select>
      </label>
      <label>
        B{' '}
        <select aria-label="Dictionary B" value={right} onChange={(e) => setRight(e.target.value)}>
          {choices.map(option)}
        </select>
      </label>
      <button type="submit" disabled={!left || !right || left === right}>
        Compare
      </button>
    </form>
  );
}

function Result({ a, b }: { a: string; b: string }) {
  const loaded = useLoad(() => loadComparison(a, b), [a, b]);
  return (
    <Loaded value={loaded} what={`the comparison of ${a} and ${b} (the first time, this computes it)`}>
      {(c) => (
        <>
          <dl className="stats" data-testid="compare-stats">
            <div>
              <dt>Mean max cosine A → B</dt>
              <dd>{num(c.meanMaxCosineAB)}</dd>
            </div>
            <div>
              <dt>Mean max cosine B → A</dt>
              <dd>{num(c.meanMaxCosineBA)}</dd>
            </div>
            <div>
              <dt>One-to-one (PW-MCC)</dt>
              <dd>{c.oneToOne ? num(c.oneToOne.score) : '—'}</dd>
            </div>
            <div>
              <dt>Features</dt>
              <dd>
                {int(c.a.dSae)} / {int(c.b.dSae)}
              </dd>
            </div>
          </dl>
          {c.oneToOne ? null : <Note>The one-to-one score needs dictionaries of the same width.</Note>}
          <section className="card">
            <h2>
              Best-match cosines of {c.a.id}'s features in {c.b.id}
            </h2>
            <Histogram
              edges={c.histogram.edges}
              counts={c.histogram.counts}
              xLabel="cosine with the best match"
              describe={(t) => `Histogram of the best-match cosines of ${t} features`}
              empty="No features."
            />
          </section>
          <div className="columns">
            <MatchTable title="Best matched" a={c.a.id} b={c.b.id} rows={c.best.edges.map((e) => e.node)} />
            <MatchTable title="Worst matched" a={c.a.id} b={c.b.id} rows={c.worst.edges.map((e) => e.node)} />
          </div>
          <p className="muted">
            Computed {new Date(c.computedAt).toLocaleString()} in {num(c.seconds)} s and stored;{' '}
            <code>
              atlas compare {c.a.id} {c.b.id} --recompute
            </code>{' '}
            computes it again.
          </p>
        </>
      )}
    </Loaded>
  );
}

function MatchTable({ title, a, b, rows }: { title: string; a: string; b: string; rows: MatchNode[] }) {
  return (
    <section className="card">
      <h2>{title}</h2>
      <table className="table matches" data-testid={`matches-${title.split(' ')[0].toLowerCase()}`}>
        <thead>
          <tr>
            <th>{a}</th>
            <th>{b}</th>
            <th className="num">Cosine</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((m) => (
            <tr key={m.feature.index}>
              <td>
                <Link to={paths.feature(a, m.feature.index)}>#{m.feature.index}</Link>{' '}
                <span className="muted">{m.feature.label ?? ''}</span>
              </td>
              <td>
                <Link to={paths.feature(b, m.match.index)}>#{m.match.index}</Link>{' '}
                <span className="muted">{m.match.label ?? ''}</span>
              </td>
              <td className="num">{num(m.cosine)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
