/**
 * Serves the browser UI that `npm run build` (vite) writes to dist/web: hashed assets with long
 * caching, index.html for every client-side route (so shared URLs load), GraphiQL at /graphiql.
 * Text assets are gzipped once per file version and kept in memory, since GraphiQL's editor alone
 * is megabytes.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { WEB_DIST_DIR } from './paths.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.ttf': 'font/ttf',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.json', '.map', '.svg', '.ttf']);

/** Paths the client router renders (web/src/router.tsx); anything else stays a 404. */
const UI_ROUTE = /^\/(?:|playground|compare|dictionary\/[^/]+|feature\/[^/]+\/[^/]+)\/?$/;

export const WEB_DIST = WEB_DIST_DIR;

export interface WebUi {
  /** Answers GET/HEAD for the UI; false when the path is not the UI's (the caller sends its 404). */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean;
}

export function createWebUi(dir = WEB_DIST): WebUi {
  const gzipped = new Map<string, { version: string; body: Buffer }>();

  const send = (req: IncomingMessage, res: ServerResponse, file: string, cache: string) => {
    const st = statSync(file);
    const ext = extname(file);
    let body: Buffer = readFileSync(file);
    const headers: Record<string, string | number> = {
      'content-type': TYPES[ext] ?? 'application/octet-stream',
      'cache-control': cache,
      vary: 'accept-encoding',
    };
    if (COMPRESSIBLE.has(ext) && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
      const version = `${st.mtimeMs}:${st.size}`;
      let hit = gzipped.get(file);
      if (hit?.version !== version) gzipped.set(file, (hit = { version, body: gzipSync(body) }));
      body = hit.body;
      headers['content-encoding'] = 'gzip';
    }
    headers['content-length'] = body.length;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const notBuilt = (res: ServerResponse) => {
    res.writeHead(503, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Feature Atlas</title></head>
<body style="font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem">
<h1>Feature Atlas</h1><p>The web UI has not been built on this server (no
<code>${dir.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</code>).
Run <code>npm run build</code>, or start the server with <code>npm start</code>, which builds it when missing.</p>
<p>The GraphQL API works meanwhile: POST to <code>/graphql</code>.</p></body></html>`);
  };

  return {
    handle(req, res, path) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      const page =
        path === '/graphiql' || path === '/graphiql/' ? 'graphiql.html' : UI_ROUTE.test(path) ? 'index.html' : null;
      if (page) {
        const file = join(dir, page);
        if (!existsSync(file)) notBuilt(res);
        else send(req, res, file, 'no-cache');
        return true;
      }
      if (!path.startsWith('/assets/')) return false;
      let file: string;
      try {
        file = resolve(dir, `.${decodeURIComponent(path)}`);
      } catch {
        return false; // malformed percent-encoding: not one of our asset names
      }
      if (!file.startsWith(join(dir, 'assets') + sep) || !existsSync(file) || !statSync(file).isFile()) return false;
      // Asset names carry a content hash, so a file never changes under its name.
      send(req, res, file, 'public, max-age=31536000, immutable');
      return true;
    },
  };
}
