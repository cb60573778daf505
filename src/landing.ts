/** A self-contained page for GET / that says how to query; nothing is loaded from the network. */
export function landingPage(): string {
  const example = `curl -s http://localhost:4000/graphql \\
  -H 'content-type: application/json' \\
  -d '{"query":"{ serverInfo { version database } dictionaries { id hookPoint dSae } }"}'`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Feature Atlas</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#222}
pre{background:#f4f4f4;padding:1rem;overflow:auto}</style></head>
<body><h1>Feature Atlas</h1>
<p>The GraphQL API is at <code>/graphql</code> (POST JSON <code>{"query": "…", "variables": {…}}</code>).</p>
<pre>${example.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</pre>
<p>Start with <code>models</code>, <code>dictionaries</code>, <code>feature(dictionary, index)</code> and <code>nearestFeatures</code>.
Introspection is on, so any GraphQL client can browse the schema.</p>
</body></html>`;
}
