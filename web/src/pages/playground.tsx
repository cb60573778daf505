/**
 * `/playground?dictionary=…&text=…`: run a text through a dictionary and see each token shaded
 * by its strongest feature. Clicking a token lists its features; each links to its page. The
 * URL carries the dictionary and text, so a shared link reruns the same encoding.
 */
import { useEffect, useState, type FormEvent } from 'react';
import { gql, useLoad, ApiError, type Loadable } from '../api.js';
import {
  EncodeDocument,
  PlaygroundChoicesDocument,
  type ActivationItemFragment,
  type EncodeQuery,
} from '../generated.js';
import { Link, navigate, paths } from '../router.js';
import { Loaded, Loading, ErrorBox, Note } from '../components/status.js';
import { shade } from '../components/tokens.js';
import { num, tokenDisplay } from '../format.js';
import { SteerEditor } from '../components/steer.js';

type Activation = ActivationItemFragment;
type Encoding = NonNullable<EncodeQuery['encode']>;

const EXAMPLE_TEXT = 'Once upon a time, there was a little girl who loved to play with her ball in the park.';
const TOP_K = 10;

async function encode(dictionary: string, text: string): Promise<Encoding> {
  const data = await gql(EncodeDocument, { d: dictionary, t: text, k: TOP_K });
  if (!data.encode) throw new ApiError(`Dictionary ${dictionary} could not encode the text.`);
  return data.encode;
}

export function PlaygroundPage({ query }: { query: URLSearchParams }) {
  const dictionaries = useLoad(async () => (await gql(PlaygroundChoicesDocument)).dictionaries ?? [], []);
  const urlDictionary = query.get('dictionary') ?? '';
  const urlText = query.get('text') ?? '';
  const [dictionary, setDictionary] = useState(urlDictionary);
  const [text, setText] = useState(urlText || EXAMPLE_TEXT);
  const [result, setResult] = useState<Loadable<Encoding> | null>(null);
  const [selected, setSelected] = useState<number | null>(null);
  const [rerun, setRerun] = useState(0);

  useEffect(() => {
    document.title = 'Playground · Feature Atlas';
  }, []);
  // Default to the first dictionary once the list is known.
  useEffect(() => {
    if (!dictionary && dictionaries.state === 'done' && dictionaries.data.length)
      setDictionary(dictionaries.data[0].id);
  }, [dictionaries, dictionary]);
  // Run whatever the URL asks for (a shared link, or the form just submitted).
  useEffect(() => {
    if (!urlDictionary || !urlText) return;
    setDictionary(urlDictionary);
    setText(urlText);
    let current = true;
    setResult({ state: 'loading' });
    setSelected(null);
    encode(urlDictionary, urlText).then(
      (data) => current && setResult({ state: 'done', data }),
      (e: unknown) =>
        current && setResult({ state: 'error', error: e instanceof ApiError ? e : new ApiError(String(e)) }),
    );
    return () => {
      current = false;
    };
  }, [urlDictionary, urlText, rerun]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!dictionary || !text.trim()) return;
    // Submitting what the URL already says reruns it (the server may have changed since).
    if (urlDictionary === dictionary && urlText === text) setRerun((r) => r + 1);
    else navigate(paths.playground({ dictionary, text }));
  };

  return (
    <>
      <h1>Playground</h1>
      <Loaded value={dictionaries} what="the dictionaries">
        {(list) =>
          list.length === 0 ? (
            <Note>
              This server has no dictionaries yet. Import one with <code>atlas import</code>.
            </Note>
          ) : (
            <form className="playgroundForm" onSubmit={submit}>
              <textarea aria-label="Text to encode" value={text} onChange={(e) => setText(e.target.value)} rows={4} />
              <div className="row">
                <label>
                  Dictionary{' '}
                  <select aria-label="Dictionary" value={dictionary} onChange={(e) => setDictionary(e.target.value)}>
                    {[...new Set(list.map((d) => d.model.id))].map((m) => (
                      <optgroup key={m} label={list.find((d) => d.model.id === m)!.model.name}>
                        {list
                          .filter((d) => d.model.id === m)
                          .map((d) => (
                            <option key={d.id} value={d.id}>
                              {d.id} ({d.hookPoint})
                            </option>
                          ))}
                      </optgroup>
                    ))}
                  </select>
                </label>
                <button type="submit" disabled={!dictionary || !text.trim()}>
                  Encode
                </button>
              </div>
            </form>
          )
        }
      </Loaded>
      {result?.state === 'loading' ? <Loading what="the encoding" /> : null}
      {result?.state === 'error' ? <ErrorBox error={result.error} what="the encoding" /> : null}
      {result?.state === 'done' ? (
        <EncodingView encoding={result.data} selected={selected} onSelect={setSelected} />
      ) : null}
      {dictionaries.state === 'done' && dictionaries.data.length ? (
        <section className="card">
          <h2>Steer</h2>
          <p className="muted small">
            Generate with several features turned up or down together (dictionaries of one model), beside the same
            sampling without them.
          </p>
          <SteerEditor choices={dictionaries.data} />
        </section>
      ) : null}
    </>
  );
}

