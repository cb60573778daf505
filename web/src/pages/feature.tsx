/**
 * `/feature/:dictionary/:index`: one feature's dashboard. Sections whose fields this server does
 * not have yet say so instead of showing nothing; sections whose data `atlas build` has not
 * computed say that.
 */
import { useEffect, useState, type FormEvent } from 'react';
import { gql, useApiKey, useLoad, ApiError } from '../api.js';
import { loadSchema, pick, type Schema } from '../schema.js';
import { Link, paths } from '../router.js';
import { Loaded, Note, ErrorBox } from '../components/status.js';
import { Histogram } from '../components/histogram.js';
import { TokenContext } from '../components/tokens.js';
import { SteerPanel } from '../components/steer.js';
import { num, percent, tokenDisplay } from '../format.js';

interface Example {
  tokens: string[];
  values: number[];
  maxValue: number;
  maxPosition: number;
}

interface Band {
  band: number;
  minActivation?: number;
  maxActivation?: number;
  examples: Example[];
}

interface LogitToken {
  token: string;
  weight: number;
}

type Explanation = Record<string, string | number | null>;

interface FeatureData {
  id: string;
  index: number;
  label: string | null;
  labelSource: string | null;
  density: number | null;
  maxActivation: number | null;
  meanActivation: number | null;
  decoderNorm: number;
  dictionary: {
    id: string;
    name: string;
    dIn: number;
    dSae: number;
    hookPoint: string;
    model: { id: string; name: string; dictionaries: { id: string; dIn: number }[] };
  };
  histogram?: { edges: number[]; counts: number[] } | null;
  topActivations?: Example[] | null;
  quantileExamples?: Band[] | null;
  logits?: { positive: LogitToken[]; negative: LogitToken[] } | null;
  explanations?: Explanation[] | null;
}

interface Neighbor {
  cosine: number;
  feature: { index: number; label: string | null; dictionary: { id: string } };
}

const EXAMPLE = 'tokens values maxValue maxPosition';
/** Explanation fields shown when the server has them, in display order. */
const EXPLANATION_FIELDS = ['id', 'text', 'source', 'author', 'createdAt'];

function featureQuery(schema: Schema): string {
  const has = (f: string) => schema.has('Feature', f);
  const explanationType = schema.typeOf('Feature', 'explanations');
  return `query($d: ID!, $i: Int!) { feature(dictionary: $d, index: $i) {
    id index label labelSource density maxActivation meanActivation decoderNorm
    dictionary { id name dIn dSae hookPoint model { id name dictionaries { id dIn } } }
    ${has('histogram') ? 'histogram { edges counts }' : ''}
    ${has('topActivations') ? `topActivations(first: 20) { ${EXAMPLE} }` : ''}
    ${
      has('quantileExamples')
        ? `quantileExamples { band ` +
          `${pick(schema, 'QuantileBand', ['minActivation', 'maxActivation'])} examples { ${EXAMPLE} } }`
        : ''
    }
    ${has('logits') ? 'logits { positive { token weight } negative { token weight } }' : ''}
    ${
      explanationType
        ? `explanations { ` + `${EXPLANATION_FIELDS.filter((f) => schema.has(explanationType, f)).join(' ')} }`
        : ''
    }
  } }`;
}

async function loadFeature(dictionary: string, index: number) {
  const schema = await loadSchema();
  const data = await gql<{ feature: FeatureData | null }>(featureQuery(schema), { d: dictionary, i: index });
  if (!data.feature) throw new ApiError(`Dictionary ${dictionary} has no feature ${index}.`, 'NOT_FOUND');
  return { feature: data.feature, schema };
}

const COFIRE_TITLE = "share of this feature's firing tokens on which the child fires too, in the last build";

