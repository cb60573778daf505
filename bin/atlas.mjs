#!/usr/bin/env node
// The CLI runs straight from the TypeScript sources through tsx, so `atlas` never runs a stale build.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
