/**
 * `/feature/:dictionary/:index`: one feature's dashboard. Sections whose data `atlas build` has not
 * computed say so instead of showing nothing.
 */
import { useEffect, useState, type FormEvent } from 'react';
import { gql, useApiKey, useLoad, ApiError } from '../api.js';
import {
  AddExplanationDocument,
  FeatureFamilyDocument,
  FeaturePageDocument,
  FeatureRelatedDocument,
  NearestFeaturesDocument,
  type ExampleFragment,
  type FeatureFamilyQuery,
  type FeaturePageQuery,
  type NearestFeaturesQuery,
} from '../generated.js';
import { Link, paths } from '../router.js';
import { Loaded, Note, ErrorBox } from '../components/status.js';
import { Histogram } from '../components/histogram.js';
import { TokenContext } from '../components/tokens.js';
import { SteerPanel } from '../components/steer.js';
import { num, percent, tokenDisplay } from '../format.js';

type Example = ExampleFragment;
type FeatureData = NonNullable<FeaturePageQuery['feature']>;
type LogitToken = NonNullable<FeatureData['logits']>['positive'][number];
type Neighbor = NonNullable<NearestFeaturesQuery['nearestFeatures']>[number];

async function loadFeature(dictionary: string, index: number) {
  const data = await gql(FeaturePageDocument, { d: dictionary, i: index });
  if (!data.feature) throw new ApiError(`Dictionary ${dictionary} has no feature ${index}.`, 'NOT_FOUND');
  return data.feature;
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
      {(f) => {
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
                  <span className="badge">{f.labelSource === 'AUTO' ? 'automatic label' : 'curated label'}</span>
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
                  {f.histogram ? (
                    <Histogram edges={f.histogram.edges} counts={f.histogram.counts} />
                  ) : (
                    <Note>Not computed yet.</Note>
                  )}
                </section>
                <section className="card">
                  <h2>Top activating contexts</h2>
                  {f.topActivations?.length ? (
                    <Examples examples={f.topActivations} scale={scale} testId="top-activations" />
                  ) : (
                    <Note>{f.density === null ? 'Not computed yet.' : 'The feature never fired on the corpus.'}</Note>
                  )}
                </section>
                <section className="card">
                  <h2>Examples by activation band</h2>
                  {f.quantileExamples?.length ? (
                    [...f.quantileExamples]
                      .sort((x, y) => y.band - x.band)
                      .map((b) => (
                        <div key={b.band} className="band" data-testid="quantile-band">
                          <h3>
                            Band {b.band}
                            {` · peak activation ${b.band === 0 ? 'up to' : `${num(b.minActivation)} –`} ` +
                              `${num(b.maxActivation)}`}
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
              </div>
              <div className="side">
                <section className="card">
                  <h2>Explanations</h2>
                  <Explanations feature={f} onAdded={() => setVersion((v) => v + 1)} />
                </section>
                <section className="card">
                  <h2>Logit lens</h2>
                  {f.logits ? (
                    <div className="logits">
                      <LogitList title="Promoted" tokens={f.logits.positive} className="pos" />
                      <LogitList title="Suppressed" tokens={f.logits.negative} className="neg" />
                    </div>
                  ) : (
                    <Note>Not computed (the model has no unembedding, or atlas build has not run).</Note>
                  )}
                </section>
                <Nearest feature={f} />
                <Related feature={f} />
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

function Explanations({ feature, onAdded }: { feature: FeatureData; onAdded: () => void }) {
  const key = useApiKey();
  const list = feature.explanations;
  return (
    <>
      {list.length === 0 ? (
        <Note>No explanations yet.</Note>
      ) : (
        <ul className="explanations" data-testid="explanations">
          {list.map((e) => (
            <li key={e.id}>
              <div>{e.text}</div>
              <div className="muted small">
                {[e.source, e.author, new Date(e.createdAt).toLocaleString()].filter(Boolean).join(' · ')}
              </div>
            </li>
          ))}
        </ul>
      )}
      {key ? (
        <AddExplanation feature={feature} onAdded={onAdded} />
      ) : (
        <Note>Set an API key (top right) to add an explanation.</Note>
      )}
    </>
  );
}

function AddExplanation({ feature, onAdded }: { feature: FeatureData; onAdded: () => void }) {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const data = await gql(AddExplanationDocument, { d: feature.dictionary.id, i: feature.index, t: text.trim() });
      const problems = data.addExplanation?.userErrors ?? [];
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
  const [same, other] = await Promise.all([
    gql(NearestFeaturesDocument, { d: f.dictionary.id, i: f.index, in: null }),
    others.length ? gql(NearestFeaturesDocument, { d: f.dictionary.id, i: f.index, in: others }) : null,
  ]);
  return {
    same: (same.nearestFeatures ?? []).filter(
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

type FamilyMember = NonNullable<NonNullable<FeatureFamilyQuery['feature']>['family']>[number];

/** Minimum cosine for a wider dictionary's feature to count as a child of this one. */
const FAMILY_MIN_COSINE = 0.3;

async function loadRelated(feature: FeatureData) {
  const vars = { d: feature.dictionary.id, i: feature.index };
  const data = await gql(FeatureRelatedDocument, vars);
  if (!data.feature) throw new ApiError(`Feature ${feature.id} is gone.`, 'NOT_FOUND');
  // Wider dictionaries: what this feature splits into there.
  const wider = data.feature.related
    .filter((r) => r.match.dictionary.dSae > feature.dictionary.dSae)
    .map((r) => r.match.dictionary.id);
  const fams = await Promise.all(
    wider.map((other) => gql(FeatureFamilyDocument, { ...vars, other, minCosine: FAMILY_MIN_COSINE })),
  );
  const families: Record<string, FamilyMember[]> = Object.fromEntries(
    wider.map((id, k) => [id, fams[k].feature?.family ?? []]),
  );
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
