/**
 * Client-side routes over the History API, so every page has a URL to share. The server answers
 * these paths with index.html (src/web.ts) and the app renders the page from the URL alone.
 */
import { useEffect, useState, type AnchorHTMLAttributes, type MouseEvent } from 'react';

export type Route =
  | { page: 'catalog' }
  | { page: 'dictionary'; dictionary: string }
  | { page: 'feature'; dictionary: string; index: number }
  | { page: 'playground' }
  | { page: 'compare' }
  | { page: 'notFound'; path: string };

export const paths = {
  catalog: () => '/',
  dictionary: (id: string, params?: Record<string, string | undefined>) =>
    withQuery(`/dictionary/${encodeURIComponent(id)}`, params),
  feature: (dictionary: string, index: number) => `/feature/${encodeURIComponent(dictionary)}/${index}`,
  playground: (params?: Record<string, string | undefined>) => withQuery('/playground', params),
  compare: (params?: Record<string, string | undefined>) => withQuery('/compare', params),
};

function withQuery(path: string, params?: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export function parseRoute(pathname: string): Route {
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: 'catalog' };
  if (parts[0] === 'dictionary' && parts.length === 2) return { page: 'dictionary', dictionary: parts[1] };
  if (parts[0] === 'feature' && parts.length === 3 && /^\d+$/.test(parts[2]))
    return { page: 'feature', dictionary: parts[1], index: Number(parts[2]) };
  if (parts[0] === 'playground' && parts.length === 1) return { page: 'playground' };
  if (parts[0] === 'compare' && parts.length === 1) return { page: 'compare' };
  return { page: 'notFound', path: pathname };
}

export interface Location {
  route: Route;
  query: URLSearchParams;
  /** State pushed with the entry (the dictionary page keeps its previous cursors here). */
  state: unknown;
}

function current(): Location {
  return { route: parseRoute(location.pathname), query: new URLSearchParams(location.search), state: history.state };
}

export function navigate(to: string, opts: { replace?: boolean; state?: unknown } = {}): void {
  if (opts.replace) history.replaceState(opts.state ?? null, '', to);
  else history.pushState(opts.state ?? null, '', to);
  window.dispatchEvent(new Event('atlas-navigate'));
  if (!opts.replace) window.scrollTo(0, 0);
}

export function useLocation(): Location {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const update = () => setLoc(current());
    window.addEventListener('popstate', update);
    window.addEventListener('atlas-navigate', update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener('atlas-navigate', update);
    };
  }, []);
  return loc;
}

/** An <a> that navigates in-app on a plain click and behaves as a normal link otherwise. */
export function Link({
  to,
  state,
  ...rest
}: AnchorHTMLAttributes<HTMLAnchorElement> & { to: string; state?: unknown }) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    rest.onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to, { state });
  };
  return <a {...rest} href={to} onClick={onClick} />;
}
