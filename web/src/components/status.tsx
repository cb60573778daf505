/** Loading, error and "not on this server yet" states, said in words. */
import type { ReactNode } from 'react';
import type { ApiError, Loadable } from '../api.js';

export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status" aria-busy="true">
      Loading {what}…
    </p>
  );
}

export function ErrorBox({ error, what }: { error: ApiError; what: string }) {
  return (
    <div className="error" role="alert">
      <strong>Could not load {what}.</strong> {error.message}
      {error.code ? <span className="code"> ({error.code})</span> : null}
    </div>
  );
}

export function Note({ children }: { children: ReactNode }) {
  return <p className="note">{children}</p>;
}

/** Renders `children(data)` once loaded, and the loading or error state before that. */
export function Loaded<T>({
  value,
  what,
  children,
}: {
  value: Loadable<T>;
  what: string;
  children: (data: T) => ReactNode;
}) {
  if (value.state === 'loading') return <Loading what={what} />;
  if (value.state === 'error') return <ErrorBox error={value.error} what={what} />;
  return <>{children(value.data)}</>;
}