function EncodingView({
  encoding,
  selected,
  onSelect,
}: {
  encoding: Encoding;
  selected: number | null;
  onSelect: (p: number) => void;
}) {
  const d = encoding.dictionary.id;
  const strongest = (t: Encoding['tokens'][number]) => t.features[0]?.activation ?? 0;
  const scale = Math.max(0, ...encoding.tokens.filter((t) => !t.isBos).map(strongest));
  const token = selected === null ? null : (encoding.tokens.find((t) => t.position === selected) ?? null);
  return (
    <div className="columns">
      <div className="main">
        <section className="card">
          <h2>Tokens</h2>
          <p className="muted small">Shaded by each token's strongest feature; click a token to see its features.</p>
          <div className="context playground" data-testid="playground-tokens">
            {encoding.tokens
              .filter((t) => !t.isBos)
              .map((t) => (
                <button
                  key={t.position}
                  className={`tok${t.position === selected ? ' selected' : ''}`}
                  style={{ background: shade(strongest(t), scale) }}
                  title={
                    t.features[0] ? `#${t.features[0].index}: ${num(t.features[0].activation, 4)}` : 'no active feature'
                  }
                  onClick={() => onSelect(t.position)}
                >
                  {tokenDisplay(t.text)}
                </button>
              ))}
          </div>
          <p className="muted small">
            L0 {num(encoding.reconstruction.l0)} · cosine {num(encoding.reconstruction.cosine)}
            {encoding.reconstruction.explainedVariance !== null
              ? ` · explained variance ${num(encoding.reconstruction.explainedVariance)}`
              : ''}
          </p>
        </section>
        {token ? (
          <section className="card" data-testid="token-features">
            <h2>
              Features of <code>{JSON.stringify(token.text)}</code> (position {token.position})
            </h2>
            <ActivationList dictionary={d} list={token.features} />
          </section>
        ) : null}
      </div>
      <div className="side">
        <section className="card">
          <h2>Strongest features in the text</h2>
          <ActivationList dictionary={d} list={encoding.topFeatures} />
        </section>
      </div>
    </div>
  );
}

function ActivationList({ dictionary, list }: { dictionary: string; list: Activation[] }) {
  if (list.length === 0) return <Note>No feature is active here.</Note>;
  const max = list[0].activation;
  return (
    <ul className="activations">
      {list.map((f) => (
        <li key={f.index}>
          <Link to={paths.feature(dictionary, f.index)}>#{f.index}</Link>
          <span className="bar" style={{ width: `${(100 * f.activation) / max}%` }} />
          <span className="value">{num(f.activation)}</span>
          {f.feature.label ? <span className="small">{f.feature.label}</span> : null}
        </li>
      ))}
    </ul>
  );
}
