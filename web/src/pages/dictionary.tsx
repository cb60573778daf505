/**
 * `/dictionary/:id`: the features as a sortable, paginated table, and a search box backed by
 * `searchFeatures`. Sort, page and query live in the URL (`order`, `dir`, `after`, `q`); the
 * cursors of earlier pages travel in the history entry so "Previous" works without a `before`.
 */
import { useEffect, useState, type FormEvent, type ReactNode } from 'react';
import { gql, useLoad } from '../api.js';
import { DictionaryPageDocument, DictionarySearchDocument, type FeatureRowFragment } from '../generated.js';
import { Link, navigate, paths } from '../router.js';
import { Loaded, Note } from '../components/status.js';
import { FeatureMapSection } from '../components/feature-map.js';
import { enumLabel, num, percent, int } from '../format.js';

const PAGE = 50;
const ORDERS = { index: 'INDEX', density: 'DENSITY', max: 'MAX_ACTIVATION' } as const;
type OrderKey = keyof typeof ORDERS;

type Row = FeatureRowFragment;

function defaultDir(order: OrderKey): 'asc' | 'desc' {
  return order === 'index' ? 'asc' : 'desc';
}

async function loadPage(id: string, order: OrderKey, dir: 'asc' | 'desc', after: string | null) {
  const data = await gql(DictionaryPageDocument, {
    id,
    first: PAGE,
    after,
    order: ORDERS[order],
    dir: dir === 'asc' ? 'ASC' : 'DESC',
  });
  const d = data.dictionary;
  if (!d?.features)
    throw new Error(`There is no dictionary "${id}" on this server. The catalog lists the ones it has.`);
  return { ...d, features: d.features };
}

async function search(id: string, q: string) {
  return (await gql(DictionarySearchDocument, { q, id })).searchFeatures ?? [];
}

export function DictionaryPage({ id, query, state }: { id: string; query: URLSearchParams; state: unknown }) {
  const order: OrderKey = (query.get('order') as OrderKey) in ORDERS ? (query.get('order') as OrderKey) : 'index';
  const dir =
    query.get('dir') === 'asc' || query.get('dir') === 'desc'
      ? (query.get('dir') as 'asc' | 'desc')
      : defaultDir(order);
  const after = query.get('after');
  const q = query.get('q') ?? '';
  const stack = ((state as { cursors?: (string | null)[] } | null)?.cursors ?? []) as (string | null)[];

  const page = useLoad(() => loadPage(id, order, dir, after), [id, order, dir, after]);

  const params = (over: Record<string, string | undefined>) => ({
    order: order === 'index' ? undefined : order,
    dir: dir === defaultDir(order) ? undefined : dir,
    q: q || undefined,
    ...over,
  });
  const sortBy = (o: OrderKey) => {
    const nextDir = o === order ? (dir === 'asc' ? 'desc' : 'asc') : defaultDir(o);
    navigate(
      paths.dictionary(id, {
        order: o === 'index' ? undefined : o,
        dir: nextDir === defaultDir(o) ? undefined : nextDir,
      }),
    );
  };

  return (
    <Loaded value={page} what={`dictionary ${id}`}>
      {(d) => (
        <>
          <p className="crumbs">
            <Link to={paths.catalog()}>Catalog</Link> / {d.model.name} /
          </p>
          <h1>{d.id}</h1>
          <p className="lede">
            {d.name !== d.id ? `${d.name} · ` : ''}
            <code>{d.hookPoint}</code> of {d.model.name} · {int(d.dSae)} features over {d.dIn} dimensions ·{' '}
            {enumLabel(d.architecture)}
            {d.k ? ` (k=${d.k})` : ''} ·{' '}
            <Link to={paths.playground({ dictionary: d.id })}>try it in the playground</Link>
          </p>
          <section className="card">
            <h2>Map</h2>
            <FeatureMapSection
              key={d.id}
              dictionary={d.id}
              highlight={query.get('at') === null ? null : Number(query.get('at'))}
            />
          </section>
          <div className="toolbar">
            <SearchBox
              key={q}
              initial={q}
              onSearch={(text) => navigate(paths.dictionary(id, params({ q: text || undefined, after: undefined })))}
            />
            <JumpTo dSae={d.dSae} dictionary={d.id} />
          </div>
          {q ? (
            <SearchResults id={id} q={q} onClear={() => navigate(paths.dictionary(id, params({ q: undefined })))} />
          ) : (
            <>
              <table className="table features" data-testid="features">
                <thead>
                  <tr>
                    <SortHeader label="Feature" k="index" order={order} dir={dir} onSort={sortBy} />
                    <SortHeader label="Density" k="density" order={order} dir={dir} onSort={sortBy} num />
                    <SortHeader label="Max activation" k="max" order={order} dir={dir} onSort={sortBy} num />
                    <th className="num">Mean activation</th>
                    <th>Label</th>
                  </tr>
                </thead>
                <tbody>
                  {d.features.edges.map(({ node: f }) => (
                    <FeatureRow key={f.index} dictionary={d.id} f={f} />
                  ))}
                </tbody>
              </table>
              <div className="pager">
                <span className="muted">
                  {stack.length || !after
                    ? `Features ${int(stack.length * PAGE + 1)}–` +
                      `${int(stack.length * PAGE + d.features.edges.length)} of ${int(d.features.totalCount)}`
                    : `${d.features.edges.length} of ${int(d.features.totalCount)} features`}
                </span>
                <button disabled={!after} onClick={() => navigate(paths.dictionary(id, params({ after: undefined })))}>
                  First
                </button>
                <button
                  disabled={stack.length === 0}
                  onClick={() =>
                    navigate(paths.dictionary(id, params({ after: stack[stack.length - 1] ?? undefined })), {
                      state: { cursors: stack.slice(0, -1) },
                    })
                  }
                >
                  Previous
                </button>
                <button
                  disabled={!d.features.pageInfo.hasNextPage}
                  onClick={() =>
                    navigate(paths.dictionary(id, params({ after: d.features.pageInfo.endCursor ?? undefined })), {
                      state: { cursors: [...stack, after] },
                    })
                  }
                >
                  Next
                </button>
              </div>
              {d.features.edges.some(({ node }) => node.density === null) ? (
                <Note>
                  Features without statistics show {'—'}: run <code>atlas build</code> over a corpus to compute density,
                  activations and labels.
                </Note>
              ) : null}
            </>
          )}
        </>
      )}
    </Loaded>
  );
}

