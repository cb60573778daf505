/**
 * The one way the pages talk to the server: POST /graphql with one of the static documents of
 * web/src/operations (typed by `npm run codegen`), errors turned into sentences.
 */
import { useEffect, useState } from 'react';
import { createClient, type Client } from 'graphql-ws';
import type { TypedDocumentString } from './generated.js';

const KEY_STORAGE = 'atlas.apiKey';

/** The API key the user pasted (sent as `Authorization: Bearer …`), kept in this browser only. */
export function apiKey(): string | null {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function setApiKey(key: string | null): void {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
  window.dispatchEvent(new Event('atlas-api-key'));
}

/** Re-renders when the key changes in this tab. */
export function useApiKey(): string | null {
  const [key, setKey] = useState(apiKey);
  useEffect(() => {
    const update = () => setKey(apiKey());
    window.addEventListener('atlas-api-key', update);
    return () => window.removeEventListener('atlas-api-key', update);
  }, []);
  return key;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string; retryAfterMs?: number } }[];
}

export async function gql<T, V>(document: TypedDocumentString<T, V>, variables?: V): Promise<T> {
  const key = apiKey();
  let res: Response;
  try {
    res = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({ query: document.toString(), variables: variables ?? {} }),
    });
  } catch (e) {
    throw new ApiError(`Could not reach the server (${(e as Error).message}). Is \`atlas serve\` still running?`);
  }
  let body: GraphQLResponse<T>;
  try {
    body = (await res.json()) as GraphQLResponse<T>;
  } catch {
    throw new ApiError(`The server answered ${res.status} ${res.statusText} without a GraphQL response.`);
  }
  const first = body.errors?.[0];
  if (first) throw new ApiError(first.message, first.extensions?.code);
  if (!body.data) throw new ApiError(`The server answered ${res.status} with no data.`);
  return body.data;
}

export type Loadable<T> = { state: 'loading' } | { state: 'error'; error: ApiError } | { state: 'done'; data: T };

/**
 * Runs `load` whenever `deps` change and tracks its state; a stale answer (deps changed while it
 * was in flight) is dropped so a fast click sequence never shows the wrong page.
 */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loadable<T> {
  const [result, setResult] = useState<Loadable<T>>({ state: 'loading' });
  useEffect(() => {
    let current = true;
    setResult({ state: 'loading' });
    load().then(
      (data) => current && setResult({ state: 'done', data }),
      (e: unknown) =>
        current &&
        setResult({
          state: 'error',
          error: e instanceof ApiError ? e : new ApiError(String((e as Error)?.message ?? e)),
        }),
    );
    return () => {
      current = false;
    };
    // The caller lists what `load` depends on, as with useEffect.
  }, deps);
  return result;
}

let wsClient: Client | null = null;

/**
 * Runs a GraphQL subscription over the graphql-ws protocol on this page's server (/graphql), the
 * API key in the connection's payload; returns a function that cancels it (the server stops its work).
 */
export function subscribe<T, V extends Record<string, unknown>>(
  document: TypedDocumentString<T, V>,
  variables: V,
  on: { next: (data: T) => void; error: (e: ApiError) => void; complete: () => void },
): () => void {
  wsClient ??= createClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`,
    connectionParams: () => {
      const key = apiKey();
      return key ? { authorization: `Bearer ${key}` } : {};
    },
  });
  return wsClient.subscribe<T>(
    { query: document.toString(), variables },
    {
      next: (r) => {
        const first = r.errors?.[0];
        if (first) on.error(new ApiError(first.message, first.extensions?.code as string | undefined));
        else if (r.data) on.next(r.data);
      },
      error: (e) =>
        on.error(new ApiError(e instanceof Error ? e.message : 'The streaming connection to the server closed.')),
      complete: on.complete,
    },
  );
}
