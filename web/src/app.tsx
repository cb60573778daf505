/** The page frame (header, navigation, API key) and the route switch. */
import { useEffect, useState } from 'react';
import { setApiKey, useApiKey } from './api.js';
import { Link, paths, useLocation } from './router.js';
import { CatalogPage } from './pages/catalog.js';
import { DictionaryPage } from './pages/dictionary.js';
import { FeaturePage } from './pages/feature.js';
import { PlaygroundPage } from './pages/playground.js';
import { ComparePage } from './pages/compare.js';

export function App() {
  const { route, query, state } = useLocation();
  const key = useApiKey();
  useEffect(() => {
    if (route.page === 'catalog') document.title = 'Feature Atlas';
    if (route.page === 'dictionary') document.title = `${route.dictionary} · Feature Atlas`;
  }, [route]);
  return (
    <>
      <header className="top">
        <Link to={paths.catalog()} className="brand">
          Feature Atlas
        </Link>
        <nav>
          <Link to={paths.catalog()} aria-current={route.page === 'catalog' ? 'page' : undefined}>
            Catalog
          </Link>
          <Link to={paths.playground()} aria-current={route.page === 'playground' ? 'page' : undefined}>
            Playground
          </Link>
          <Link to={paths.compare()} aria-current={route.page === 'compare' ? 'page' : undefined}>
            Compare
          </Link>
          {/* GraphiQL is its own page (a separate bundle), so a plain link. */}
          <a href="/graphiql">GraphiQL</a>
        </nav>
        <KeyControl />
      </header>
      {/* A new key reloads the page's data: with ATLAS_REQUIRE_KEY=1 even reads need one. */}
      <main key={key ?? ''}>
        {route.page === 'catalog' ? <CatalogPage /> : null}
        {route.page === 'dictionary' ? (
          <DictionaryPage key={route.dictionary} id={route.dictionary} query={query} state={state} />
        ) : null}
        {route.page === 'feature' ? <FeaturePage dictionary={route.dictionary} index={route.index} /> : null}
        {route.page === 'playground' ? <PlaygroundPage query={query} /> : null}
        {route.page === 'compare' ? <ComparePage query={query} /> : null}
        {route.page === 'notFound' ? (
          <>
            <h1>Not found</h1>
            <p>
              There is no page at <code>{route.path}</code>. Start from the <Link to={paths.catalog()}>catalog</Link>.
            </p>
          </>
        ) : null}
      </main>
    </>
  );
}

/** Paste or forget the API key that writes (adding explanations) need. */
function KeyControl() {
  const key = useApiKey();
  const [editing, setEditing] = useState(false);
  const [value, setValue] = useState('');
  if (editing) {
    return (
      <form
        className="keyForm"
        onSubmit={(e) => {
          e.preventDefault();
          setApiKey(value.trim() || null);
          setValue('');
          setEditing(false);
        }}
      >
        <input
          type="password"
          aria-label="API key"
          placeholder="API key from atlas keys create"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          autoFocus
        />
        <button type="submit">Save</button>
        <button type="button" onClick={() => setEditing(false)}>
          Cancel
        </button>
      </form>
    );
  }
  return (
    <div className="keyForm">
      {key ? (
        <>
          <span className="muted small">API key set</span>
          <button onClick={() => setApiKey(null)}>Forget</button>
        </>
      ) : (
        <button onClick={() => setEditing(true)}>Set API key</button>
      )}
    </div>
  );
}