function SortHeader(props: {
  label: string;
  k: OrderKey;
  order: OrderKey;
  dir: 'asc' | 'desc';
  onSort: (k: OrderKey) => void;
  num?: boolean;
}) {
  const active = props.order === props.k;
  return (
    <th
      className={props.num ? 'num' : undefined}
      aria-sort={active ? (props.dir === 'asc' ? 'ascending' : 'descending') : 'none'}
    >
      <button className="sort" onClick={() => props.onSort(props.k)}>
        {props.label} {active ? props.dir === 'asc' ? '▲' : '▼' : <span className="muted">↕</span>}
      </button>
    </th>
  );
}

function FeatureRow({ dictionary, f, extra }: { dictionary: string; f: Row; extra?: ReactNode }) {
  return (
    <tr>
      <td>
        <Link to={paths.feature(dictionary, f.index)}>#{f.index}</Link>
      </td>
      <td className="num">{percent(f.density)}</td>
      <td className="num">{num(f.maxActivation)}</td>
      <td className="num">{num(f.meanActivation)}</td>
      <td>{f.label ?? <span className="muted">{'—'}</span>}</td>
      {extra}
    </tr>
  );
}

function SearchBox({ initial, onSearch }: { initial: string; onSearch: (q: string) => void }) {
  const [text, setText] = useState(initial);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onSearch(text.trim());
  };
  return (
    <form className="search" role="search" onSubmit={submit}>
      <input
        type="search"
        aria-label="Search features"
        placeholder="Search: text the feature fires on, or words of its label"
        value={text}
        onChange={(e) => setText(e.target.value)}
      />
      <button type="submit" disabled={!text.trim()}>
        Search
      </button>
    </form>
  );
}

function JumpTo({ dSae, dictionary }: { dSae: number; dictionary: string }) {
  const [value, setValue] = useState('');
  const index = Number(value);
  const valid = value !== '' && Number.isInteger(index) && index >= 0 && index < dSae;
  return (
    <form
      className="jump"
      onSubmit={(e) => {
        e.preventDefault();
        if (valid) navigate(paths.feature(dictionary, index));
      }}
    >
      <input
        type="number"
        min={0}
        max={dSae - 1}
        aria-label="Feature index"
        placeholder={`Feature 0–${dSae - 1}`}
        value={value}
        onChange={(e) => setValue(e.target.value)}
      />
      <button type="submit" disabled={!valid}>
        Open
      </button>
    </form>
  );
}

function SearchResults({ id, q, onClear }: { id: string; q: string; onClear: () => void }) {
  const hits = useLoad(() => search(id, q), [id, q]);
  useEffect(() => {
    document.title = `“${q}” in ${id} · Feature Atlas`;
  }, [id, q]);
  return (
    <section data-testid="search-results">
      <p>
        Features of {id} matching <strong>“{q}”</strong> ·{' '}
        <button className="linkish" onClick={onClear}>
          back to the list
        </button>
      </p>
      <Loaded value={hits} what="search results">
        {(list) =>
          list.length === 0 ? (
            <Note>No feature matches “{q}”.</Note>
          ) : (
            <table className="table features">
              <thead>
                <tr>
                  <th>Feature</th>
                  <th className="num">Density</th>
                  <th className="num">Max activation</th>
                  <th className="num">Mean activation</th>
                  <th>Label</th>
                  <th className="num">Score</th>
                  <th>Why</th>
                </tr>
              </thead>
              <tbody>
                {list.map((h) => (
                  <FeatureRow
                    key={h.feature.index}
                    dictionary={id}
                    f={h.feature}
                    extra={
                      <>
                        <td className="num">{num(h.score)}</td>
                        <td className="small">
                          {(h.reasons ?? []).map((r, i) => (
                            <span key={i} className="reason" title={r.detail ?? undefined}>
                              {r.signal.toLowerCase().replace('_', ' ')} {num(r.value)}
                            </span>
                          ))}
                        </td>
                      </>
                    }
                  />
                ))}
              </tbody>
            </table>
          )
        }
      </Loaded>
    </section>
  );
}
