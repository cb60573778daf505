/** GraphiQL against this server's /graphql, bundled with its Monaco workers (no CDN). */
import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { apiKey } from './api.js';

const DEFAULT_QUERY = `# Feature Atlas. Ctrl-Enter runs the query; the Docs pane lists every field.
{
  models {
    id
    name
    dictionaries { id hookPoint dSae architecture }
  }
}
`;

async function fetcher(params: { query: string; variables?: unknown; operationName?: string | null }) {
  const key = apiKey();
  const res = await fetch('/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(params),
  });
  return res.json();
}

createRoot(document.getElementById('graphiql')!).render(<GraphiQL fetcher={fetcher} defaultQuery={DEFAULT_QUERY} />);
