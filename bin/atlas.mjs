#!/usr/bin/env node
// The CLI runs straight from the TypeScript sources through tsx, so `atlas` never runs a stale build.
import { register } from 'tsx/esm/api';

register();
// Unless told otherwise, run as production: graphql-js then skips its development check of every `instanceof`
// against a second copy of itself (0.2 ms of a 64-token encode response); the Apollo defaults NODE_ENV moves
// (introspection, landing page, stack traces) are set explicitly in src/server.ts.
process.env.NODE_ENV ??= 'production';
await import('../src/cli.ts');