export function FeaturePage({ dictionary, index }: { dictionary: string; index: number }) {
  const [version, setVersion] = useState(0);
  const loaded = useLoad(() => loadFeature(dictionary, index), [dictionary, index, version]);
  useEffect(() => {
    document.title = `${dictionary} #${index} · Feature Atlas`;
  }, [dictionary, index]);
  return (
    <Loaded value={loaded} what={`feature ${index} of ${dictionary}`}>
      {({ feature: f, schema }) => {
        const scale = f.maxActivation ?? Math.max(0, ...(f.topActivations ?? []).map((e) => e.maxValue));
        return (
          <>
            <p className="crumbs">
              <Link to={paths.catalog()}>Catalog</Link> / {f.dictionary.model.name} /{' '}
              <Link to={paths.dictionary(f.dictionary.id)}>{f.dictionary.id}</Link> /
            </p>
            <div className="featureHead">
              <h1>
                Feature #{f.index}
                {f.label ? (
                  <span className="label" data-testid="feature-label">
                    {' '}
                    {f.label}
                  </span>
                ) : null}
                {f.labelSource ? (
                  <span className="badge">
                    {f.labelSource === 'auto' ? 'automatic label' : `label by ${f.labelSource}`}
                  </span>
                ) : null}
              </h1>
              <nav className="step">
                {f.index > 0 ? <Link to={paths.feature(f.dictionary.id, f.index - 1)}>← #{f.index - 1}</Link> : null}
                {f.index + 1 < f.dictionary.dSae ? (
                  <Link to={paths.feature(f.dictionary.id, f.index + 1)}>#{f.index + 1} →</Link>
                ) : null}
              </nav>
            </div>
            <dl className="stats">
              <div>
                <dt>Density</dt>
                <dd>{percent(f.density)}</dd>
              </div>
              <div>
                <dt>Max activation</dt>
                <dd>{num(f.maxActivation)}</dd>
              </div>
              <div>
                <dt>Mean activation</dt>
                <dd>{num(f.meanActivation)}</dd>
              </div>
              <div>
                <dt>Decoder norm</dt>
                <dd>{num(f.decoderNorm)}</dd>
              </div>
            </dl>
            {f.density === null ? (
              <Note>
                No statistics yet: run <code>atlas build {f.dictionary.id} --corpus …</code> to compute this feature's
                dashboard.
              </Note>
            ) : null}
            <div className="columns">
              <div className="main">
                <section className="card">
                  <h2>Activation histogram</h2>
                  {!schema.has('Feature', 'histogram') ? (
                    <Note>This server does not serve histograms yet.</Note>
                  ) : f.histogram ? (
                    <Histogram edges={f.histogram.edges} counts={f.histogram.counts} />
                  ) : (
                    <Note>Not computed yet.</Note>
                  )}
                </section>
                <section className="card">
                  <h2>Top activating contexts</h2>
                  {!schema.has('Feature', 'topActivations') ? (
                    <Note>This server does not serve activation examples yet.</Note>
                  ) : f.topActivations?.length ? (
                    <Examples examples={f.topActivations} scale={scale} testId="top-activations" />
                  ) : (
                    <Note>{f.density === null ? 'Not computed yet.' : 'The feature never fired on the corpus.'}</Note>
                  )}
                </section>
                {schema.has('Subscription', 'generateStream') ? (
                  <section className="card">
                    <h2>Steer</h2>
                    <p className="muted small">
                      Generate with this feature turned up (or down), beside the same sampling without it.
                    </p>
                    <SteerPanel
                      model={f.dictionary.model.id}
                      dictionary={f.dictionary.id}
                      index={f.index}
                      scale={f.maxActivation ?? 1}
                    />
                  </section>
                ) : null}
                {schema.has('Feature', 'quantileExamples') ? (
                  <section className="card">
                    <h2>Examples by activation band</h2>
                    {f.quantileExamples?.length ? (
                      [...f.quantileExamples]
                        .sort((x, y) => y.band - x.band)
                        .map((b) => (
                          <div key={b.band} className="band" data-testid="quantile-band">
                            <h3>
                              Band {b.band}
                              {b.maxActivation !== undefined
                                ? ` · peak activation ${b.band === 0 ? 'up to' : `${num(b.minActivation)} –`} ` +
                                  `${num(b.maxActivation)}`
                                : ''}
                            </h3>
                            {b.examples.length ? (
                              <Examples examples={b.examples} scale={scale} />
                            ) : (
                              <Note>No examples in this band.</Note>
                            )}
                          </div>
                        ))
                    ) : (
                      <Note>{f.density === null ? 'Not computed yet.' : 'The feature never fired on the corpus.'}</Note>
                    )}
                  </section>
                ) : null}
              </div>
              <div className="side">
                <section className="card">
                  <h2>Explanations</h2>
                  {schema.has('Feature', 'explanations') ? (
                    <Explanations feature={f} schema={schema} onAdded={() => setVersion((v) => v + 1)} />
                  ) : (
                    <Note>This server does not store explanations yet.</Note>
                  )}
                </section>
                <section className="card">
                  <h2>Logit lens</h2>
                  {!schema.has('Feature', 'logits') ? (
                    <Note>This server does not serve logit-lens tokens yet.</Note>
                  ) : f.logits ? (
                    <div className="logits">
                      <LogitList title="Promoted" tokens={f.logits.positive} className="pos" />
                      <LogitList title="Suppressed" tokens={f.logits.negative} className="neg" />
                    </div>
                  ) : (
                    <Note>Not computed (the model has no unembedding, or atlas build has not run).</Note>
                  )}
                </section>
                <Nearest feature={f} />
                {schema.has('Feature', 'related') ? <Related feature={f} /> : null}
              </div>
            </div>
          </>
        );
      }}
    </Loaded>
  );
}

function Examples({ examples, scale, testId }: { examples: Example[]; scale: number; testId?: string }) {
  return (
    <ol className="examples" data-testid={testId}>
      {examples.map((e, i) => (
        <li key={i}>
          <span className="exampleMax" title="Highest activation in this context">
            {num(e.maxValue)}
          </span>
          <TokenContext tokens={e.tokens} values={e.values} scale={scale || e.maxValue} highlight={e.maxPosition} />
        </li>
      ))}
    </ol>
  );
}

function LogitList({ title, tokens, className }: { title: string; tokens: LogitToken[]; className: string }) {
  return (
    <div>
      <h3>{title}</h3>
      <ul className={`logitList ${className}`}>
        {tokens.map((t, i) => (
          <li key={i}>
            <code>{tokenDisplay(t.token)}</code>
            <span className="muted">{num(t.weight)}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function Explanations({ feature, schema, onAdded }: { feature: FeatureData; schema: Schema; onAdded: () => void }) {
  const key = useApiKey();
  const list = feature.explanations ?? [];
  const canAdd = schema.mutation !== null && schema.has(schema.mutation, 'addExplanation');
  return (
    <>
      {list.length === 0 ? (
        <Note>No explanations yet.</Note>
      ) : (
        <ul className="explanations" data-testid="explanations">
          {list.map((e, i) => (
            <li key={String(e.id ?? i)}>
              <div>{e.text}</div>
              <div className="muted small">
                {[e.source, e.author, e.createdAt ? new Date(String(e.createdAt)).toLocaleString() : null]
                  .filter(Boolean)
                  .join(' · ')}
              </div>
            </li>
          ))}
        </ul>
      )}
      {canAdd ? (
        key ? (
          <AddExplanation feature={feature} schema={schema} onAdded={onAdded} />
        ) : (
          <Note>Set an API key (top right) to add an explanation.</Note>
        )
      ) : null}
    </>
  );
}

/** The payload's user-error list, whatever the server calls it. */
function userErrorsSelection(schema: Schema): { field: string; selection: string } | null {
  const payload = schema.typeOf(schema.mutation ?? '', 'addExplanation');
  if (!payload) return null;
  const field = ['userErrors', 'errors'].find((f) => schema.has(payload, f));
  if (!field) return null;
  const type = schema.typeOf(payload, field)!;
  return {
    field,
    selection: `${field} { ${['message', 'field', 'code'].filter((f) => schema.has(type, f)).join(' ')} }`,
  };
}

function AddExplanation({ feature, schema, onAdded }: { feature: FeatureData; schema: Schema; onAdded: () => void }) {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const errors = userErrorsSelection(schema);
      const data = await gql<{ addExplanation: Record<string, { message: string }[] | unknown> | null }>(
        `mutation($d: ID!, $i: Int!, $t: String!) { addExplanation(dictionary: $d, index: $i, text: $t) { ` +
          `__typename ${errors?.selection ?? ''} } }`,
        { d: feature.dictionary.id, i: feature.index, t: text.trim() },
      );
      const problems = errors ? ((data.addExplanation?.[errors.field] as { message: string }[] | undefined) ?? []) : [];
      if (problems.length) throw new ApiError(problems.map((p) => p.message).join(' '));
      setText('');
      onAdded();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(String(err)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="addExplanation" onSubmit={submit}>
      <textarea
        aria-label="New explanation"
        placeholder="What does this feature respond to?"
        value={text}
        onChange={(e) => setText(e.target.value)}
        rows={3}
      />
      <button type="submit" disabled={busy || !text.trim()}>
        {busy ? 'Adding…' : 'Add explanation'}
      </button>
      {error ? <ErrorBox error={error} what="the explanation" /> : null}
    </form>
  );
}

async function loadNearest(f: FeatureData) {
  const others = f.dictionary.model.dictionaries
    .filter((d) => d.id !== f.dictionary.id && d.dIn === f.dictionary.dIn)
    .map((d) => d.id);
  const q =
    `query($d: ID!, $i: Int!, $in: [ID!]) { nearestFeatures(dictionary: $d, index: $i, k: 10, in: $in) { ` +
    `cosine feature { index label dictionary { id } } } }`;
  const [same, other] = await Promise.all([
    gql<{ nearestFeatures: Neighbor[] }>(q, { d: f.dictionary.id, i: f.index, in: null }),
    others.length
      ? gql<{ nearestFeatures: Neighbor[] }>(q, { d: f.dictionary.id, i: f.index, in: others })
      : Promise.resolve(null),
  ]);
  return {
    same: same.nearestFeatures.filter(
      (n) => !(n.feature.dictionary.id === f.dictionary.id && n.feature.index === f.index),
    ),
    other: other?.nearestFeatures ?? null,
  };
}

function Nearest({ feature }: { feature: FeatureData }) {
  const nearest = useLoad(() => loadNearest(feature), [feature.id]);
  return (
    <section className="card" data-testid="nearest">
      <h2>Nearest features</h2>
      <p className="muted small">By cosine similarity of decoder directions.</p>
      <Loaded value={nearest} what="nearest features">
        {({ same, other }) => (
          <>
            <h3>In {feature.dictionary.id}</h3>
            <NeighborList list={same} />
            <h3>In other dictionaries of {feature.dictionary.model.name}</h3>
            {other ? (
              <NeighborList list={other} showDictionary />
            ) : (
              <Note>No other dictionary of this model reads {feature.dictionary.dIn}-wide activations.</Note>
            )}
          </>
        )}
      </Loaded>
    </section>
  );
}

function NeighborList({ list, showDictionary }: { list: Neighbor[]; showDictionary?: boolean }) {
  if (list.length === 0) return <Note>None.</Note>;
  return (
    <ul className="neighbors">
      {list.map((n) => (
        <li key={`${n.feature.dictionary.id}:${n.feature.index}`}>
          <Link to={paths.feature(n.feature.dictionary.id, n.feature.index)}>
            {showDictionary ? `${n.feature.dictionary.id} ` : ''}#{n.feature.index}
          </Link>{' '}
          <span className="muted">{num(n.cosine)}</span>{' '}
          {n.feature.label ? <span className="small">{n.feature.label}</span> : null}
        </li>
      ))}
    </ul>
  );
}

interface RelatedMatch {
  cosine: number;
  pairedCosine: number | null;
  match: { index: number; label: string | null; dictionary: { id: string; dSae: number } };
  paired: { index: number } | null;
}

interface FamilyMember {
  cosine: number;
  /**
   * Share of this feature's firing tokens on which the child fires too (last build of both); null if not built
   * together.
   */
  coActivation: number | null;
  feature: { index: number; label: string | null };
}

/** Minimum cosine for a wider dictionary's feature to count as a child of this one. */
const FAMILY_MIN_COSINE = 0.3;

async function loadRelated(feature: FeatureData) {
  const vars = { d: feature.dictionary.id, i: feature.index };
  const data = await gql<{ feature: { mapPoint: { x: number; y: number } | null; related: RelatedMatch[] } }>(
    `query($d: ID!, $i: Int!) { feature(dictionary: $d, index: $i) { mapPoint { x y }
      related { cosine pairedCosine match { index label dictionary { id dSae } } paired { index } } } }`,
    vars,
  );
  // Wider dictionaries: what this feature splits into there.
  const wider = data.feature.related
    .filter((r) => r.match.dictionary.dSae > feature.dictionary.dSae)
    .map((r) => r.match.dictionary.id);
  let families: Record<string, FamilyMember[]> = {};
  if (wider.length) {
    const fields = wider.map(
      (id, k) =>
        `f${k}: family(dictionary: ${JSON.stringify(id)}, minCosine: ${FAMILY_MIN_COSINE}) { cosine coActivation ` +
        `feature { index label } }`,
    );
    const fam = await gql<{ feature: Record<string, FamilyMember[]> }>(
      `query($d: ID!, $i: Int!) { feature(dictionary: $d, index: $i) { ${fields.join(' ')} } }`,
      vars,
    );
    families = Object.fromEntries(wider.map((id, k) => [id, fam.feature[`f${k}`]]));
  }
  return { ...data.feature, families };
}

/** Best matches of this feature in the dictionaries it has been compared with, and its children in wider ones. */
function Related({ feature }: { feature: FeatureData }) {
  const loaded = useLoad(() => loadRelated(feature), [feature.id]);
  return (
    <section className="card">
      <h2>Related in other dictionaries</h2>
      <Loaded value={loaded} what="related features">
        {(r) => (
          <>
            {r.mapPoint ? (
              <p>
                <Link to={paths.dictionary(feature.dictionary.id, { at: String(feature.index) })}>
                  Where it sits on the map
                </Link>
              </p>
            ) : null}
            {r.related.length === 0 ? (
              <Note>
                Not compared with another dictionary yet:{' '}
                <Link to={paths.compare({ a: feature.dictionary.id })}>compare</Link> this dictionary with another (or
                run <code>atlas compare</code>).
              </Note>
            ) : (
              <table className="table related" data-testid="related">
                <thead>
                  <tr>
                    <th>Dictionary</th>
                    <th>Best match</th>
                    <th className="num">Cosine</th>
                    <th title="children by decoder cosine (and co-firing share when both were built together)">
                      Splits into
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {r.related.map((m) => (
                    <tr key={m.match.dictionary.id}>
                      <td>
                        <Link to={paths.compare({ a: feature.dictionary.id, b: m.match.dictionary.id })}>
                          {m.match.dictionary.id}
                        </Link>
                      </td>
                      <td>
                        <Link to={paths.feature(m.match.dictionary.id, m.match.index)}>#{m.match.index}</Link>{' '}
                        <span className="muted">{m.match.label ?? ''}</span>
                        {m.paired && m.paired.index !== m.match.index ? (
                          <div className="muted small">
                            one-to-one:{' '}
                            <Link to={paths.feature(m.match.dictionary.id, m.paired.index)}>#{m.paired.index}</Link> (
                            {num(m.pairedCosine)})
                          </div>
                        ) : null}
                      </td>
                      <td className="num">{num(m.cosine)}</td>
                      <td>
                        {(r.families[m.match.dictionary.id] ?? []).map((c, k) => (
                          <span key={c.feature.index}>
                            {k ? ', ' : ''}
                            <Link
                              to={paths.feature(m.match.dictionary.id, c.feature.index)}
                              title={c.feature.label ?? undefined}
                            >
                              #{c.feature.index}
                            </Link>{' '}
                            <span className="muted">
                              ({num(c.cosine, 2)}
                              {c.coActivation === null ? null : (
                                <span title={COFIRE_TITLE}>, co-fires {percent(c.coActivation, 2)}</span>
                              )}
                              )
                            </span>
                          </span>
                        ))}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </>
        )}
      </Loaded>
    </section>
  );
}
