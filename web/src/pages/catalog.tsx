/** `/`: every model and its dictionaries, with the statistics `atlas build` computed for them. */
import { gql, useLoad } from '../api.js';
import { CatalogDocument } from '../generated.js';
import { Link, paths } from '../router.js';
import { Loaded, Note } from '../components/status.js';
import { enumLabel, num, percent, int } from '../format.js';

async function loadCatalog() {
  const data = await gql(CatalogDocument);
  return { serverInfo: data.serverInfo, models: data.models ?? [] };
}

export function CatalogPage() {
  const catalog = useLoad(loadCatalog, []);
  return (
    <Loaded value={catalog} what="the catalog">
      {({ models, serverInfo }) => (
        <>
          <h1>Catalog</h1>
          <p className="lede">
            {models.length} model{models.length === 1 ? '' : 's'},{' '}
            {models.reduce((n, m) => n + m.dictionaries.length, 0)} dictionaries
            {serverInfo
              ? ` · server ${serverInfo.version} on ${serverInfo.database}, ` +
                `models run on ${serverInfo.executionProvider.toLowerCase()}`
              : ''}
          </p>
          {models.length === 0 ? (
            <Note>
              No models yet. Add one with <code>atlas model add</code> and import a dictionary with{' '}
              <code>atlas import</code>.
            </Note>
          ) : null}
          {models.map((m) => (
            <section key={m.id} className="card" data-testid="model">
              <h2>
                {m.name} <span className="muted">({m.id})</span>
              </h2>
              <p className="muted">
                {enumLabel(m.architecture)}, {m.layers} layers, d_model {m.dModel}
              </p>
              {m.dictionaries.length === 0 ? (
                <Note>No dictionaries for this model yet.</Note>
              ) : (
                <table className="table">
                  <thead>
                    <tr>
                      <th>Dictionary</th>
                      <th>Hook point</th>
                      <th className="num">Width</th>
                      <th>Architecture</th>
                      <th className="num">L0</th>
                      <th className="num">Dead</th>
                      <th className="num">Explained variance</th>
                      <th className="num">Built on</th>
                    </tr>
                  </thead>
                  <tbody>
                    {m.dictionaries.map((d) => (
                      <tr key={d.id}>
                        <td>
                          <Link to={paths.dictionary(d.id)}>{d.id}</Link>
                          {d.name !== d.id ? <div className="muted small">{d.name}</div> : null}
                        </td>
                        <td>
                          <code>{d.hookPoint}</code>
                        </td>
                        <td className="num">{int(d.dSae)}</td>
                        <td>{d.architecture === 'TOPK' && d.k ? `topk (k=${d.k})` : enumLabel(d.architecture)}</td>
                        <td className="num">{num(d.stats?.l0)}</td>
                        <td className="num">{percent(d.stats?.deadFraction)}</td>
                        <td className="num">{percent(d.stats?.explainedVariance)}</td>
                        <td className="num">{d.stats?.tokens ? `${int(d.stats.tokens)} tokens` : '—'}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
              {m.dictionaries.some((d) => !d.stats) ? (
                <Note>
                  Dictionaries shown with {'—'} have no statistics yet: run <code>atlas build</code> over a corpus.
                </Note>
              ) : null}
            </section>
          ))}
        </>
      )}
    </Loaded>
  );
}
